"""Voicing: the parameters the WORLD renderer applies to a base voice.

One dataclass serves three roles: a speaker's timbre, an emotion or style preset, and the
transform that a zero-shot clone estimates from a prompt clip. Shifts add and ratios multiply,
so `timbre + preset.at(intensity)` is the voicing of an emotional prompt clip.
"""
from dataclasses import asdict, dataclass, fields, replace


class VoicingRejected(ValueError):
    """No voicing estimate of a prompt passed its checks: `reasons` says what failed, per try."""

    def __init__(self, prompt: str, reasons: list[str]):
        super().__init__(f"prompt {prompt!r}: voicing rejected: {'; '.join(reasons)}")
        self.prompt, self.reasons = prompt, reasons

    def __reduce__(self):  # crosses process boundaries (Ray) with its fields intact
        return VoicingRejected, (self.prompt, self.reasons)


@dataclass(frozen=True)
class Voicing:
    f0_shift_st: float = 0.0   # F0 level, semitones
    f0_range: float = 1.0      # scale of log-F0 excursions around the utterance mean
    f0_slope_st: float = 0.0   # added declination (negative) or incline, semitones start to end
    f0_final_st: float = 0.0   # added rise (question, surprise) or fall over the final 0.4 s
    tremor_st: float = 0.0     # 5.5 Hz F0 modulation depth (fear, old age, sobbing)
    jitter_st: float = 0.0     # slow random F0 wander (unsteady, creaky voice)
    tempo: float = 1.0         # speaking rate, >1 is faster
    gain_db: float = 0.0       # loudness
    tilt_db_oct: float = 0.0   # spectral tilt above 500 Hz: + is bright/pressed, - is soft/dark
    warp: float = 1.0          # formant warp: >1 shorter vocal tract (child, female)
    breath: float = 0.0        # 0..1 extra aperiodicity (breathy voice)
    whisper: float = 0.0       # >=0.5 removes voicing entirely

    _RATIOS = ("f0_range", "tempo", "warp")

    def __add__(self, other: "Voicing") -> "Voicing":
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in self._RATIOS:
                out[f.name] = a * b
            elif f.name in ("breath", "whisper"):
                out[f.name] = min(1.0, 1 - (1 - a) * (1 - b))
            else:
                out[f.name] = a + b
        return Voicing(**out)

    def at(self, intensity: float) -> "Voicing":
        """Interpolate from neutral (0) through this preset (1); >1 extrapolates."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in self._RATIOS:
                out[f.name] = v ** intensity
            elif f.name in ("breath", "whisper"):
                out[f.name] = min(1.0, v * intensity)
            else:
                out[f.name] = v * intensity
        return Voicing(**out)

    def to_dict(self) -> dict:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Voicing":
        return cls(**{k: float(v) for k, v in d.items() if k in {f.name for f in fields(cls)}})

    def replace(self, **kw) -> "Voicing":
        return replace(self, **kw)
