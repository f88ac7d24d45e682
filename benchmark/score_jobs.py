"""The benchmark's scoring round: every distinct (clip, reference, prompt) scored once, on the
runner's workers (stages/benchmark_score.py), each cell kept on disk as it comes.

A clip is in several cells (Iter0 starts every run that edits it): it is scored once. A cell is
`<root>/<job>.json`, written to a temporary name and renamed, so a killed run rescores only what it
had not finished. A failed clip needs no model: its cell (wrong, or score 1, with the reason) is made
here."""
import hashlib
import json
import os
from pathlib import Path

from benchmark.editors import SR, Failed
from benchmark.scoring import Scorer
from core import audio

NO_MODELS = Scorer(None, similarity=False, wer=False)   # what a failed clip gets needs no judge


class ScoreJobs:
    def __init__(self, ray_cfg, root: Path, p):
        self.ray_cfg, self.root = ray_cfg, Path(root)
        self.params = {"judge": str(p.judge) if p.judge else None, "similarity": bool(p.similarity), "wer": bool(p.wer)}
        self.jobs = {}      # job id -> (kind, clip, reference, prompt)

    def add(self, kind: str, clip: tuple, ref: tuple, prompt: dict) -> str:
        """clip and ref are (store name, clip or Failed); the job's id names its cell."""
        job = hashlib.sha1(json.dumps([kind, clip[0], ref[0], prompt["id"]]).encode()).hexdigest()[:16]
        self.jobs.setdefault(job, (kind, clip[1], ref[1], prompt))
        return job

    def _path(self, job: str) -> Path:
        return self.root / f"{job}.json"

    @property
    def todo(self) -> int:
        return sum(not self._path(j).is_file() for j in self.jobs)

    def run(self) -> dict:
        """{job id: cell}: the stored ones read back, the rest scored and stored."""
        from pipelines.runner import stream_rows
        from stages.benchmark_score import BenchmarkScore
        self.root.mkdir(parents=True, exist_ok=True)
        rows = []
        for job, (kind, y, ref, p) in self.jobs.items():
            if self._path(job).is_file():
                continue
            if isinstance(y, Failed) or (kind == "paralinguistic" and isinstance(ref, Failed)):
                self._put(job, NO_MODELS.paralinguistic(ref, y, p) if kind == "paralinguistic" else NO_MODELS.judged(y, p))
                continue
            members = {"y.flac": audio.encode_flac(y, SR)}
            if not isinstance(ref, Failed):
                members["ref.flac"] = audio.encode_flac(ref, SR)
            rows.append({"key": job, "meta": {"kind": kind, "prompt": p}, "members": members, "reject": None})
        if rows:
            results, close = stream_rows(self.ray_cfg, rows, [(BenchmarkScore, self.params)],
                                         max_blocks=max(1, len(rows) // 4))
            try:
                for row in results:
                    cell = row["meta"].get("cell")
                    if row.get("reject"):    # the clip could not be read or scored: a failure with the reason
                        why = f"scoring: {row['reject']['detail']}"
                        cell = {"score": 1, "failed": why} if row["meta"]["kind"] == "paralinguistic" else \
                            {"correct": False, "failed": why}
                    self._put(row["key"], cell)
            finally:
                close()
        return {j: json.loads(self._path(j).read_text(encoding="utf-8")) for j in self.jobs}

    def _put(self, job: str, cell: dict) -> None:
        path = self._path(job)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(cell, ensure_ascii=False, default=_plain), encoding="utf-8")
        os.replace(tmp, path)


def _plain(x):
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON: {type(x).__name__}")
