"""int8 beside bf16 on the benchmark's own prompts, judged by the benchmark judge (docs/serving.md).

The sources are Iter0 clips of the shipped editor's benchmark run (bench/results/preference_v10/bench_sft):
its 24 first prompts, one per label and language (5 emotions and 7 styles, en and zh). Each precision edits
every source three iterations deep with feedback, as the benchmark does, with SEEDS seeds per prompt;
judge-v2 classifies every iteration. Reported per precision: judged accuracy per category and
iteration (the mean over clips, not the benchmark's speaker-label-language average), clip durations,
the share of answers as long as bf16's, and the edit time. No similarity or WER here (resemblyzer
and pocketsphinx are not on the GPU machine).

    python3 bench/int8_quality_gpu.py CLIPS_DIR OUT_DIR      (bench/int8_quality_gpu.sh on the GPU machine)
    python bench/int8_quality_gpu.py --make-clips BENCH_RELEASE CLIPS_DIR     (first, on the CPU)

BENCH_RELEASE: an edit_benchmark release (OUT_DIR/edit_benchmark/latest) of the shipped editor; CLIPS_DIR
gets the Iter0 clip of each of its emotion and style prompts *-000 (audio/editor/own/<id>/iter0.flac) as <id>.flac, their
manifest.json, and mel_basis.npy (the judge's mel filters: the GPU machine has no librosa); about 1.5 MB.
"""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.artifacts import SHIPPED_LLM  # noqa: E402
from editor.llm.editor import Editor  # noqa: E402
from scorers.judge.local import LocalJudge  # noqa: E402

SR = 16000
N_ITER = 3
SMOKE = os.environ.get("INT8_SMOKE") == "1"      # 2 prompts, 1 seed: a quick CPU run of the script itself
SEEDS = (0,) if SMOKE else (0, 1, 2, 3, 4)
REPO = Path(__file__).resolve().parent.parent
JUDGE = REPO / "scorers" / "artifacts" / "judge-v2"
LLM = SHIPPED_LLM


def edit_all(ed: Editor, prompts: list[dict], wavs: dict) -> dict:
    """(prompt id, seed) -> [iter1, iter2, iter3], every chain of a seed in one edit_many call."""
    out = {}
    for seed in SEEDS:
        reqs = [{"wav": wavs[p["id"]], "text": p["text"], "edit_type": p["category"], "edit_info": p["label"],
                 "n_iter": N_ITER, "seed": seed, "temperature": 0.7} for p in prompts]
        for p, its in zip(prompts, ed.edit_many(reqs)):
            out[p["id"], seed] = its
    return out


def judged(judge: LocalJudge, prompts: list[dict], chains: dict) -> tuple[dict, list]:
    acc, cells = {}, []
    for p in prompts:
        for seed in SEEDS:
            for k, y in enumerate(chains[p["id"], seed], 1):
                ok, pred = False, None
                if len(y) >= 0.3 * SR:
                    probs = judge.classify((y, SR), p["category"])
                    pred = max(probs, key=probs.get)
                    ok = pred == p["label"]
                acc.setdefault(f"{p['category']}_iter{k}", []).append(ok)
                cells.append({"id": p["id"], "seed": seed, "iter": k, "predicted": pred, "correct": ok,
                              "duration_s": round(len(y) / SR, 3)})
    return {k: round(100 * float(np.mean(v)), 1) for k, v in sorted(acc.items())}, cells


def make_clips(release: Path, clips: Path):
    from scorers.judge import logmel
    prompts = [p for p in json.loads((release / "manifest.json").read_text())
               if p["id"].endswith("-000") and p["category"] in ("emotion", "style")]   # what the judge classifies
    if not prompts:
        raise ValueError(f"{release}: no emotion or style prompt *-000 in its manifest.json")
    clips.mkdir(parents=True, exist_ok=True)
    for p in prompts:
        src = release / "audio" / "editor" / "own" / p["id"] / "iter0.flac"
        if not src.is_file():
            raise ValueError(f"{release}: no {src.relative_to(release)} (not an edit_benchmark release?)")
        shutil.copyfile(src, clips / f"{p['id']}.flac")
    (clips / "manifest.json").write_text(json.dumps(prompts, ensure_ascii=False))
    np.save(clips / "mel_basis.npy", logmel._mel_basis())


def main(clips: Path, out: Path):
    try:
        import librosa  # noqa: F401
    except ImportError:   # the GPU machine has no librosa: the judge's mel filters, computed here beforehand
        from scorers.judge import logmel
        basis = np.load(clips / "mel_basis.npy")
        logmel._mel_basis = lambda: basis
    prompts = json.loads((clips / "manifest.json").read_text())[:2 if SMOKE else None]
    wavs = {p["id"]: sf.read(clips / f"{p['id']}.flac", dtype="float32")[0] for p in prompts}
    judge = LocalJudge.load(JUDGE)
    iter0 = {}
    for p in prompts:
        probs = judge.classify((wavs[p["id"]], SR), p["category"])
        iter0.setdefault(f"{p['category']}_iter0", []).append(max(probs, key=probs.get) == p["label"])
    report = {"prompts": len(prompts), "seeds": list(SEEDS), "n_iter": N_ITER, "judge": str(JUDGE.name),
              "iter0_accuracy": {k: round(100 * float(np.mean(v)), 1) for k, v in iter0.items()},
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    chains = {}
    for name, q in (("bf16", None), ("int8", "int8")):
        ed = Editor.load(LLM, device="cuda" if torch.cuda.is_available() else "cpu", quantize=q)
        edit_all(ed, prompts[:2], wavs)        # warm-up (compilation, CUDA graphs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        chains[name] = edit_all(ed, prompts, wavs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        took = time.perf_counter() - t0
        acc, cells = judged(judge, prompts, chains[name])
        audio_s = sum(len(y) for its in chains[name].values() for y in its) / SR
        empty = sum(not len(y) for its in chains[name].values() for y in its)
        report[name] = {"accuracy": acc, "edit_s": round(took, 2), "audio_s": round(audio_s, 1),
                        "rtf": round(took / audio_s, 4), "empty_answers": empty,
                        "mean_duration_s": round(audio_s / (len(chains[name]) * N_ITER), 3)}
        (out / f"cells_{name}.json").write_text(json.dumps(cells))
        print(name, json.dumps(report[name]), flush=True)
        del ed
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    # the vocoder draws its noise per batch, so audio is not compared sample by sample; an answer of
    # the same length as bf16's (same seed, same source) most likely has the same tokens
    same_len = [len(a) == len(b) for key in chains["bf16"] for a, b in zip(chains["bf16"][key], chains["int8"][key])]
    report["int8_vs_bf16"] = {"same_length_share": round(float(np.mean(same_len)), 3)}
    (out / "int8_quality.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "--make-clips":
        make_clips(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
