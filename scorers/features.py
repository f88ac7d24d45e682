"""Pair features from stored acoustics: what changed from src to tgt (used by the margin scorer
and the separability checks)."""
import numpy as np

DELTA_KEYS = ("f0_median_st", "f0_range_st", "f0_slope_st", "f0_final_st", "f0_wobble_st", "voiced_ratio",
              "energy_db", "ap_low", "tilt_db_oct")
RATIO_KEYS = ("rate_syl_s", "duration_s")
NAMES = tuple(f"d_{k}" for k in DELTA_KEYS) + tuple(f"logratio_{k}" for k in RATIO_KEYS)


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
    return np.array(deltas + ratios, dtype=np.float64)
