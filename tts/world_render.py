"""WORLD analysis/synthesis and the voicing transform applied between them."""
from dataclasses import dataclass

import numpy as np
import pyworld

from tts.voicing import Voicing


@dataclass
class WorldFeatures:
    f0: np.ndarray   # Hz per frame, 0 where unvoiced
    sp: np.ndarray   # spectral envelope (power), frames x bins
    ap: np.ndarray   # aperiodicity 0..1, frames x bins
    sr: int
    frame_period: float  # ms

    @property
    def freqs(self) -> np.ndarray:
        return np.linspace(0, self.sr / 2, self.sp.shape[1])


def analyze(x: np.ndarray, sr: int, frame_period: float = 5.0, f0_method: str = "dio") -> WorldFeatures:
    # dio + stonemask is ~15x faster than harvest and good enough on clean TTS speech; harvest is the
    # fallback where dio's F0 looks wrong (octave errors, voiced frames missed).
    x = np.ascontiguousarray(x, dtype=np.float64)
    if f0_method not in ("dio", "harvest"):
        raise ValueError(f"unknown F0 method {f0_method!r}: dio or harvest")
    f0_track = pyworld.harvest if f0_method == "harvest" else pyworld.dio
    f0, t = f0_track(x, sr, frame_period=frame_period, f0_floor=55.0, f0_ceil=700.0)
    f0 = pyworld.stonemask(x, f0, t, sr)
    sp = pyworld.cheaptrick(x, f0, t, sr)
    ap = pyworld.d4c(x, f0, t, sr)
    return WorldFeatures(f0, sp, ap, sr, frame_period)


def synthesize(feat: WorldFeatures) -> np.ndarray:
    y = pyworld.synthesize(np.ascontiguousarray(feat.f0), np.ascontiguousarray(feat.sp),
                           np.ascontiguousarray(feat.ap), feat.sr, feat.frame_period)
    return y.astype(np.float32)


def _stretch(a: np.ndarray, n: int) -> np.ndarray:
    src = np.linspace(0, len(a) - 1, n)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, len(a) - 1)
    w = (src - i0)
    if a.ndim == 2:
        w = w[:, None]
    return a[i0] * (1 - w) + a[i1] * w


def _warp_bins(s: np.ndarray, warp: float) -> np.ndarray:
    """Move spectral features up (warp>1) or down in frequency: out(f) = in(f / warp)."""
    n = s.shape[1]
    src = np.clip(np.arange(n) / warp, 0, n - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = src - i0
    return s[:, i0] * (1 - w) + s[:, i1] * w


def apply(feat: WorldFeatures, v: Voicing, seed: int = 0) -> WorldFeatures:
    f0, sp, ap = feat.f0.copy(), feat.sp.copy(), feat.ap.copy()
    fp = feat.frame_period

    # Tempo: resample the frame sequence; voicing decisions follow the nearest frame.
    if abs(v.tempo - 1.0) > 1e-3:
        n = max(2, int(round(len(f0) / v.tempo)))
        voiced = _stretch((f0 > 0).astype(float), n) > 0.5
        lf = np.log(np.where(f0 > 0, f0, np.nan))
        idx = np.arange(len(lf))
        good = ~np.isnan(lf)
        if good.any():
            lf = np.interp(idx, idx[good], lf[good])
        f0 = np.where(voiced, np.exp(_stretch(lf, n)), 0.0) if good.any() else np.zeros(n)
        sp, ap = _stretch(sp, n), _stretch(ap, n)

    voiced = f0 > 0
    if voiced.any() and v.whisper < 0.5:
        t = np.arange(len(f0)) * fp / 1000.0
        st = 12 * np.log2(np.where(voiced, f0, 1.0))
        mean = st[voiced].mean()
        st = mean + v.f0_range * (st - mean) + v.f0_shift_st
        vt = t[voiced]
        span = max(vt[-1] - vt[0], 1e-3)
        st += v.f0_slope_st * (t - vt[0]) / span
        if v.f0_final_st:
            tail = np.clip((t - (vt[-1] - 0.4)) / 0.4, 0, 1)
            st += v.f0_final_st * tail
        if v.tremor_st:
            st += v.tremor_st * np.sin(2 * np.pi * 5.5 * t)
        if v.jitter_st:
            rng = np.random.default_rng(seed)
            k = max(1, int(40 / fp))  # ~40 ms correlated wander
            noise = np.repeat(rng.standard_normal(len(f0) // k + 1), k)[: len(f0)]
            st += v.jitter_st * noise
        f0 = np.where(voiced, np.clip(2 ** (st / 12), 50.0, 800.0), 0.0)

    freqs = feat.freqs
    if abs(v.warp - 1.0) > 1e-3:
        sp = _warp_bins(sp, v.warp)
        ap = _warp_bins(ap, v.warp)
    gain = v.tilt_db_oct * np.log2(np.maximum(freqs, 500.0) / 500.0) + v.gain_db
    sp = sp * (10.0 ** (gain / 10.0))[None, :]
    breath = v.breath
    if v.whisper >= 0.5:
        f0 = np.zeros_like(f0)
        ap = np.ones_like(ap)
    else:
        breath = min(1.0, 1 - (1 - breath) * (1 - v.whisper))
    if breath > 0:
        ap = 1 - (1 - ap) * (1 - breath)
    return WorldFeatures(f0, np.maximum(sp, 1e-16), np.clip(ap, 0.0, 1.0), feat.sr, fp)


def render(x: np.ndarray, sr: int, v: Voicing, seed: int = 0, frame_period: float = 5.0) -> np.ndarray:
    return synthesize(apply(analyze(x, sr, frame_period), v, seed))
