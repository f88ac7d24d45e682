"""How much mel error can pocketsphinx take? True frames, degraded on purpose, Griffin-Lim, WER and MCD.

    python bench/asr_sensitivity.py --data SHARDS --speakers en_f2 --clips 16

No model is involved. Each clip's true 80-band log-mel is degraded in one of two ways and resynthesised:
- smearing in time (a moving average over k frames), what an over-smoothed regression decoder does;
- noise on cepstra c1..c24 (spectral shape errors at the frame rate), what a coarse codebook does.
It tells how low the codec's MCD must go before the WER target (original + 0.10) is in reach.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.fft import dct, idct
from scipy.ndimage import uniform_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor import features
from editor.evaluate import english_clips, mcd
from editor.features import Frames
from editor.vocoder import griffin_lim
from scorers import asr


def smeared(fr: Frames, k: int) -> Frames:
    return Frames(fr.f0, uniform_filter1d(fr.mel, k, axis=0).astype(np.float32))


def cepstral_noise(fr: Frames, db: float, rng: np.random.Generator) -> Frames:
    """Gaussian noise on c1..c24 sized so that MCD comes out near `db` (MCD's 10/ln10 * sqrt(2 sum) scale)."""
    c = dct(fr.mel, type=2, norm="ortho", axis=1)
    sigma = db * np.log(10) / 10 * np.sqrt(2 * c.shape[1]) / np.sqrt(2 * 24)
    c[:, 1:25] += sigma * rng.standard_normal((len(c), 24))
    return Frames(fr.f0, idct(c, type=2, norm="ortho", axis=1).astype(np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--speakers", default="en_f2")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    clips = english_clips(a.data, a.speakers, a.clips)
    frames = [features.analyze(x) for x, _ in clips]
    rng = np.random.default_rng(0)
    variants = {"true_mel": lambda f: f,
                **{f"smear_{k}_frames": (lambda f, k=k: smeared(f, k)) for k in (3, 5, 7, 9)},
                **{f"cepstral_noise_{d}dB": (lambda f, d=d: cepstral_noise(f, d, rng)) for d in (0.75, 1.5, 3.0)}}
    n_words = [len(asr.words(m["text"])) for _, m in clips]
    wer = lambda ys: sum(asr.wer_of(y, features.SAMPLE_RATE, m["text"]) * n
                         for y, (_, m), n in zip(ys, clips, n_words)) / sum(n_words)
    original = wer([x for x, _ in clips])
    rows = {}
    for name, degrade in variants.items():
        deg = [degrade(f) for f in frames]
        w = wer(griffin_lim([d.mel for d in deg]))
        rows[name] = {"mcd_db": round(float(np.mean([mcd(f, d) for f, d in zip(frames, deg)])), 3),
                      "wer": round(w, 4), "wer_delta": round(w - original, 4)}
        print(name, rows[name], flush=True)
    r = {"clips": len(clips), "words": sum(n_words), "wer_original": round(original, 4), "variants": rows,
         "command": " ".join(["python", *sys.argv])}
    print(json.dumps(r, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
