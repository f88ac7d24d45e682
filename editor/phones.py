"""Frame-level phone labels for English training clips, by forced alignment of the clip's own text.

Why: the codec's tokens are learned by rebuilding the log-mel, and an L1 loss on the mel does not
care which spectral details tell two phones apart. Step-Audio-EditX's linguistic tokens come from an
ASR encoder for that reason. We have no ASR model to distil, but we do have every clip's text and
pocketsphinx (model in its wheel), so training can also ask the decoder to name each frame's phone
from the tokens alone (editor.train.phone_weight): the tokens must then keep what separates phones.

Labels are per 10 ms frame, the editor's frame rate and pocketsphinx's: an index into PHONES, or
UNKNOWN where a clip has no English text, a word is missing from the dictionary, or alignment fails.
Caveat, stated wherever results are: the round-trip WER is measured with the same pocketsphinx
acoustic model, so a WER gain from these labels may partly be specific to that recogniser.
"""
from functools import lru_cache

import numpy as np

from editor.features import HOP
from scorers.asr import decode_utterance, pcm16, words

# CMU phones of pocketsphinx's en-us model; silence and its noise fillers map to SIL (index 0)
PHONES = ("SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
          "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW",
          "V", "W", "Y", "Z", "ZH")
UNKNOWN = -1
VERSION = 2   # of the labelling: part of the corpus cache key
_INDEX = {p: i for i, p in enumerate(PHONES)}
# pocketsphinx's frames are 25.6 ms windows starting at t*10 ms; ours are centred at t*10 ms: one frame later
_FRAME_SHIFT = 1


@lru_cache(maxsize=1)
def _aligner():
    from pocketsphinx import Decoder
    return Decoder(samprate=16000, loglevel="FATAL", lm=None)


def _pcm(x: np.ndarray) -> bytes:
    # dither of about one 16-bit step: pocketsphinx fails to align across stretches of digital zeros
    return pcm16(x, dither=3e-5)


def _phone_pass(d, text: str, pcm: bytes):
    """Word alignment, then the phone alignment it sets up -> (phone alignment or None where pocketsphinx
    gives up, (first, last + 1) frame of the aligned words or None)."""
    try:
        d.set_align_text(text)                  # raises on a word missing from the dictionary
        decode_utterance(d, pcm)
    except RuntimeError:
        return None, None
    spoken = [s for s in (d.seg() or []) if not s.word.startswith(("<", "["))]   # None: no hypothesis
    span = (spoken[0].start_frame, spoken[-1].end_frame + 1) if spoken else None
    try:
        d.set_alignment()
        decode_utterance(d, pcm)
    except RuntimeError:
        return None, span
    return d.get_alignment(), span


def align(x: np.ndarray, text: str, n_frames: int) -> np.ndarray:
    """(n_frames,) int8 phone indices of 16 kHz audio x speaking `text`; all UNKNOWN if it cannot be aligned."""
    labels = np.full(n_frames, UNKNOWN, np.int8)
    said = " ".join(words(text))
    if not said:
        return labels
    d, offset = _aligner(), 0
    alignment, span = _phone_pass(d, said, _pcm(x))
    if alignment is None and span is not None:
        # the phone pass sometimes fails on long leading or trailing silence although the word pass
        # succeeds: align the words' span alone and call the rest silence
        offset = max(span[0] - 5, 0)
        alignment, _ = _phone_pass(d, said, _pcm(x[offset * HOP:(span[1] + 5) * HOP]))
        if alignment is not None:
            labels[:] = 0
    if alignment is None:
        return labels
    for word in alignment:
        for phone in word:
            a = offset + phone.start + _FRAME_SHIFT
            labels[max(a, 0):max(a + phone.duration, 0)] = _INDEX.get(phone.name, 0)
    return labels


def coverage(labels: np.ndarray) -> float:
    """Share of frames with a label."""
    return float((labels != UNKNOWN).mean()) if len(labels) else 0.0
