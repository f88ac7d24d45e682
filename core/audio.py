"""Audio I/O: FLAC bytes between stages, loading user files with clear errors."""
import io
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class BadAudio(ValueError):
    """Audio that cannot be used; the message names the input."""


class TooLong(BadAudio):
    """A file longer than the limit, judged from its header before any decoding."""

    def __init__(self, path, seconds: float, limit_s: float, limit_key: str):
        super().__init__(f"{path}: {seconds:.1f} s by the file header, limit {limit_s:g} s ({limit_key})")
        self.seconds = seconds


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    return soxr.resample(x.astype(np.float32), sr_in, sr_out).astype(np.float32)


def encode_flac(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


MAX_CHANNELS = 8


def decode(data: bytes, name: str = "audio", max_s: float | None = None) -> tuple[np.ndarray, int]:
    """Encoded audio bytes -> (mono float32, sample rate). With max_s, audio longer than that by its header
    is refused before it is decoded, and at most max_s of it is ever read (a small compressed upload can
    hold hours of audio)."""
    try:
        info = sf.info(io.BytesIO(data))
        if max_s is not None and info.samplerate > 0 and info.frames / info.samplerate > max_s:
            raise TooLong(name, info.frames / info.samplerate, max_s, "the request limit")
        if info.channels > MAX_CHANNELS:
            raise BadAudio(f"{name}: {info.channels} channels, at most {MAX_CHANNELS}")
        frames = -1 if max_s is None else int(max_s * info.samplerate) + 1
        x, sr = sf.read(io.BytesIO(data), frames=frames, dtype="float32", always_2d=True)
    except BadAudio:
        raise
    except Exception as e:  # soundfile raises several types for garbage input
        reason = re.sub(r"Error opening <[^>]*>: ", "", str(e))   # not the in-memory buffer's repr
        raise BadAudio(f"{name}: cannot decode audio ({reason})") from e
    return x.mean(axis=1), sr


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise BadAudio(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise BadAudio(f"{path}: empty file")


def header_duration(path) -> float:
    """Seconds of audio in `path` by its header (frames / sample rate), without decoding it."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises several types for garbage input
        raise BadAudio(f"{path}: cannot decode audio ({e})") from e
    if info.samplerate <= 0:
        raise BadAudio(f"{path}: invalid sample rate {info.samplerate} in the header")
    return info.frames / info.samplerate


def check_duration(path, max_s: float, limit_key: str) -> None:
    """Raise TooLong when the header says `path` is longer than `max_s` (named `limit_key` in the message)."""
    seconds = header_duration(path)
    if seconds > max_s:
        raise TooLong(path, seconds, max_s, limit_key)


def load(path, sr: int, max_s: float | None = None, limit_key: str = "filters.max_duration_s",
         min_s: float = 0.2) -> np.ndarray:
    """Read any soundfile-supported file as mono float32 at `sr`; with `max_s`, a longer file is
    refused from its header (TooLong) before it is decoded; one shorter than min_s is refused."""
    path = Path(path)
    if max_s is None:
        _check_file(path)
    else:
        check_duration(path, max_s, limit_key)  # checks the file too
    try:
        x, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise BadAudio(f"{path}: cannot decode audio ({e})") from e
    x = x.mean(axis=1)
    if len(x) < file_sr * min_s:
        raise BadAudio(f"{path}: too short ({len(x) / file_sr:.3f} s; at least {min_s:g} s needed)")
    if not np.isfinite(x).all() or np.max(np.abs(x)) < 1e-4:
        raise BadAudio(f"{path}: silent or invalid samples")
    return resample(x, file_sr, sr)


def check_waveform(x: np.ndarray, sr: int, name: str) -> None:
    if x.ndim != 1 or len(x) < sr * 0.2:
        raise BadAudio(f"{name}: too short or not mono ({x.shape})")
    if not np.isfinite(x).all() or np.max(np.abs(x)) < 1e-4:
        raise BadAudio(f"{name}: silent or invalid samples")


def peak_normalize(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)
