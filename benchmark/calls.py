"""Who runs a round of editor calls: this process (LocalCalls) or the runner's workers (StageCalls).

A round is a list of (editor key, request) jobs for one method (clone or edit); the answer is an
iterator of clips or Failed, in the jobs' order, as they finish. LocalCalls holds editor objects;
StageCalls sends the requests as rows through stages/benchmark_call.py on Ray (the LLM on GPU
actors where the cluster has GPUs, CPU actors otherwise) or, where Ray is absent, through the same
stage in this process (pipelines/runner.stream_rows)."""
from core import audio
from benchmark.editors import SR, Failed, run_safely

BATCH = 16     # requests per editor call in this process: the unit of work a killed run loses
AUDIO_ARGS = {"clone": "prompt_wav", "edit": "wav"}


class LocalCalls:
    def __init__(self, editors: dict):
        self.editors = editors

    def __call__(self, method: str, jobs: list[tuple[str, dict]]):
        i = 0
        while i < len(jobs):
            key = jobs[i][0]
            j = i
            while j < len(jobs) and j - i < BATCH and jobs[j][0] == key:
                j += 1
            yield from run_safely(self.editors[key], method, [r for _, r in jobs[i:j]])
            i = j


def request_row(key: str, editor: str, method: str, request: dict) -> dict:
    """A job as a stage row: the request's audio as the member in.flac, the rest as JSON."""
    arg = AUDIO_ARGS[method]
    rest = {k: v for k, v in request.items() if k != arg}
    return {"key": key, "meta": {"editor": editor, "method": method, "request": rest},
            "members": {"in.flac": audio.encode_flac(request[arg], SR)}, "reject": None}


def answer(row: dict):
    """The clip (or Failed) a processed row carries."""
    if row.get("reject"):
        return Failed(f"{row['reject']['reason']}: {row['reject']['detail']}")
    if "failed" in row["meta"]:
        return Failed(row["meta"]["failed"])
    return audio.decode(row["members"]["out.flac"], row["key"])[0]


class StageCalls:
    def __init__(self, ray_cfg, specs: list[str], device: str = "auto", temperature: float = 0.7,
                 quantize: str | None = None):
        from stages.benchmark_call import stage_for
        self.ray_cfg, self.stage = ray_cfg, stage_for(specs, device, temperature, quantize)

    def __call__(self, method: str, jobs: list[tuple[str, dict]]):
        from pipelines.runner import stream_rows
        if not jobs:
            return
        rows = [request_row(f"{method}-{i:06d}", ed, method, r) for i, (ed, r) in enumerate(jobs)]
        results, close = stream_rows(self.ray_cfg, rows, [self.stage], max_blocks=max(1, len(rows) // 4))
        try:
            for row in results:
                yield answer(row)
        finally:
            close()
