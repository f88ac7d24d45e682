"""Acoustic profile of a clip, and the voicing that turns a base rendering into a prompt's voice.

The same statistics serve the zero-shot clone (match the prompt), the tests (is the margin
there?) and the margin scorer's features.
"""
import re

import numpy as np

from tts.voicing import Voicing
from tts.world_render import WorldFeatures, _warp_bins, analyze

_BINS = 64  # envelope resolution for timbre matching
# Formant warps searched: 0.70..1.45 spans an adult male base to a child; the wide grid is the retry
# when the search ends on an edge of the first, to tell a real optimum there from one beyond it.
WARP_GRID = (0.70, 1.45)
WIDE_WARP_GRID = (0.55, 1.80)
# The largest F0 shift applied, either way: two octaves, beyond what WORLD renders as a voice.
F0_SHIFT_CLIP_ST = 24.0


def syllables(text: str, language: str) -> int:
    if language in ("zh", "yue"):
        return max(1, len(re.findall(r"[\u3400-\u9fff]", text)))
    words = re.findall(r"[a-zA-Z']+", text.lower())
    n = 0
    for w in words:
        n += max(1, len(re.findall(r"[aeiouy]+", w)) - (1 if w.endswith("e") and len(w) > 2 else 0))
    return max(1, n)


def speech_mask(x: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """Frames within 35 dB of the loudest frames count as speech."""
    n = len(x) // hop
    frames = x[: n * hop].reshape(n, hop)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    return db > (np.percentile(db, 95) - 35)


def profile(x: np.ndarray, sr: int, text: str, language: str, feat: WorldFeatures | None = None) -> dict:
    feat = feat or analyze(x, sr)
    hop = int(sr * feat.frame_period / 1000)
    speech = speech_mask(x, sr, hop)
    n = min(len(speech), len(feat.f0))
    speech, f0, sp, ap = speech[:n], feat.f0[:n], feat.sp[:n], feat.ap[:n]
    voiced = (f0 > 0) & speech
    fp_s = feat.frame_period / 1000
    speech_s = max(speech.sum() * fp_s, 1e-3)
    freqs = feat.freqs
    out = {
        "duration_s": len(x) / sr,
        "speech_s": speech_s,
        "rate_syl_s": syllables(text, language) / speech_s,
        "voiced_ratio": float(voiced.sum() / max(speech.sum(), 1)),
        "energy_db": float(10 * np.log10(np.mean(x[: n * hop].reshape(n, hop)[speech] ** 2) + 1e-12)),
        "ap_low": float(ap[speech][:, freqs < 4000].mean()) if speech.any() else 1.0,
    }
    if voiced.sum() >= 10:
        st = 12 * np.log2(f0[voiced])
        t = np.nonzero(voiced)[0] * fp_s
        slope = np.polyfit(t, st, 1)[0] if t[-1] > t[0] else 0.0
        final = st[t > t[-1] - 0.4].mean() - st[(t <= t[-1] - 0.4) & (t > t[-1] - 1.4)].mean() \
            if ((t <= t[-1] - 0.4) & (t > t[-1] - 1.4)).any() else 0.0
        wobble = _wobble(f0, voiced, fp_s)
        out.update(f0_median_st=float(np.median(st)), f0_range_st=float(np.subtract(*np.percentile(st, [90, 10])) / 2.56),
                   f0_slope_st=float(slope * (t[-1] - t[0])), f0_final_st=float(final),
                   f0_wobble_st=wobble)
        env = 10 * np.log10(sp[voiced].mean(axis=0) + 1e-16)
    else:
        out.update(f0_median_st=float("nan"), f0_range_st=0.0, f0_slope_st=0.0, f0_final_st=0.0,
                   f0_wobble_st=0.0)
        env = 10 * np.log10(sp[speech].mean(axis=0) + 1e-16) if speech.any() else np.zeros(sp.shape[1])
    hi = freqs >= 500
    out["tilt_db_oct"] = float(np.polyfit(np.log2(freqs[hi] / 500.0), env[hi], 1)[0])
    # compact envelope for timbre matching (resampled to fixed bins, 0..sr/2)
    out["envelope"] = np.interp(np.linspace(0, len(env) - 1, _BINS), np.arange(len(env)), env).tolist()
    return out


def _wobble(f0: np.ndarray, voiced: np.ndarray, fp_s: float) -> float:
    """Short-term F0 modulation (tremor, jitter): log-F0 minus its 150 ms moving average,
    inside voiced runs of at least 0.3 s; a robust (MAD-based) spread in semitones."""
    k = max(3, int(0.15 / fp_s))
    res = []
    edges = np.flatnonzero(np.diff(np.r_[0, voiced.astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        if (b - a) * fp_s >= 0.3:
            st = 12 * np.log2(f0[a:b])
            smooth = np.convolve(st, np.ones(k) / k, mode="same")
            res.append((st - smooth)[k // 2: -(k // 2)])
    if not res:
        return 0.0
    r = np.concatenate(res)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def _warp_and_tilt(base_env: np.ndarray, target_env: np.ndarray, sr: int,
                   grid: tuple[float, float] = WARP_GRID) -> tuple[float, float]:
    """Grid search the formant warp; for each, the best linear tilt; keep the smallest residual."""
    freqs = np.linspace(0, sr / 2, len(base_env))
    band = (freqs >= 300) & (freqs <= min(5000, sr / 2 - 500))
    x = np.log2(np.maximum(freqs, 500.0) / 500.0)
    best = (1e9, 1.0, 0.0)
    for w in np.arange(grid[0], grid[1] + 0.001, 0.01):
        e = _warp_bins(base_env[None, :], w)[0]
        d = target_env - e
        A = np.stack([x[band], np.ones(band.sum())], 1)
        coef, *_ = np.linalg.lstsq(A, d[band], rcond=None)
        err = np.mean((d[band] - A @ coef) ** 2)
        if err < best[0]:
            best = (err, float(w), float(coef[0]))
    return best[1], best[2]


def clone_voicing(prompt: dict, base: dict, sr: int, grid: tuple[float, float] = WARP_GRID) -> Voicing:
    """The voicing that moves a base rendering's profile onto the prompt's."""
    clip = lambda v, lo, hi: float(min(hi, max(lo, v)))
    whisper = 1.0 if prompt["voiced_ratio"] < 0.2 and base["voiced_ratio"] > 0.4 else 0.0
    warp, tilt = _warp_and_tilt(np.array(base["envelope"]), np.array(prompt["envelope"]), sr, grid)
    v = dict(whisper=whisper, warp=warp, tilt_db_oct=clip(tilt, -12, 12),
             tempo=clip(prompt["rate_syl_s"] / base["rate_syl_s"], 0.5, 2.0),
             breath=clip((prompt["ap_low"] - base["ap_low"]) / max(1 - base["ap_low"], 1e-3) - 0.1, 0, 1))
    if not whisper and np.isfinite(prompt["f0_median_st"]) and np.isfinite(base["f0_median_st"]):
        v.update(
            f0_shift_st=clip(prompt["f0_median_st"] - base["f0_median_st"], -F0_SHIFT_CLIP_ST, F0_SHIFT_CLIP_ST),
            f0_range=clip(prompt["f0_range_st"] / max(base["f0_range_st"], 0.1), 0.2, 3.0),
            f0_slope_st=clip(prompt["f0_slope_st"] - base["f0_slope_st"], -8, 8),
            f0_final_st=clip(prompt["f0_final_st"] - base["f0_final_st"], -8, 8),
            tremor_st=clip(np.sqrt(max(prompt["f0_wobble_st"] ** 2 - base["f0_wobble_st"] ** 2, 0)) * 1.4, 0, 2),
        )
    return Voicing(**v)
