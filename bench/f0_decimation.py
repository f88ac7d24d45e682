"""What the codec's F0 search costs, and what a faster one changes.

    python bench/f0_decimation.py OUT_JSON [--release R --n 32] [--clips DIR] [--tokenizer DIR]
        [--decimations 1 2 4]

WORLD's dio searches F0 candidates on the clip downsampled `speed` times (features.f0_track's
decimation); stonemask then refines them on the full-rate clip. Per decimation, over the same clips
(--n clean clips of a release, drawn evenly over its speakers, plus NAME.flac files of --clips):
  - seconds per second of audio on one thread (torch too, so no idle intra-op threads spin beside it;
    least of 3): the F0 search, stonemask, the log-mel, and the whole analysis (features.analyze); the
    serving bench's bound on a GPU server (docs/serving.md);
  - audio seconds per wall second of Codec.analyze_many over all the clips on every core of this
    machine (its analysis threads), as a server analyses a batch (best of 3);
  - against decimation 1: frames whose voicing agrees, the F0 difference in cents on frames voiced in
    both (median, 99th percentile), and the tokenizer's ids that agree (linguistic / semantic).
Round-trip quality (WER, similarity) is `python -m editor.evaluate --f0-decimation N`; the audio LLM's
edits `python bench/editor_llm_eval.py --f0-decimation N` (commands in docs/serving.md).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyworld
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from editor import features  # noqa: E402
from editor.corpus import decode_audio  # noqa: E402
from editor.tokenizer import DualCodebookTokenizer  # noqa: E402
from token_stability import release_clips  # noqa: E402


def seconds(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timings(clips: list[np.ndarray], decimation: int) -> dict[str, float]:
    audio_s = sum(len(x) for x in clips) / features.SAMPLE_RATE
    xs = [np.asarray(x, dtype=np.float64) for x in clips]
    search = lambda x: pyworld.dio(x, features.SAMPLE_RATE, f0_floor=features.F0_FLOOR, f0_ceil=features.F0_CEIL,
                                   frame_period=features.FRAME_MS, speed=decimation)
    found = [search(x) for x in xs]
    parts = {
        "f0_search": lambda: [search(x) for x in xs],
        "stonemask": lambda: [pyworld.stonemask(x, f0, t, features.SAMPLE_RATE) for x, (f0, t) in zip(xs, found)],
        "log_mel": lambda: [features.log_mel(x) for x in clips],
        "analysis": lambda: [features.analyze(x, f0_decimation=decimation) for x in clips],
    }
    return {k: round(seconds(fn) / audio_s, 5) for k, fn in parts.items()}


def analyse_many_x_real_time(tok: DualCodebookTokenizer, clips, decimation: int) -> float:
    from editor.codec import Codec
    codec = Codec(tok, f0_decimation=decimation)
    codec.analyze_many(clips)                                      # the pool starts once
    return round(sum(len(x) for x in clips) / features.SAMPLE_RATE / seconds(lambda: codec.analyze_many(clips)), 1)


def agreement(ref: list[np.ndarray], other: list[np.ndarray]) -> dict[str, float]:
    a, b = np.concatenate(ref), np.concatenate(other)
    both = (a > 0) & (b > 0)
    cents = np.abs(1200 * np.log2(b[both] / a[both]))
    return {"voicing_agrees": round(float(np.mean((a > 0) == (b > 0))), 4),
            "cents_median": round(float(np.median(cents)), 2), "cents_p99": round(float(np.percentile(cents, 99)), 2)}


def id_agreement(tok: DualCodebookTokenizer, clips, decimation: int, ref_ids) -> dict[str, float]:
    ids = tok.encode([features.analyze(x, tok.block, f0_decimation=decimation) for x in clips])
    out = {}
    for s, stream in enumerate(("linguistic", "semantic")):
        same = np.concatenate([a[s] == b[s] for a, b in zip(ids, ref_ids)])
        out[stream] = round(float(same.mean()), 4)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--release"), ap.add_argument("--n", type=int, default=32), ap.add_argument("--clips")
    ap.add_argument("--tokenizer", default="editor/artifacts/tokenizer-v10")
    ap.add_argument("--decimations", type=int, nargs="+", default=[1, 2, 4])
    a = ap.parse_args()
    clips = [x for _, x in release_clips(a.release, a.n)] if a.release else []
    clips += [decode_audio(p.read_bytes()) for p in sorted(Path(a.clips).glob("*.flac"))] if a.clips else []
    if not clips:
        raise SystemExit("no clips: give --release and/or --clips")
    if a.decimations[0] != 1:
        raise SystemExit("--decimations: the first must be 1, the reference")
    torch.set_num_threads(1)
    tok = DualCodebookTokenizer.load(a.tokenizer)
    padded = [features.pad_to_block(np.asarray(x, np.float32), tok.block) for x in clips]
    ref_f0 = [features.f0_track(x) for x in padded]
    ref_ids = tok.encode([features.analyze(x, tok.block) for x in clips])
    rows = []
    for d in a.decimations:
        row = {"decimation": d, "s_per_audio_s_one_thread": timings(clips, d),
               "analyze_many_x_real_time": analyse_many_x_real_time(tok, clips, d)}
        if d != 1:
            row["f0_vs_1"] = agreement(ref_f0, [features.f0_track(x, d) for x in padded])
            row["ids_agree_with_1"] = id_agreement(tok, clips, d, ref_ids)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"command": " ".join(["python bench/f0_decimation.py", *sys.argv[1:]]), "clips": len(clips),
              "audio_s": round(sum(len(x) for x in clips) / features.SAMPLE_RATE, 1),
              "tokenizer": tok.cfg["version"], "cores": len(os.sched_getaffinity(0)), "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
