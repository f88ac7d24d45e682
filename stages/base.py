"""Stage: a small class with declared resources and setup/process hooks, run by Ray Data or a loop.

Rows flowing between stages have a fixed schema so that every Ray block has the same columns:
    key (str), meta (dict, JSON in Ray), src (bytes), tgt (bytes), reject (dict or None, JSON in Ray)
A rejected row passes through later stages untouched and lands in rejects.parquet.
"""
import json
import logging
import time
from dataclasses import dataclass

from tts.backends import TtsUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0

    def __post_init__(self):
        if self.cpus < 0 or self.gpus < 0 or self.memory_gb < 0:
            raise ValueError(f"resources must be non-negative: {self}")
        if self.cpus == 0 and self.gpus == 0:
            raise ValueError("a stage needs some CPU or GPU")
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise ValueError(f"gpus above 1 must be whole: {self.gpus}")


class Reject(Exception):
    """Raised by process() to drop a row: reason is a short code, value the measured statistic."""

    def __init__(self, reason: str, detail: str = "", value=None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.value = reason, detail, value


# Errors that mean the input is bad (reject the row) rather than the code is broken.
BAD_INPUT = (ValueError, OSError)

# Reject reason of a row whose TTS server was unavailable: transient, so a later run retries the row
# instead of reusing the reject, and many in a row stop the run (pipelines/runner.py).
TTS_UNAVAILABLE = "tts_unavailable"


class Stage:
    name = "stage"
    resources = Resources()
    batch_size = 4

    def __init__(self, **params):
        self.params = params

    def setup(self) -> None:
        """Load models once per worker."""

    def process(self, row: dict) -> dict:
        raise NotImplementedError

    def process_rows(self, rows: list[dict]) -> list[dict]:
        out = []
        for row in rows:
            if row.get("reject"):
                out.append(row)
                continue
            t = time.perf_counter()
            try:
                row = self.process(row)
            except Reject as r:
                row["reject"] = {"stage": self.name, "reason": r.reason, "detail": r.detail, "value": r.value}
            except TtsUnavailable as e:
                row["reject"] = {"stage": self.name, "reason": TTS_UNAVAILABLE, "detail": str(e), "value": None}
            except BAD_INPUT as e:
                row["reject"] = {"stage": self.name, "reason": "bad_input", "detail": f"{type(e).__name__}: {e}",
                                 "value": None}
            timings = row["meta"].setdefault("_timings", {})
            timings[self.name] = round(time.perf_counter() - t, 4)
            out.append(row)
        return out


def encode_rows(rows: list[dict]):
    import pandas as pd
    return pd.DataFrame({
        "key": [r["key"] for r in rows],
        "meta": [json.dumps(r["meta"], ensure_ascii=False) for r in rows],
        "src": [r.get("src") or b"" for r in rows],
        "tgt": [r.get("tgt") or b"" for r in rows],
        "reject": [json.dumps(r["reject"]) if r.get("reject") else "" for r in rows],
    })


def decode_row(rec) -> dict:
    return {"key": rec["key"], "meta": json.loads(rec["meta"]), "src": rec["src"], "tgt": rec["tgt"],
            "reject": json.loads(rec["reject"]) if rec["reject"] else None}


def new_row(key: str, meta: dict) -> dict:
    return {"key": key, "meta": meta, "src": b"", "tgt": b"", "reject": None}


def ray_udf(stages: list[tuple[type, dict]]):
    """A Ray Data callable class running a chain of stages: built once per actor."""

    class _Udf:
        def __init__(self):
            _limit_threads(max(c.resources.cpus for c, _ in stages))
            self.stages = [cls(**params) for cls, params in stages]
            for s in self.stages:
                s.setup()

        def __call__(self, batch):
            rows = [decode_row(r) for r in batch.to_dict("records")]
            for s in self.stages:
                rows = s.process_rows(rows)
            return encode_rows(rows)

    _Udf.__name__ = "+".join(c.__name__ for c, _ in stages)
    return _Udf


def _limit_threads(cpus: float) -> None:
    n = max(1, int(cpus))
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def map_stages(ds, stages: list[tuple[type, dict]], max_actors: int | None = None):
    """Add stages to a Ray dataset. Consecutive stages with the same kind of resource (CPU or GPU)
    are fused into one actor pool: light stages (measure, filter) then ride along with the heavy
    one instead of reserving CPUs of their own, which on small machines starves the heavy stage."""
    import ray
    groups: list[list[tuple[type, dict]]] = []
    for st in stages:
        if groups and (groups[-1][-1][0].resources.gpus > 0) == (st[0].resources.gpus > 0):
            groups[-1].append(st)
        else:
            groups.append([st])
    for group in groups:
        cpus = max(c.resources.cpus for c, _ in group)
        gpus = max(c.resources.gpus for c, _ in group)
        batch = min(c.batch_size for c, _ in group)
        if max_actors is None:
            avail = ray.cluster_resources()
            max_actors = int(avail.get("GPU", 0) // gpus) if gpus else int(avail.get("CPU", 1) // max(cpus, 1e-3))
        ds = ds.map_batches(ray_udf(group), batch_format="pandas", batch_size=batch, num_cpus=cpus,
                            num_gpus=gpus or None,
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, max_actors)))
    return ds
