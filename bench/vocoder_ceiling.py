"""Which weight-free vocoder can the decoder target? pocketsphinx WER after analysis-synthesis alone.

    python bench/vocoder_ceiling.py --data SHARDS --speakers en_f2,en_m2 --clips 24

No tokens are involved: each clip is analysed and resynthesised by WORLD (10 ms frames, full
envelope), by Griffin-Lim from the linear magnitude, and by Griffin-Lim from the 80-band log-mel that
the decoder predicts. A vocoder whose own WER increase is large cannot meet the codec's WER target.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyworld
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor import features
from editor.evaluate import english_clips
from editor.vocoder import griffin_lim, phase_from_magnitude
from scorers import asr


def world_resynthesis(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    sr = features.SAMPLE_RATE
    f0, t = pyworld.dio(x, sr, f0_floor=features.F0_FLOOR, f0_ceil=features.F0_CEIL, frame_period=features.FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, sr)
    sp, ap = pyworld.cheaptrick(x, f0, t, sr), pyworld.d4c(x, f0, t, sr)
    return pyworld.synthesize(f0, sp, ap, sr, frame_period=features.FRAME_MS).astype(np.float32)


def linear_griffin_lim(x: np.ndarray) -> np.ndarray:
    """Griffin-Lim from the exact linear magnitude: the mel step's loss left out."""
    window = torch.hann_window(features.N_FFT)
    spec = torch.stft(torch.as_tensor(x), features.N_FFT, features.HOP, window=window, return_complex=True)
    return phase_from_magnitude(spec.abs(), len(x)).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--speakers", default="en_f2,en_m2")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    clips = english_clips(a.data, a.speakers, a.clips)
    systems = {"original": lambda x: x, "world": world_resynthesis, "griffin_lim_linear": linear_griffin_lim,
               "griffin_lim_mel80": lambda x: griffin_lim([features.log_mel(features.pad_to_block(x, 1))])[0]}
    errors = {k: 0.0 for k in systems}
    words = 0
    for x, m in clips:
        n = len(asr.words(m["text"]))
        words += n
        for name, fn in systems.items():
            errors[name] += asr.wer_of(fn(x), features.SAMPLE_RATE, m["text"]) * n
    r = {"clips": len(clips), "words": words, "wer": {k: round(v / words, 4) for k, v in errors.items()},
         "command": " ".join(["python", *sys.argv])}
    print(json.dumps(r, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
