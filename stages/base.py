"""Stage: a small class with declared resources and setup/process hooks, run by Ray Data or a loop.

Rows flowing between stages have a fixed schema so that every Ray block has the same columns:
    key (str), meta (dict, JSON in Ray), src (bytes), tgt (bytes), reject (dict or None, JSON in Ray)
A rejected row passes through later stages untouched and lands in rejects.parquet.
"""
import json
import logging
import time
from dataclasses import dataclass

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


class Stage:
    name = "stage"
    resources = Resources()
    batch_size = 4
    concurrency: int | tuple[int, int] = 1
    stateful = True  # False: run as Ray tasks that free their CPU between batches

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


def ray_udf(stage_cls, params: dict):
    """A Ray Data callable class: builds the stage once per actor, maps pandas batches."""

    class _Udf:
        def __init__(self):
            _limit_threads(stage_cls.resources.cpus)
            self.stage = stage_cls(**params)
            self.stage.setup()

        def __call__(self, batch):
            rows = [decode_row(r) for r in batch.to_dict("records")]
            return encode_rows(self.stage.process_rows(rows))

    _Udf.__name__ = stage_cls.__name__
    return _Udf


def _limit_threads(cpus: float) -> None:
    n = max(1, int(cpus))
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def map_stage(ds, stage_cls, params: dict):
    r = stage_cls.resources
    kw = dict(batch_format="pandas", batch_size=stage_cls.batch_size, num_cpus=r.cpus,
              num_gpus=r.gpus or None, memory=int(r.memory_gb * 2**30) or None)
    if stage_cls.stateful:
        return ds.map_batches(ray_udf(stage_cls, params), concurrency=stage_cls.concurrency, **kw)

    def fn(batch):
        stage = stage_cls(**params)
        rows = [decode_row(r) for r in batch.to_dict("records")]
        return encode_rows(stage.process_rows(rows))

    fn.__name__ = stage_cls.__name__
    return ds.map_batches(fn, **kw)


def run_local(rows: list[dict], stages: list[tuple[type, dict]]) -> list[dict]:
    """The same stages as a plain loop (benchmarks compare it with Ray)."""
    for stage_cls, params in stages:
        s = stage_cls(**params)
        s.setup()
        rows = s.process_rows(rows)
    return rows
