"""Stage: benchmark editor calls (clone or edit) as rows, for pipeline=edit_benchmark.

A row's meta names the editor (its pipeline.editor spec: an audio-LLM dir, identity, engine or an
http:// URL), the method and the request; its member in.flac is the request's audio. The answer is
the member out.flac, or meta["failed"] with the reason: a bad answer or a request the editor raised
on is scored as a failure, never a crash (benchmark/editors.run_safely). Editors load once per
worker, on first use. The LLM wants a GPU; everything else is CPU work."""
from pathlib import Path

from benchmark.calls import AUDIO_ARGS
from benchmark.editors import SR, Failed, run_safely
from core import audio
from stages.base import Resources, Stage


def is_llm(spec: str) -> bool:
    return (Path(str(spec)) / "llm_vocab.json").is_file()


class BenchmarkCall(Stage):
    name = "benchmark_call"
    resources = Resources(cpus=1)
    batch_size = 16

    def setup(self):
        self.editors = {}

    def editor(self, spec: str):
        if spec not in self.editors:
            from benchmark.choose import load_editor
            self.editors[spec] = load_editor(spec, device=self.params.get("device", "auto"),
                                             temperature=float(self.params.get("temperature", 0.7)),
                                             quantize=self.params.get("quantize") if is_llm(spec) else None)
        return self.editors[spec]

    def process_rows(self, rows: list[dict]) -> list[dict]:
        groups = {}
        for row in rows:
            if not row.get("reject"):
                groups.setdefault((row["meta"]["editor"], row["meta"]["method"]), []).append(row)
        for (spec, method), group in groups.items():
            requests = []
            for row in group:
                x, sr = audio.decode(row["members"]["in.flac"], f"{row['key']}.in.flac")
                requests.append({**row["meta"]["request"], AUDIO_ARGS[method]: audio.resample(x, sr, SR)})
            for row, y in zip(group, run_safely(self.editor(spec), method, requests)):
                if isinstance(y, Failed):
                    row["meta"]["failed"] = y.reason
                else:
                    row["members"]["out.flac"] = audio.encode_flac(y, SR)
        return rows


class GpuBenchmarkCall(BenchmarkCall):
    name = "benchmark_call_gpu"
    resources = Resources(cpus=1, gpus=1, cpu_fallback=True)


def stage_for(specs, device: str = "auto", temperature: float = 0.7, quantize: str | None = None) -> tuple[type, dict]:
    """The stage for a round that may call any of these editors: on a GPU when one is an audio LLM."""
    cls = GpuBenchmarkCall if any(is_llm(s) for s in specs) else BenchmarkCall
    return cls, {"device": device, "temperature": temperature, "quantize": quantize}
