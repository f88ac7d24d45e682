"""Replayable augmentations. Each transform is a dataclass whose fields are everything needed to
redo it; `to_dict()` goes into the sample JSON and `replay(recipe, x, sr)` applies it again."""
import random
import shutil
from dataclasses import asdict, dataclass

import numpy as np


def require_sox() -> None:
    if shutil.which("sox") is None:
        raise ValueError("SoX is not installed: the `sox` program is needed (Debian/Ubuntu: apt-get install sox "
                         "libsox-fmt-all; macOS: brew install sox)")


def _seed(seed: int) -> None:
    # audiomentations draws from both `random` and numpy's global generator
    random.seed(seed)
    np.random.seed(seed % 2**32)


@dataclass
class SoxTempo:
    factor: float
    effect: str = "tempo"     # tempo keeps pitch; speed changes both, like a tape
    op: str = "sox_tempo"

    def __call__(self, x, sr):
        import sox
        require_sox()
        t = sox.Transformer()
        if self.effect == "tempo":
            t.tempo(self.factor, audio_type="s")
        elif self.effect == "speed":
            t.speed(self.factor)
        else:
            raise ValueError(f"unknown sox effect {self.effect!r}; use tempo or speed")
        t.set_output_format(rate=sr)
        return t.build_array(input_array=x.astype(np.float32), sample_rate_in=sr).astype(np.float32)


@dataclass
class Reverb:
    ir_id: str                # file of the room impulse response
    op: str = "reverb"

    def __call__(self, x, sr):
        from audiomentations import ApplyImpulseResponse
        return ApplyImpulseResponse(ir_path=[self.ir_id], p=1.0, leave_length_unchanged=True)(
            x.astype(np.float32), sr).astype(np.float32)


@dataclass
class AddNoise:
    source: str               # color | babble | folder
    snr_db: float
    seed: int
    noise_id: str | None = None   # file for babble/folder noise
    f_decay: float = 0.0          # colour of the noise, dB per octave (0 white, -3 pink, -6 brown)
    op: str = "add_noise"

    def __call__(self, x, sr):
        from audiomentations import AddBackgroundNoise, AddColorNoise
        _seed(self.seed)
        if self.source == "color":
            t = AddColorNoise(min_snr_db=self.snr_db, max_snr_db=self.snr_db, min_f_decay=self.f_decay,
                              max_f_decay=self.f_decay, p=1.0)
        else:
            t = AddBackgroundNoise(sounds_path=[self.noise_id], min_snr_db=self.snr_db, max_snr_db=self.snr_db, p=1.0)
        return t(x.astype(np.float32), sr).astype(np.float32)


@dataclass
class InsertSilences:
    positions_s: list[float]      # in the input's timeline
    lengths_s: list[float]
    removed_s: list[float] | None = None  # the natural pause at each position, replaced by the silence
    floor_db: float = -65.0       # a faint noise floor: digital zeros are not what recordings have
    seed: int = 0
    op: str = "insert_silences"

    def _steps(self):
        removed = self.removed_s or [0.0] * len(self.positions_s)
        return sorted(zip(self.positions_s, self.lengths_s, removed))

    def __call__(self, x, sr):
        rng = np.random.default_rng(self.seed)
        out, last = [], 0
        for pos, length, removed in self._steps():
            i = int(round(pos * sr))
            out += [x[last:i], (rng.standard_normal(int(round(length * sr))) * 10 ** (self.floor_db / 20))]
            last = i + int(round(removed * sr))
        out.append(x[last:])
        return np.concatenate(out).astype(np.float32)

    def inserted_spans(self) -> list[tuple[float, float]]:
        """Where the silences lie in the output timeline."""
        spans, shift = [], 0.0
        for pos, length, removed in self._steps():
            spans.append((pos + shift, pos + shift + length))
            shift += length - removed
        return spans


@dataclass
class JoinSegments:
    """The speech segments joined with padding_s of silence between them (half of it at each end).
    align_s > 0 lengthens each gap by less than align_s, so that every segment moves from its place in
    the input by a whole number of align_s: with align_s = the codec's token block (120 ms), copied
    speech falls on the same token grid in both clips and keeps its ids (bench/trim_alignment.py)."""
    segments_s: list[list[float]]   # speech segments found by VAD, seconds
    padding_s: float = 0.1          # silence kept between joined segments, and at the ends
    align_s: float = 0.0            # 0: gaps of exactly padding_s (recipes from before it replay so)
    op: str = "join_segments"

    def __call__(self, x, sr):
        half = int(round(self.padding_s / 2 * sr))
        block = int(round(self.align_s * sr))
        parts, n = [], 0
        for a, b in self.segments_s:
            i, j = int(a * sr), int(b * sr)
            lead = half + ((i - n - half) % block if block else 0)
            parts += [np.zeros(lead, np.float32), x[i:j], np.zeros(half, np.float32)]
            n += lead + (j - i) + half
        return np.concatenate(parts).astype(np.float32) if parts else x[:0]


@dataclass
class Gain:
    gain_db: float
    op: str = "gain"

    def __call__(self, x, sr):
        return (x * 10 ** (self.gain_db / 20)).astype(np.float32)


OPS = {c.__dataclass_fields__["op"].default: c
       for c in (SoxTempo, Reverb, AddNoise, InsertSilences, JoinSegments, Gain)}


def to_dict(t) -> dict:
    return asdict(t)


def from_dict(d: dict):
    if d.get("op") not in OPS:
        raise ValueError(f"unknown augmentation op {d.get('op')!r}; known: {sorted(OPS)}")
    return OPS[d["op"]](**d)


def replay(recipe: list[dict], x: np.ndarray, sr: int) -> np.ndarray:
    for step in recipe:
        x = from_dict(step)(x, sr)
    return x
