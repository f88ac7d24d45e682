"""Stage: a small class with declared resources and setup/process hooks, run by Ray Data or a loop.

A row is a dict: key (str), meta (dict), members (dict: suffix -> bytes, e.g. row["members"]["src.flac"];
any number of them, the members of the sample it becomes, core/sample.py) and reject (dict or None).
In Ray every block has the same Arrow schema (ROW_SCHEMA): meta and reject are JSON text, members
a list of (suffix, data) pairs. A rejected row passes through later stages untouched and lands in
rejects.parquet.
"""
import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa

from tts.backends import TtsUnavailable
from tts.voicing import VoicingRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0
    cpu_fallback: bool = False  # with no GPU in the cluster, run on CPU actors instead of waiting for one

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
            except VoicingRejected as e:
                row["reject"] = {"stage": self.name, "reason": "voicing_rejected", "detail": str(e), "value": None}
            except BAD_INPUT as e:
                row["reject"] = {"stage": self.name, "reason": "bad_input", "detail": f"{type(e).__name__}: {e}",
                                 "value": None}
            timings = row["meta"].setdefault("_timings", {})
            timings[self.name] = round(time.perf_counter() - t, 4)
            out.append(row)
        return out


MEMBERS = pa.list_(pa.struct([("suffix", pa.string()), ("data", pa.large_binary())]))
ROW_SCHEMA = pa.schema([("key", pa.string()), ("meta", pa.large_string()), ("members", MEMBERS),
                        ("reject", pa.string())])


def encode_rows(rows: list[dict]) -> pa.Table:
    return pa.table({
        "key": [r["key"] for r in rows],
        "meta": [json.dumps(r["meta"], ensure_ascii=False) for r in rows],
        "members": [[{"suffix": k, "data": v} for k, v in r["members"].items()] for r in rows],
        "reject": [json.dumps(r["reject"]) if r.get("reject") else "" for r in rows],
    }, schema=ROW_SCHEMA)


def decode_row(rec) -> dict:
    return {"key": rec["key"], "meta": json.loads(rec["meta"]),
            "members": {m["suffix"]: m["data"] for m in rec["members"]},
            "reject": json.loads(rec["reject"]) if rec["reject"] else None}


def new_row(key: str, meta: dict) -> dict:
    return {"key": key, "meta": meta, "members": {}, "reject": None}


def rows_dataset(rows: list[dict], max_blocks: int):
    """A Ray dataset of rows in order, in at most max_blocks blocks, every block with ROW_SCHEMA."""
    import ray
    table, n = encode_rows(rows), max(1, min(len(rows), max_blocks))
    bounds = [len(rows) * i // n for i in range(n + 1)]
    return ray.data.from_arrow([table.slice(a, b - a) for a, b in zip(bounds, bounds[1:])])


@lru_cache(maxsize=64)
def prompt_flac(path: str, sr: int) -> bytes:
    """A voice-bank prompt clip as the sample member `prompt.flac`: the clip at the run's sample
    rate, as the TTS got it (no loudness change). Cached per worker: a bank has few prompts."""
    from core import audio
    return audio.encode_flac(audio.load(path, sr), sr)


def ray_udf(stages: list[tuple[type, dict]]):
    """A Ray Data callable class running a chain of stages: built once per actor."""

    class _Udf:
        def __init__(self):
            _limit_threads(max(c.resources.cpus for c, _ in stages))
            self.stages = [cls(**params) for cls, params in stages]
            for s in self.stages:
                s.setup()

        def __call__(self, batch):
            rows = [decode_row(r) for r in batch.to_pylist()]
            for s in self.stages:
                rows = s.process_rows(rows)
            return encode_rows(rows)

    _Udf.__name__ = "+".join(c.__name__ for c, _ in stages)
    return _Udf


def local_rows(rows: list[dict], stages: list[tuple[type, dict]]):
    """The same stages in this process, batch by batch, rows in order: where Ray is absent (the GPU
    machine) or not wanted. Rows make the same round trip through ROW_SCHEMA as on Ray, so a stage
    sees exactly what its Ray actor would."""
    built = [cls(**params) for cls, params in stages]
    for s in built:
        s.setup()
    batch = min(c.batch_size for c, _ in stages)
    for i in range(0, len(rows), batch):
        chunk = [decode_row(r) for r in encode_rows(rows[i:i + batch]).to_pylist()]
        for s in built:
            chunk = s.process_rows(chunk)
        yield from chunk


def _limit_threads(cpus: float) -> None:
    n = max(1, int(cpus))
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def _on_cpu(stage: tuple[type, dict]) -> tuple[type, dict]:
    """A GPU stage that may fall back to CPU, as a CPU stage; a GPU-only one is a named error (Ray would
    wait forever for a GPU that the cluster does not have)."""
    cls, params = stage
    if not cls.resources.gpus:
        return stage
    if not cls.resources.cpu_fallback:
        raise ValueError(f"stage {cls.name} needs a GPU and this Ray cluster has none")
    log.info("stage %s: no GPU in the Ray cluster, running on CPU actors", cls.name)
    cpu = type(cls.__name__, (cls,), {"resources": Resources(cpus=max(cls.resources.cpus, 1.0))})
    return cpu, params


def map_stages(ds, stages: list[tuple[type, dict]], max_actors: int | None = None):
    """Add stages to a Ray dataset. Consecutive stages with the same kind of resource (CPU or GPU)
    are fused into one actor pool: light stages (measure, filter) then ride along with the heavy
    one instead of reserving CPUs of their own, which on small machines starves the heavy stage."""
    import ray
    if not ray.cluster_resources().get("GPU"):
        stages = [_on_cpu(st) for st in stages]
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
        ds = ds.map_batches(ray_udf(group), batch_format="pyarrow", batch_size=batch, num_cpus=cpus,
                            num_gpus=gpus or None,
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, max_actors)))
    return ds
