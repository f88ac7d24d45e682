"""Derive the other side of a pair from the clean source by a replayable recipe.

speed:   tgt = SoX tempo/speed of src
denoise: src = reverb + noise of the clean source, tgt = the clean source (the recipe builds src)
trim:    src = source with silences inserted between words (the trim stage then builds tgt)
The recipe is stored in the sample JSON (core/augment.py can replay it)."""
import numpy as np

from core import audio, augment
from stages.base import Reject, Resources, Stage


def pause_points(x: np.ndarray, sr: int, count: int, min_gap_s: float, rng) -> list[tuple[float, float]]:
    """Places between words: local minima of short-time energy inside the speech, well apart.
    Returns (start_s, length_s) of the quiet stretch there (length 0 if there is no pause), so the
    inserted silence can replace the natural pause instead of adding to it."""
    hop = int(0.01 * sr)
    n = len(x) // hop
    db = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    speech = np.flatnonzero(db > db.max() - 35)
    if len(speech) < 10:
        return []
    lo, hi = speech[0] + int(0.25 / 0.01), speech[-1] - int(0.25 / 0.01)
    smooth = np.convolve(db, np.ones(5) / 5, mode="same")
    cands = [i for i in range(lo + 1, hi - 1) if smooth[i] <= smooth[i - 1] and smooth[i] <= smooth[i + 1]]
    cands = sorted(cands, key=lambda i: smooth[i])  # the quietest first
    chosen = []
    for i in cands:
        if all(abs(i - j) * 0.01 >= min_gap_s for j in chosen):
            chosen.append(i)
        if len(chosen) == count:
            break
    quiet = db < db.max() - 40
    out = []
    for i in sorted(chosen):
        a = b = i
        while a > lo and quiet[a - 1] and quiet[i]:
            a -= 1
        while b < hi and quiet[b] and quiet[i]:
            b += 1
        out.append((round(a * 0.01, 3), round((b - a) * 0.01, 3)))
    return out


class AugmentPair(Stage):
    name = "augment_pair"
    resources = Resources(cpus=1)
    batch_size = 4

    def process(self, row):
        m = row["meta"]
        mem = row["members"]
        x, sr = audio.decode(mem["src.flac"], f"{row['key']}.src.flac")
        recipe = [augment.from_dict(d) for d in m["recipe"]]
        if m["edit_type"] == "speed":
            mem["tgt.flac"] = audio.encode_flac(augment.replay(m["recipe"], x, sr), sr)
        elif m["edit_type"] == "denoise":
            y = augment.replay(m["recipe"], x, sr)
            # the clean source is the target; the degraded copy is the input
            mem["src.flac"], mem["tgt.flac"] = audio.encode_flac(y, sr), mem["src.flac"]
        elif m["edit_type"] == "vad":
            if m.get("insert"):
                rng = np.random.default_rng(m["seed_int"])
                p = self.params
                points = pause_points(x, sr, m["n_silences"], p["min_gap_s"], rng)
                if not points:
                    raise Reject("no_pause_points", "no place between words for a silence", None)
                lengths = [round(float(rng.uniform(p["min_silence_s"], p["max_silence_s"])), 3) for _ in points]
                ins = augment.InsertSilences([a for a, _ in points], lengths, [r for _, r in points],
                                             seed=m["seed_int"])
                recipe = [ins]
                m["recipe"] = [augment.to_dict(ins)]
                m["inserted_silences_s"] = [list(s) for s in ins.inserted_spans()]
                mem["src.flac"] = audio.encode_flac(ins(x, sr), sr)
        else:
            raise ValueError(f"augment_pair: unknown edit_type {m['edit_type']!r}")
        m["recipe"] = [augment.to_dict(t) for t in recipe]
        return row
