"""The judge's input: a log-mel spectrogram of a mono 16 kHz clip (25 ms windows, 10 ms hop, 64 bands
up to 8 kHz). No per-clip normalisation: level and spectral tilt are part of what an emotion or a
style sounds like (angry is loud, whisper is breathy); the model's own input scaling is global."""
from functools import lru_cache

import numpy as np

SR = 16000
N_FFT, HOP, N_MELS = 400, 160, 64


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa
    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=40.0, fmax=SR / 2).astype(np.float32)


def logmel(x: np.ndarray) -> np.ndarray:
    """(n_mels, frames) float32, in natural-log power."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    spec = np.abs(np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1)) ** 2
    return np.log(_mel_basis() @ spec.T + 1e-6).astype(np.float32)
