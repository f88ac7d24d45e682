"""Pair features from stored acoustics: what changed from src to tgt (used by the margin scorer
and the separability checks)."""
import numpy as np

DELTA_KEYS = ("f0_median_st", "f0_range_st", "f0_slope_st", "f0_final_st", "f0_wobble_st", "voiced_ratio",
              "energy_db", "ap_low", "tilt_db_oct")
RATIO_KEYS = ("rate_syl_s", "duration_s")
TIMBRE_KEYS = ("abs_log_warp", "envelope_residual_db2", "envelope_change_db")
NAMES = tuple(f"d_{k}" for k in DELTA_KEYS) + tuple(f"logratio_{k}" for k in RATIO_KEYS) + TIMBRE_KEYS
ENV_GRID = np.geomspace(150, 6000, 40)


def envelope_db(x: np.ndarray, sr: int) -> np.ndarray:
    """Long-term spectral envelope (cepstrally smoothed, loud frames), dB on a log-frequency grid."""
    n, hop = 512, max(1, sr // 100)
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    level = 10 * np.log10(spec.mean(axis=1) + 1e-12)
    cep = np.fft.irfft(np.log(spec[level > level.max() - 25] + 1e-10), axis=1)
    cep[:, 30:-29] = 0  # lifter: keep the envelope, drop the harmonics
    env = (np.fft.rfft(cep, axis=1).real * 10 / np.log(10)).mean(axis=0)
    return np.interp(ENV_GRID, np.linspace(0, sr / 2, len(env)), env)


def timbre_change(env_src, env_tgt) -> tuple[float, float, float]:
    """Best formant warp between two envelopes (with a free tilt), the residual after it, and the
    overall envelope change. A changed speaker leaves a large residual; a style may warp."""
    a, b = np.asarray(env_src), np.asarray(env_tgt)
    lg = np.log(ENV_GRID)
    band = (ENV_GRID > 250) & (ENV_GRID < 5000)
    A = np.stack([lg[band], np.ones(band.sum())], 1)
    best = (np.inf, 1.0)
    for w in np.arange(0.8, 1.2501, 0.01):
        d = (b - np.interp(lg, lg + np.log(w), a))[band]
        coef, *_ = np.linalg.lstsq(A, d, rcond=None)
        err = float(np.mean((d - A @ coef) ** 2))
        if err < best[0]:
            best = (err, w)
    change = float(np.sqrt(np.mean((b - a - np.mean(b - a)) ** 2)))
    return abs(float(np.log(best[1]))), best[0], change


def _v(a: dict, k: str) -> float:
    v = a.get(k)
    return float(v) if v is not None and np.isfinite(v) else 0.0


def pair_features(acoustics: dict) -> np.ndarray:
    s, t = acoustics["src"], acoustics["tgt"]
    deltas = []
    for k in DELTA_KEYS:
        if k == "f0_median_st" and not (np.isfinite(s.get(k) or np.nan) and np.isfinite(t.get(k) or np.nan)):
            deltas.append(0.0)  # unvoiced (whisper) target: pitch is undefined, voiced_ratio carries it
        else:
            deltas.append(_v(t, k) - _v(s, k))
    ratios = [np.log(max(_v(t, k), 1e-3) / max(_v(s, k), 1e-3)) for k in RATIO_KEYS]
    timbre = list(timbre_change(s["env_db"], t["env_db"])) if "env_db" in s and "env_db" in t else [0.0] * 3
    return np.array(deltas + ratios + timbre, dtype=np.float64)
