"""Audio I/O: FLAC bytes between stages, loading user files with clear errors."""
import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class BadAudio(ValueError):
    """Audio that cannot be used; the message names the input."""


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    return soxr.resample(x.astype(np.float32), sr_in, sr_out).astype(np.float32)


def encode_flac(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode(data: bytes, name: str = "audio") -> tuple[np.ndarray, int]:
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for garbage input
        raise BadAudio(f"{name}: cannot decode audio ({e})") from e
    return x.mean(axis=1), sr


def load(path, sr: int) -> np.ndarray:
    """Read any soundfile-supported file as mono float32 at `sr`."""
    path = Path(path)
    if not path.is_file():
        raise BadAudio(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise BadAudio(f"{path}: empty file")
    try:
        x, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise BadAudio(f"{path}: cannot decode audio ({e})") from e
    x = x.mean(axis=1)
    if len(x) < file_sr * 0.2:
        raise BadAudio(f"{path}: too short ({len(x) / file_sr:.3f} s; at least 0.2 s needed)")
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
