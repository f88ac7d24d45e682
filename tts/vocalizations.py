"""The ten paralinguistic vocalizations in a speaker's voice, and tagged utterances built from them.

Every vocalization is made in WORLD from the speaker's own base voice: the spectral envelope of a
syllable that the base voice speaks (so the formants are that voice's), a designed F0 contour,
voicing and aperiodicity, then the speaker's voicing (F0 level, formant warp, tilt, breathiness)
applied exactly as for the speaker's speech. The speaker therefore stays the same across the words
and the vocalizations.

    Laughter             3-5 short voiced bursts, high and falling, breathy, aspiration between
    Breathing            an inhale: vowel-shaped, band-passed breath noise swelling and cut off
    Sigh                 exhaled breath noise, then a breathy voiced 'haah' falling ~10 semitones
    Uhm                  long, level then sagging filled pause
    Confirmation-en      short falling 'mm-hm' / 嗯
    Surprise-oh/ah/wa    rise-fall (peak 6-8 semitones above the speaker's median)
    Question-ei          rising 'eh?' / 诶
    Dissatisfaction-hnn  falling 'hmm' / 哼 after a breathy onset
"""
from dataclasses import dataclass

import numpy as np
import pyworld

from core.nvspeech import is_chinese, split_tags
from tts.engine import BASE_LEVEL_DB, _ceiling, _set_level
from tts.voicing import Voicing
from tts.world_render import WorldFeatures, _stretch, apply, synthesize


VERSION = "vocalizations-1"  # part of sample keys: a change here re-renders instead of reusing


@dataclass(frozen=True)
class Shape:
    syllable: tuple[str, str]   # what the base voice says for the envelope: (English, Chinese)
    dur_s: float                # voiced part
    contour: tuple              # F0 knots, semitones from the speaker's median, spread over the voiced part
    level_db: float             # level relative to the speaker's speech
    breath: float = 0.0         # extra aperiodicity of the voiced part
    onset_s: float = 0.0        # breath noise before voicing (the 'h' of hmm, haah)
    tail_s: float = 0.0         # breath noise after voicing


SHAPES = {
    "Uhm": Shape(("Uhm.", "嗯"), 0.55, (0, -0.5, -1.5, -3), -3),
    "Confirmation-en": Shape(("Mhm.", "嗯"), 0.32, (1.5, 2, -3), -3),
    "Surprise-oh": Shape(("Oh!", "哦"), 0.42, (0, 6, 6.5, 1), 0),
    "Surprise-ah": Shape(("Ah!", "啊"), 0.42, (1, 8, 8, 2), 0),
    "Surprise-wa": Shape(("Wow!", "哇"), 0.5, (0, 4, 7, 1), 0),
    "Question-ei": Shape(("Eh?", "诶"), 0.4, (-1, -0.5, 2, 7), -2),
    "Dissatisfaction-hnn": Shape(("Hmm.", "哼"), 0.45, (4, 3, -1, -4), -3, breath=0.2, onset_s=0.06),
    "Sigh": Shape(("Haa.", "唉"), 0.55, (6, 4, 0, -4), -5, breath=0.3, onset_s=0.25, tail_s=0.15),
    "Laughter": Shape(("Ha!", "哈"), 0.0, (), 0, breath=0.3),
    "Breathing": Shape(("Haa.", "哈"), 0.0, (), -14),
}
_ASPIRATION = 10 ** (-14 / 10)  # power of breath noise against the vowel it is shaped like


def _voiced_ap(freqs: np.ndarray, breath: float) -> np.ndarray:
    """Aperiodicity of modal voice (periodic low, noisy high), made breathier by `breath`."""
    ap = 0.02 + 0.9 * (freqs / freqs[-1]) ** 2
    return np.clip(1 - (1 - ap) * (1 - breath), 0, 1)


def _ramp(n: int, a: float, b: float) -> np.ndarray:
    return np.linspace(a, b, n) if n > 1 else np.full(n, a)


class Vocalizer:
    """Renders vocalizations for one engine; keeps the syllable envelopes it has analysed."""

    def __init__(self, engine):
        self.engine = engine
        self.sr, self.fp = engine.sr, engine.frame_period
        self._env: dict[tuple, np.ndarray] = {}

    def envelope(self, text: str, language: str, base_voice: str | None) -> np.ndarray:
        """Spectral envelope frames (power) of the base voice speaking `text`, silence trimmed."""
        k = (text, language, base_voice)
        if k not in self._env:
            if len(self._env) >= 64:
                self._env.clear()
            # harvest, not dio: a one-syllable clip leaves dio no context, and a wrong F0 leaves
            # harmonic ripple in the envelope that breath noise would then carry
            x = self.engine.base(text, language, base_voice).astype(np.float64)
            f0, t = pyworld.harvest(x, self.sr, frame_period=self.fp, f0_floor=55.0, f0_ceil=700.0)
            sp = pyworld.cheaptrick(x, f0, t, self.sr)
            db = 10 * np.log10(sp.sum(axis=1) + 1e-16)
            keep = np.flatnonzero(db > db.max() - 25)
            self._env[k] = sp[keep[0]: keep[-1] + 1]
        return self._env[k]

    def _vowel(self, text, language, base_voice) -> np.ndarray:
        """One vowel spectrum: the mean of the syllable's loudest frames."""
        env = self.envelope(text, language, base_voice)
        db = 10 * np.log10(env.sum(axis=1) + 1e-16)
        v = np.log(env[db >= np.percentile(db, 60)].mean(axis=0))
        k = max(1, int(300 / (self.sr / 2) * len(v)))  # ~300 Hz smoothing: formants stay, harmonics go
        return np.exp(np.convolve(np.pad(v, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), mode="valid"))

    def render(self, tag: str, language: str, voicing: Voicing, base_voice: str | None, ref_f0: float,
               seed: int = 0) -> np.ndarray:
        """One vocalization; ref_f0 is the base voice's median F0 (Hz) in this utterance, so the
        speaker's F0 shift lands the vocalization at the speaker's pitch."""
        shape = SHAPES[tag]
        syl = shape.syllable[1 if is_chinese(language) else 0]
        rng = np.random.default_rng(seed)
        n_bins = self.envelope(syl, language, base_voice).shape[1]
        freqs = np.linspace(0, self.sr / 2, n_bins)
        if tag == "Laughter":
            f0, sp, ap = self._laughter(self._vowel(syl, language, base_voice), freqs, ref_f0, rng)
        elif tag == "Breathing":
            f0, sp, ap = self._inhale(self._vowel(syl, language, base_voice), freqs, rng)
        else:
            f0, sp, ap = self._interjection(shape, self.envelope(syl, language, base_voice), freqs, ref_f0)
        feat = WorldFeatures(f0, np.maximum(sp, 1e-16), ap, self.sr, self.fp)
        # the speaker's voice, not its speaking rate: tempo is the words' business
        y = synthesize(apply(feat, voicing.replace(tempo=1.0, gain_db=0.0), seed))
        return _ceiling(_set_level(y, self.sr, BASE_LEVEL_DB + voicing.gain_db + shape.level_db))

    def _n(self, seconds: float) -> int:
        return max(2, int(round(seconds * 1000 / self.fp)))

    def _interjection(self, shape: Shape, env: np.ndarray, freqs, ref_f0):
        n = self._n(shape.dur_s)
        sp = _stretch(env, n)
        fade = np.minimum(1, np.minimum(np.arange(n) + 1, n - np.arange(n)) / 4)  # 20 ms edges, no clicks
        sp = sp * fade[:, None] ** 2
        knots = np.interp(np.linspace(0, len(shape.contour) - 1, n), np.arange(len(shape.contour)), shape.contour)
        knots = np.convolve(np.pad(knots, 4, mode="edge"), np.ones(9) / 9, mode="valid")  # round the corners
        f0 = ref_f0 * 2 ** (knots / 12)
        ap = np.tile(_voiced_ap(freqs, shape.breath), (n, 1))
        parts = [(f0, sp, ap)]
        if shape.onset_s:  # breath shaped like the first sound, swelling into the voice
            k = self._n(shape.onset_s)
            parts.insert(0, (np.zeros(k), np.outer(_ramp(k, 0.05, 1.0) * _ASPIRATION, sp[min(4, n - 1)]),
                             np.ones((k, len(freqs)))))
        if shape.tail_s:
            k = self._n(shape.tail_s)
            parts.append((np.zeros(k), np.outer(_ramp(k, 1.0, 0.02) * _ASPIRATION, sp[max(0, n - 5)]),
                          np.ones((k, len(freqs)))))
        return [np.concatenate(p) for p in zip(*parts)]

    def _laughter(self, vowel, freqs, ref_f0, rng):
        parts = []
        n_bursts = int(rng.integers(3, 6))
        for b in range(n_bursts):
            k_asp = self._n(rng.uniform(0.06, 0.09))
            k_v = self._n(rng.uniform(0.07, 0.1) * (1.5 if b == n_bursts - 1 else 1.0))
            parts.append((np.zeros(k_asp), np.outer(_ramp(k_asp, 0.3, 1.0) * _ASPIRATION, vowel),
                          np.ones((k_asp, len(freqs)))))
            start = 7.0 - 1.2 * b  # high, each burst a bit lower, each falling
            f0 = ref_f0 * 2 ** (_ramp(k_v, start, start - 2.5) / 12)
            amp = np.sin(np.linspace(0.15, 1.0, k_v) * np.pi) ** 0.7 * 10 ** (-1.5 * b / 10)
            parts.append((f0, np.outer(amp, vowel), np.tile(_voiced_ap(freqs, 0.3), (k_v, 1))))
        k = self._n(0.08)  # the out-breath that ends a laugh
        parts.append((np.zeros(k), np.outer(_ramp(k, 1.0, 0.05) * _ASPIRATION, vowel),
                      np.ones((k, len(freqs)))))
        return [np.concatenate(p) for p in zip(*parts)]

    def _inhale(self, vowel, freqs, rng):
        n = self._n(rng.uniform(0.4, 0.6))
        # band-pass ~700 Hz .. 5 kHz (4th order): an inhale is airflow noise, no low vocal murmur
        band = 1 / (1 + (700 / np.maximum(freqs, 1)) ** 8) / (1 + (freqs / 5000) ** 8)
        t = np.linspace(0, 1, n)
        swell = np.where(t < 0.7, (t / 0.7) ** 1.5, np.cos((t - 0.7) / 0.3 * np.pi / 2) ** 2) + 0.03
        return np.zeros(n), np.outer(swell, vowel * band), np.ones((n, len(freqs)))


def _trim(x: np.ndarray, sr: int, floor_db: float = -40, margin_s: float = 0.02) -> np.ndarray:
    """Cut a rendering's leading and trailing silence, so that pauses are ours to set."""
    hop = int(0.005 * sr)
    n = len(x) // hop
    db = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() + floor_db)
    m = int(margin_s * sr)
    return x[max(0, loud[0] * hop - m): min(len(x), (loud[-1] + 1) * hop + m)]


def render_tagged(engine, text_with_tags: str, language: str, voicing: Voicing, base_voice: str | None,
                  seed: int = 0, pause_s=(0.12, 0.25), edge_s: float = 0.15,
                  vocalizer: Vocalizer | None = None) -> tuple[np.ndarray, list[dict]]:
    """Speak a tagged transcript: the words in pieces between tags, each tag's vocalization in its
    place with a short pause either side. Returns the waveform and the events
    [{tag, start_s, end_s}] (their spans in that waveform)."""
    sr = engine.sr
    voc = vocalizer or Vocalizer(engine)
    rng = np.random.default_rng(seed)
    parts = split_tags(text_with_tags)
    speech, f0s = {}, []
    for i, (kind, s) in enumerate(parts):
        if kind == "text":
            speech[i] = _trim(engine.render(s, language, voicing, base_voice, seed), sr)
            f0 = engine.base_features(s, language, base_voice)[1].f0  # cached by the render just done
            f0s.append(f0[f0 > 0])
    f0s = np.concatenate(f0s) if f0s else np.zeros(0)
    ref_f0 = float(np.median(f0s)) if len(f0s) > 20 else 120.0
    pieces, events, t = [np.zeros(int(edge_s * sr), np.float32)], [], int(edge_s * sr)
    for i, (kind, s) in enumerate(parts):
        if i > 0 and (kind == "tag" or parts[i - 1][0] == "tag"):
            gap = np.zeros(int(rng.uniform(*pause_s) * sr), np.float32)
            pieces.append(gap)
            t += len(gap)
        if kind == "text":
            y = speech[i]
        else:
            y = voc.render(s, language, voicing, base_voice, ref_f0, seed + i)
            events.append({"tag": s, "start_s": round(t / sr, 3), "end_s": round((t + len(y)) / sr, 3)})
        pieces.append(y.astype(np.float32))
        t += len(y)
    pieces.append(np.zeros(int(edge_s * sr), np.float32))
    return np.concatenate(pieces), events
