"""How far can a denoise edit raise the waveform SNR against the clean reference (issue 17's denoise
row), whatever model makes it? A bound from an oracle: the source's own STFT scaled by the ideal ratio
mask min(1, |clean| / |source|), which keeps the source's phase, so it is the most a time-frequency mask
can do with the true answer in hand. Split by what the factory did to the source (its recipe): noise
alone, or a room's reverberation and then noise (p_reverb; the reference is dry).

    python bench/denoise_mask_bound.py --data outputs_v5/denoise_triplets --split test --per-task 20 \
        [--llm editor/artifacts/editor-llm-v12] --out bench/results/editor_llm/denoise_mask_bound.json

With --llm, the editor's own answer (resynthesised by the codec) also serves as the mask's clean
magnitude after alignment to the source: does the answer say which bins are speech well enough to
filter the source with it? Every SNR is bench/editor_llm_eval.py's (aligned, least-squares gain)."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from editor_llm_eval import align, audio16, pick_samples, snr  # noqa: E402

N_FFT, HOP = 512, 160


def ratio_masked(src: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """src filtered by min(1, |clean| / |src|) per STFT bin (clean aligned to src first)."""
    win = torch.hann_window(N_FFT, dtype=torch.float64)
    st = lambda x: torch.stft(torch.as_tensor(x, dtype=torch.float64), N_FFT, HOP, window=win, return_complex=True)
    x = st(src)
    c = st(align(np.asarray(clean, np.float64), np.asarray(src, np.float64)))
    m = (c.abs() / (x.abs() + 1e-8)).clamp(max=1.0)
    return torch.istft(m * x, N_FFT, HOP, window=win, length=len(src)).numpy()


def summary(v: list) -> dict:
    return {"n": len(v), "median": round(float(np.median(v)), 2), "min": round(float(min(v)), 2),
            "max": round(float(max(v)), 2), "frac_ge_10": round(float(np.mean(np.asarray(v) >= 10)), 2)} if v else {"n": 0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a denoise_triplets release")
    ap.add_argument("--split", default="test")
    ap.add_argument("--per-task", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--llm", help="also mask with this editor's answers")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    t0 = time.time()
    notes = []
    items = pick_samples(a.data, a.split, a.per_task, a.seed, notes).get("denoise")
    if not items:
        raise SystemExit(f"--data {a.data}: no denoise samples at split {a.split} ({'; '.join(notes)})")
    srcs = [audio16(s, "src.flac") for s, _ in items]
    tgts = [audio16(s, "tgt.flac") for s, _ in items]
    answers = [None] * len(items)
    if a.llm:
        from editor.llm.editor import Editor
        ed = Editor.load(a.llm, device="cpu")
        answers = [o[0] for o in ed.edit_many([dict(wav=x, text=s.json.get("text") or "", edit_type="denoise",
                                                    edit_info=None, seed=a.seed) for x, (s, _) in zip(srcs, items)])]
    rows = []
    for (s, _), x, ref, y in zip(items, srcs, tgts, answers):
        reverb = any(op.get("op") == "reverb" for op in s.json.get("recipe", []))
        src_db = snr(x, ref)["snr_db"]
        row = {"key": s.key, "reverb": reverb, "noise_snr_db": s.json.get("snr_db"), "src_snr_db": src_db,
               "oracle_mask_gain_db": round(snr(ratio_masked(x, ref), ref)["snr_db"] - src_db, 3)}
        if y is not None and len(y):
            row["answer_mask_gain_db"] = round(snr(ratio_masked(x, y), ref)["snr_db"] - src_db, 3)
        rows.append(row)
    groups = {"all": rows, "noise_only": [r for r in rows if not r["reverb"]], "reverb_and_noise": [r for r in rows if r["reverb"]]}
    report = {"command": " ".join(["python bench/denoise_mask_bound.py", *sys.argv[1:]]), "notes": notes,
              "groups": {g: {k: summary([r[k] for r in rs if k in r])
                             for k in ("src_snr_db", "oracle_mask_gain_db", "answer_mask_gain_db")} for g, rs in groups.items()},
              "per_clip": rows, "seconds": round(time.time() - t0, 1)}
    print(json.dumps(report["groups"], indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
