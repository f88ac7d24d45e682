"""Give the substitution clone the pair's loudness gain (after Loudness in pair mode), so the three
clips of a sample share one level scale; lowered for this clip alone if it would pass the peak."""
import numpy as np

from core import audio
from stages.base import Resources, Stage


class SubstitutionLevel(Stage):
    name = "substitution_level"
    resources = Resources(cpus=0.25)
    batch_size = 8

    def process(self, row):
        m = row["meta"]
        if "sub.flac" not in row["members"]:
            return row
        x, sr = audio.decode(row["members"]["sub.flac"], f"{row['key']}.sub.flac")
        gain, limited = m["loudness"]["src"]["gain_db"], False
        peak = float(np.max(np.abs(x)))
        if peak > 0 and 20 * np.log10(peak) + gain > m["loudness"]["peak_db"]:
            gain, limited = m["loudness"]["peak_db"] - 20 * np.log10(peak), True
        row["members"]["sub.flac"] = audio.encode_flac(x * 10 ** (gain / 20), sr)
        m["loudness"]["sub"] = {"gain_db": round(float(gain), 3), "peak_limited": limited}
        m["sub_duration_s"] = round(len(x) / sr, 4)
        return row
