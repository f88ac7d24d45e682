"""Shared loudness stage: bring clips to a target LUFS under a peak ceiling (pyloudnorm).

mode=independent normalizes src and tgt each; mode=pair measures src and applies the same gain to
both, which keeps a pair's level difference (shout vs whisper) while fixing the overall level.
Clips shorter than pyloudnorm's 400 ms block fall back to RMS level; silent clips are left as they
are. The gain applied is recorded per role."""
import numpy as np

from core import audio
from stages.base import Resources, Stage


def measure_lufs(x: np.ndarray, sr: int, meter=None) -> tuple[float, str]:
    if len(x) >= int(0.4 * sr) + 1:
        import pyloudnorm
        lufs = (meter or pyloudnorm.Meter(sr)).integrated_loudness(x.astype(np.float64))
        if np.isfinite(lufs):
            return float(lufs), "bs1770"
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0
    return (20 * np.log10(rms) - 0.691 if rms > 1e-6 else float("-inf")), "rms"


def loudness_gain(x: np.ndarray, sr: int, target_lufs: float, peak_db: float, meter=None) -> dict:
    lufs, method = measure_lufs(x, sr, meter)
    if not np.isfinite(lufs):
        return {"lufs_in": None, "method": method, "gain_db": 0.0, "peak_limited": False}
    gain = target_lufs - lufs
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    limited = False
    if peak > 0 and 20 * np.log10(peak) + gain > peak_db:
        gain, limited = peak_db - 20 * np.log10(peak), True
    return {"lufs_in": round(lufs, 2), "method": method, "gain_db": round(float(gain), 3), "peak_limited": limited}


class Loudness(Stage):
    name = "loudness"
    resources = Resources(cpus=0.25)
    batch_size = 8

    def setup(self):
        self._meters = {}

    def _meter(self, sr):
        import pyloudnorm
        return self._meters.setdefault(sr, pyloudnorm.Meter(sr))

    def process(self, row):
        p = self.params
        mem = row["members"]
        clips = {r: audio.decode(mem[f"{r}.flac"], f"{row['key']}.{r}.flac") for r in ("src", "tgt")
                 if mem.get(f"{r}.flac")}
        info = {}
        for role, (x, sr) in clips.items():
            if p["mode"] == "pair" and role == "tgt" and "src" in info:
                g = dict(info["src"], lufs_in=measure_lufs(x, sr, self._meter(sr))[0])
                peak = float(np.max(np.abs(x)))
                if peak > 0 and 20 * np.log10(peak) + g["gain_db"] > p["peak_db"]:
                    # the pair's gain must hold for both: lower it for src too
                    g["gain_db"], g["peak_limited"] = p["peak_db"] - 20 * np.log10(peak), True
                    info["src"]["gain_db"], info["src"]["peak_limited"] = g["gain_db"], True
            else:
                g = loudness_gain(x, sr, p["target_lufs"], p["peak_db"], self._meter(sr))
            info[role] = g
        for role, (x, sr) in clips.items():
            mem[f"{role}.flac"] = audio.encode_flac(x * 10 ** (info[role]["gain_db"] / 20), sr)
        row["meta"]["loudness"] = {"target_lufs": p["target_lufs"], "peak_db": p["peak_db"], "mode": p["mode"], **info}
        return row
