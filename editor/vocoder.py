"""Weight-free vocoder: log-mel -> linear magnitude (pseudo-inverse) -> fast Griffin-Lim (momentum 0.99).

Batched in torch, so it runs on the GPU next to the decoder and on the CPU in tests.
"""
import numpy as np
import torch

from editor.features import HOP, LOG_FLOOR, N_FFT, mel_basis


def griffin_lim(mels: list[np.ndarray], device="cpu", n_iter: int = 64, momentum: float = 0.99, seed: int = 0) -> list[np.ndarray]:
    """Log-mel frames (T_i, N_MELS) per clip -> waveforms of T_i * HOP samples."""
    device = torch.device(device)
    t_max = max(len(m) for m in mels)
    pinv = torch.linalg.pinv(torch.as_tensor(mel_basis()).T).to(device)           # (freq, mels)
    mel = torch.zeros(len(mels), t_max + 1, mels[0].shape[1], device=device)
    for i, m in enumerate(mels):
        mel[i, :len(m)] = torch.exp(torch.as_tensor(m, device=device, dtype=torch.float32))
    mag = (pinv @ mel.transpose(1, 2)).clamp(min=LOG_FLOOR)                      # (B, freq, T+1)
    y = phase_from_magnitude(mag, t_max * HOP, n_iter, momentum, seed).cpu().numpy()
    return [np.clip(y[i, : len(m) * HOP], -1.0, 1.0).astype(np.float32) for i, m in enumerate(mels)]


def phase_from_magnitude(mag: torch.Tensor, length: int, n_iter: int = 64, momentum: float = 0.99,
                         seed: int = 0) -> torch.Tensor:
    """Fast Griffin-Lim: (..., freq, frames) STFT magnitude -> (..., length) waveform."""
    window = torch.hann_window(N_FFT, device=mag.device)
    g = torch.Generator(device="cpu").manual_seed(seed)
    angles = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=g)).to(mag.device)
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        y = torch.istft(mag * angles, N_FFT, HOP, window=window, length=length)
        s = torch.stft(y, N_FFT, HOP, window=window, return_complex=True)
        accel = s - (momentum / (1 + momentum)) * prev
        prev = s
        angles = accel / (accel.abs() + 1e-8)
    return torch.istft(mag * angles, N_FFT, HOP, window=window, length=length)
