"""Measure both clips of a pair (durations, level, clipping, F0, rate, tilt, aperiodicity).

Statistics are stored in the sample; decisions are made by later stages (filters, scorer)."""
import numpy as np

from core import audio
from stages.base import Resources, Stage
from tts.profile import profile


def clip_stats(x: np.ndarray, sr: int, text: str, language: str) -> dict:
    from scorers.features import envelope_db
    p = profile(x, sr, text, language)
    p.pop("envelope")
    p["env_db"] = [round(float(v), 2) for v in envelope_db(x, sr)]
    p["peak"] = float(np.max(np.abs(x)))
    p["clipped_frac"] = float(np.mean(np.abs(x) >= 0.999))
    return {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else v) for k, v in p.items()}


class MeasurePair(Stage):
    name = "measure_pair"
    resources = Resources(cpus=1)
    batch_size = 4

    def setup(self):
        self._last = (None, None)  # a src shared by consecutive pairs is measured once

    def process(self, row):
        m = row["meta"]
        acoustics = {}
        for role in ("src", "tgt"):
            data = row["members"][f"{role}.flac"]
            ident = (data, m["text"], m["language"])
            if self._last[0] == ident:
                acoustics[role] = self._last[1]
                continue
            x, sr = audio.decode(data, f"{row['key']}.{role}.flac")
            acoustics[role] = clip_stats(x, sr, m["text"], m["language"])
            self._last = (ident, acoustics[role])
        m["acoustics"] = acoustics
        m["durations"] = {r: acoustics[r]["duration_s"] for r in acoustics}
        return row
