"""Audio as the tokens arrive: the editor's streaming decode.

The codec's decoder and vocoder look at the whole token sequence, so a prefix's audio is not exactly
the start of the whole answer's audio. The stream therefore re-decodes the answer so far each time it
has grown enough and emits only the samples that the next tokens can hardly change: all but the last
`hold_s` of the new decode. The held tail of one decode is crossfaded into the next at the boundary,
so no step in level or phase is left where chunks meet. Decodes happen when the answer has grown by
`chunk_s` and by half of itself, so the total decode work stays within a small multiple of one decode
of the whole answer, and the first chunk comes after `chunk_s` of audio tokens.
"""
from typing import Callable, Iterable, Iterator

import math

import numpy as np

SR = 16000


class AudioStream:
    """Emits 16 kHz chunks from successive decodes of a growing answer (decode: ids -> audio)."""

    def __init__(self, decode: Callable[[np.ndarray], np.ndarray], tokens_per_s: float, chunk_s: float = 1.0,
                 hold_s: float = 0.25, fade_s: float = 0.02):
        if not (math.isfinite(chunk_s) and chunk_s > 0) or hold_s < fade_s:
            raise ValueError(f"chunk_s={chunk_s} must be > 0 and hold_s={hold_s} >= fade_s={fade_s}")
        self.decode, self.tps = decode, tokens_per_s
        self.chunk_s, self.hold, self.fade = chunk_s, int(hold_s * SR), int(fade_s * SR)
        self.emitted = 0                      # samples already given out
        self.tail = np.zeros(0, np.float32)   # the last decode's samples from `emitted` on (held back)
        self.next_at = chunk_s * tokens_per_s  # answer length (tokens) of the next decode

    def _emit(self, wav: np.ndarray, final: bool) -> np.ndarray:
        wav = np.asarray(wav, np.float32)
        new = wav[self.emitted:].copy()
        f = min(self.fade, len(self.tail), len(new))
        if f:   # the held tail of the last decode fades into this decode
            ramp = np.linspace(0.0, 1.0, f, dtype=np.float32)
            new[:f] = self.tail[:f] * (1 - ramp) + new[:f] * ramp
        cut = len(new) if final else max(0, len(new) - self.hold)
        out, self.tail = new[:cut], new[cut:]
        self.emitted += cut
        return out

    def feed(self, ids: np.ndarray, final: bool = False) -> np.ndarray | None:
        """The answer so far -> the next chunk, or None while it has not grown enough."""
        if not final and len(ids) < self.next_at:
            return None
        self.next_at = max(len(ids) + self.chunk_s * self.tps, 1.5 * len(ids))
        return self._emit(self.decode(ids), final)


def stream(answers: Iterable[list[np.ndarray]], audio: AudioStream) -> Iterator[np.ndarray]:
    """Chunks of row 0's audio from generate_stream's items (the last one is the final answer)."""
    it = iter(answers)
    last = next(it)
    for nxt in it:
        chunk = audio.feed(last[0])
        if chunk is not None and len(chunk):
            yield chunk
        last = nxt
    chunk = audio.feed(last[0], final=True)
    if len(chunk):
        yield chunk
