"""English ASR with pocketsphinx (model in the wheel, 16 kHz) and word error rate."""
import re
from functools import lru_cache

import numpy as np

from core.audio import resample


@lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder
    return Decoder(samprate=16000, loglevel="FATAL")


def pcm16(x: np.ndarray, dither: float = 0.0) -> bytes:
    """16 kHz float audio -> the 16-bit PCM pocketsphinx reads, peak-normalized to 0.9, plus seeded
    Gaussian dither of standard deviation `dither` (full scale 1)."""
    y = x / max(float(np.max(np.abs(x))), 1e-6) * 0.9
    if dither:
        y = y + np.random.default_rng(0).normal(0, dither, len(y))
    return (np.clip(y, -1, 1) * 32767).astype(np.int16).tobytes()


def decode_utterance(d, pcm: bytes) -> None:
    """One whole utterance through a pocketsphinx decoder, in whatever search mode it is set to."""
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()


def transcribe(x: np.ndarray, sr: int) -> str:
    d = _decoder()
    decode_utterance(d, pcm16(resample(x, sr, 16000)))
    hyp = d.hyp()
    return hyp.hypstr if hyp else ""


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower().replace("’", "'"))


def wer(ref: str, hyp: str) -> float:
    r, h = words(ref), words(hyp)
    d = np.arange(len(h) + 1)
    for i in range(1, len(r) + 1):
        prev, d[0] = d.copy(), i
        for j in range(1, len(h) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
    return float(d[len(h)] / max(len(r), 1))


def wer_of(x: np.ndarray, sr: int, text: str) -> float:
    return wer(text, transcribe(x, sr))
