"""Long audio through the editor: output length against input length, seams at the joins (issue: serving).

    python bench/long_edit.py CLIPS_DIR OUT_JSON [llm_dir] [--pieces 30,10,model] [--seconds 120] [--audio-dir DIR]

A source of ~2 minutes is made of CLIPS_DIR's English clips (NAME.flac + NAME.json with "text") again
and again with 0.4-0.7 s pauses between, and edited (emotion: sad, seed 0) with the Editor's pieces of
each length given ("model": the artifact's own, Editor.load's piece_seconds). Per setting: seconds out
and in, wall time (of a second call: the first compiles and captures the decode steps of the batch's
new shapes, and is kept as first_call_seconds), joins, and the level and F0 step across each join
against the same steps at 200 other places of the same output (40 ms either side). Where silero-vad is
not installed (the GPU machine) pauses are found by energy (energy_speech). Runs on CPU or GPU;
bench/serving_gpu.py uses warm_long_edit() for its GPU row.
"""
import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.artifacts import SHIPPED_LLM, in_repo  # noqa: E402
from editor.llm import editor as editor_mod  # noqa: E402

SR = 16000
CUDA = torch.cuda.is_available()


def sync():
    if CUDA:
        torch.cuda.synchronize()


def peak_mib():
    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1) if CUDA else None


def reset_peak():
    if CUDA:
        torch.cuda.reset_peak_memory_stats()


def load_clips(d: Path):
    out = []
    for f in sorted(Path(d).glob("*.flac")):
        wav, sr = sf.read(f, dtype="float32")
        assert sr == SR, f
        out.append((f.stem, wav, json.loads(f.with_suffix(".json").read_text())["text"]))
    return out


def f0_of(x):
    """A coarse F0 (Hz) of a 40 ms window by autocorrelation; 0 when unvoiced or too quiet."""
    x = x - x.mean()
    if np.sqrt(np.mean(x ** 2)) < 1e-3:
        return 0.0
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    lo, hi = SR // 400, SR // 60
    k = lo + int(np.argmax(ac[lo:hi]))
    return SR / k if ac[k] > 0.4 * ac[0] else 0.0


def seam_steps(y, at, ref_rms):
    """(RMS step across `at` relative to the whole output's RMS, F0 step in semitones or None) over
    40 ms either side. Joins sit in the source's pauses, so a relative step (not dB of near-silence)."""
    w = int(0.04 * SR)
    a, b = y[max(0, at - w):at], y[at:at + w]
    if len(a) < w or len(b) < w:
        return None
    rms = lambda z: float(np.sqrt(np.mean(z ** 2)))
    fa, fb = f0_of(a), f0_of(b)
    f0_step = abs(12 * np.log2(fb / fa)) if fa and fb else None
    return abs(rms(a) - rms(b)) / ref_rms, f0_step


def energy_speech(x: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) sample spans between runs of >= 0.25 s below -40 dB of the clip's peak (10 ms frames):
    the speech finder used where silero-vad is not installed (the GPU machine); the editor's own is silero's."""
    f = int(0.01 * SR)
    e = np.sqrt(np.mean(x[: len(x) // f * f].reshape(-1, f) ** 2, 1))
    quiet = e < e.max() * 10 ** (-40 / 20)
    pauses, start = [], None                       # runs of quiet frames of 0.25 s or more
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start >= 25:
                pauses.append((start, i))
            start = None
    edges = [0, *[t for p in pauses for t in p], len(quiet)]
    return [(a * f, b * f) for a, b in zip(edges[::2], edges[1::2]) if b > a]


def long_edit(ed, clips, seconds=120.0):
    # the English clips again and again with pauses between, and their transcripts: a 2-minute sad edit
    rng = np.random.default_rng(0)
    en = [(w, t) for n, w, t in clips if n.startswith("en")] or [(w, t) for _, w, t in clips]
    parts, texts = [], []
    while sum(len(p) for p in parts) < seconds * SR:
        w, t = en[len(texts) % len(en)]
        parts += [w, np.zeros(int(rng.uniform(0.4, 0.7) * SR), np.float32)]
        texts.append(t)
    src = np.concatenate(parts)
    joins = []
    real_join = editor_mod.crossfade_join

    def spy(pieces, fade_s=0.02):
        out = real_join(pieces, fade_s)
        ends = np.cumsum([len(p) for p in pieces])[:-1] - np.arange(1, len(pieces)) * int(fade_s * SR)
        joins.append([int(e) for e in ends])
        return out
    editor_mod.crossfade_join = spy
    reset_peak()
    try:
        sync(); t0 = time.perf_counter()
        out = ed.edit(src, " ".join(texts), "emotion", "sad", seed=0)[0]
        sync(); dt = time.perf_counter() - t0
    finally:
        editor_mod.crossfade_join = real_join
    at = joins[-1] if joins else []
    rng = np.random.default_rng(1)
    elsewhere = rng.integers(SR, len(out) - SR, 200)
    ref = float(np.sqrt(np.mean(out ** 2))) + 1e-9
    seam = [s for s in (seam_steps(out, j, ref) for j in at) if s]
    base = [s for s in (seam_steps(out, int(j), ref) for j in elsewhere) if s]
    med = lambda v: float(np.median(v)) if v else None
    return {"source_s": round(len(src) / SR, 1), "output_s": round(len(out) / SR, 1), "seconds": round(dt, 2),
            "joins": len(at), "peak_gpu_mib": peak_mib(),
            "rms_step_rel_at_joins_median": med([s[0] for s in seam]),
            "rms_step_rel_elsewhere_median": med([s[0] for s in base]),
            "f0_step_st_at_joins_median": med([s[1] for s in seam if s[1] is not None]),
            "f0_step_st_elsewhere_median": med([s[1] for s in base if s[1] is not None])}, out


def warm_long_edit(ed, clips, seconds=120.0):
    """long_edit twice: the first call compiles and captures the decode steps of this batch's new shapes
    (about 20 s on an H100), the second is the edit's own time; the first call's seconds are kept beside it."""
    first, _ = long_edit(ed, clips, seconds)
    r, y = long_edit(ed, clips, seconds)
    r["first_call_seconds"] = first["seconds"]
    return r, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("clips"), ap.add_argument("out"), ap.add_argument("llm", nargs="?", default=in_repo(SHIPPED_LLM))
    ap.add_argument("--pieces", default="30,10,model")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--audio-dir", help="also write each setting's output as long_edit_<pieces>.flac here")
    a = ap.parse_args()
    ed = editor_mod.Editor.load(a.llm, device="cuda" if CUDA else "cpu")
    if importlib.util.find_spec("silero_vad") is None:
        ed._speech = energy_speech
    clips = load_clips(Path(a.clips))
    model_piece = ed.piece_s["emotion"]         # long_edit() makes a sad (emotion) edit
    res = {"device": torch.cuda.get_device_name(0) if CUDA else "cpu", "llm": a.llm, "model_piece_s": model_piece,
           "vad": "energy (silero-vad is not installed)" if ed._speech is energy_speech else "silero",
           "command": "python " + " ".join(sys.argv)}
    for p in a.pieces.split(","):
        ed.piece_s["emotion"] = model_piece if p == "model" else float(p)
        r, y = warm_long_edit(ed, clips, a.seconds)
        r["piece_s"] = ed.piece_s["emotion"]
        r["output_over_source"] = round(r["output_s"] / r["source_s"], 3)
        res[f"pieces_{p}"] = r
        print(p, r, flush=True)
        if a.audio_dir:
            Path(a.audio_dir).mkdir(parents=True, exist_ok=True)
            sf.write(Path(a.audio_dir) / f"long_edit_{p}.flac", y, SR)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
