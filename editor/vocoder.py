"""Weight-free vocoders, batched in torch (the GPU next to the decoder, the CPU in tests):

- griffin_lim: log-mel -> linear magnitude (pseudo-inverse) -> fast Griffin-Lim (momentum 0.99);
  pitch only as far as the mel's low bands resolve harmonics;
- source_filter: a harmonic excitation at the frames' F0 plus noise, shaped to the log-mel; the
  pitch is exactly the decoder's F0;
- harmonic_gl (the default): Griffin-Lim on the mel's magnitude, its phase started from the
  source-filter rendering instead of at random: the timbre of griffin_lim with the pitch of the
  predicted F0.

A clip's waveform does not depend on what it is batched with: each is followed by TAIL silent frames
whether alone or padded, its noise and random phases are drawn per clip in fixed-size chunks (a longer
batchmate does not shift them), and its harmonics are levelled over its own length.
"""
from functools import lru_cache

import numpy as np
import torch

from editor.features import HOP, LOG_FLOOR, N_FFT, SAMPLE_RATE, mel_basis, seeded_chunks

TAIL = N_FFT // HOP + 1     # silent frames after every clip: its last STFT frames see silence, not a batchmate's padding
_CHUNK = 4096


def _span(lengths: list[int]) -> int:
    """Frames of a batch: the longest clip and its silent tail."""
    return max(lengths) + TAIL


def _per_clip(shape: tuple, n: int, rows: int, seed: int, draw) -> torch.Tensor:
    """(rows, *shape, n) random values along the last axis, the same for every clip and not shifted by
    a longer batchmate (features.seeded_chunks)."""
    return seeded_chunks(n, _CHUNK, seed, lambda g: draw((*shape, _CHUNK), generator=g), -1).expand(rows, *shape, n)


def _unbatch(y: torch.Tensor, lengths: list[int]) -> list[np.ndarray]:
    y = y.cpu().numpy()
    return [np.clip(y[i, : n * HOP], -1.0, 1.0).astype(np.float32) for i, n in enumerate(lengths)]


def _padded(rows: list[np.ndarray], length: int, fill: float, device) -> torch.Tensor:
    """(B, length, ...) float32 on `device`: the clips' rows padded with `fill`, filled on the host and
    copied once (a copy per clip is a host-device round trip each on CUDA)."""
    x = np.full((len(rows), length, *rows[0].shape[1:]), fill, np.float32)
    for i, r in enumerate(rows):
        x[i, :len(r)] = r
    return torch.from_numpy(x).to(device)


# The constants every call uses, made once per device: on CUDA each would otherwise be a host-to-device
# copy or a kernel per call, and a server's codec thread pays every one of them on every call
@lru_cache(maxsize=8)
def _pinv_on(device: torch.device) -> torch.Tensor:
    return torch.linalg.pinv(torch.as_tensor(mel_basis()).T).to(device)             # (freq, mels), made on the CPU


@lru_cache(maxsize=8)
def _basis_on(device: torch.device) -> torch.Tensor:
    return torch.as_tensor(mel_basis(), device=device)                              # (freq, mels)


@lru_cache(maxsize=8)
def _window_on(device: torch.device) -> torch.Tensor:
    return torch.hann_window(N_FFT, device=device)


@lru_cache(maxsize=256)
def _envelope_on(frames: int, device: torch.device) -> torch.Tensor:
    """The squared window overlap-added over `frames` STFT frames: what _istft divides by."""
    w2 = (_window_on(device) ** 2)[None, :, None].expand(1, N_FFT, frames)
    return torch.nn.functional.fold(w2, (1, N_FFT + HOP * (frames - 1)), (1, N_FFT), stride=(1, HOP)).flatten()


def _istft(X: torch.Tensor, length: int) -> torch.Tensor:
    """torch.istft(X, N_FFT, HOP, window=hann, center=True, length=length), (..., freq, frames) -> (..., length),
    without its host read: torch.istft checks the window envelope for zeros with a host read on every call
    (on CUDA a wait for everything queued on the stream, which also makes it impossible to capture in a
    CUDA graph). A Hann window at this hop has no zero inside the kept span, so the check is not needed."""
    T = X.shape[-1]
    frames = torch.fft.irfft(X, n=N_FFT, dim=-2) * _window_on(X.device)[:, None]
    full = N_FFT + HOP * (T - 1)
    y = torch.nn.functional.fold(frames.reshape(-1, N_FFT, T), (1, full), (1, N_FFT), stride=(1, HOP))
    start = N_FFT // 2
    y = y.reshape(*X.shape[:-2], full)[..., start:start + length] / _envelope_on(T, X.device)[start:start + length]
    return torch.nn.functional.pad(y, (0, length - y.shape[-1]))


def mel_magnitude(mels: list[np.ndarray], device) -> torch.Tensor:
    """Log-mel frames per clip -> zero-padded linear STFT magnitude (B, freq, T_max + 1), by the
    pseudo-inverse of the mel filterbank."""
    return _magnitude(_padded(mels, _span([len(m) for m in mels]) + 1, -np.inf, device))


def _magnitude(mel: torch.Tensor) -> torch.Tensor:
    """(B, T, mels) log-mel, -inf in the padding -> (B, freq, T) linear magnitude (padding: exp(-inf) = 0)."""
    return (_pinv_on(mel.device) @ mel.exp().transpose(1, 2)).clamp(min=LOG_FLOOR)


def griffin_lim(mels: list[np.ndarray], device="cpu", n_iter: int = 64, momentum: float = 0.99, seed: int = 0) -> list[np.ndarray]:
    """Log-mel frames (T_i, N_MELS) per clip -> waveforms of T_i * HOP samples."""
    mag = mel_magnitude(mels, torch.device(device))
    y = phase_from_magnitude(mag, _span([len(m) for m in mels]) * HOP, n_iter, momentum, seed)
    return _unbatch(y, [len(m) for m in mels])


def phase_from_magnitude(mag: torch.Tensor, length: int, n_iter: int = 64, momentum: float = 0.99,
                         seed: int = 0, init: torch.Tensor | None = None) -> torch.Tensor:
    """Fast Griffin-Lim: (..., freq, frames) STFT magnitude -> (..., length) waveform. The phase starts
    from the complex STFT `init` when given, at random otherwise."""
    window = _window_on(mag.device)
    if init is None:
        u = _per_clip(tuple(mag.shape[-2:-1]), mag.shape[-1], mag[..., 0, 0].numel(), seed, torch.rand).reshape(mag.shape)
        angles = torch.exp(2j * torch.pi * u).to(mag.device)
    else:
        angles = init / (init.abs() + 1e-8)
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        y = _istft(mag * angles, length)
        s = torch.stft(y, N_FFT, HOP, window=window, return_complex=True)
        accel = s - (momentum / (1 + momentum)) * prev
        prev = s
        angles = accel / (accel.abs() + 1e-8)
    return _istft(mag * angles, length)


def _envelope_gain(target_log_mel: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Per-bin gain (B, freq, T+1) that moves y's log-mel to the target (B, T+1, mels): the band errors
    interpolated linearly over frequency between the band centres."""
    s = torch.stft(y, N_FFT, HOP, window=window, return_complex=True).abs()
    basis = _basis_on(y.device)                                                    # (freq, mels)
    mel = torch.log((basis.T @ s).clamp(min=LOG_FLOOR)).transpose(1, 2)           # (B, T+1, mels)
    err = (target_log_mel - mel).clamp(-8.0, 8.0)
    weights = basis / basis.sum(1, keepdim=True).clamp(min=1e-8)                   # bin <- its bands
    return torch.exp(weights @ err.transpose(1, 2))


F0_MIN = 60.0


def source_filter(frames: list, device="cpu", n_correct: int = 3, noise_floor: float = 0.06, seed: int = 0) -> list[np.ndarray]:
    """Predicted frames (log-mel + F0) -> waveforms whose pitch is the predicted F0."""
    y = _source_filter(frames, torch.device(device), n_correct, noise_floor, seed)
    return _unbatch(y, [len(f.f0) for f in frames])


def harmonic_griffin_lim(frames: list, device="cpu", n_iter: int = 8, momentum: float = 0.99, seed: int = 0) -> list[np.ndarray]:
    """Predicted frames -> waveforms: Griffin-Lim on the mel's magnitude, started from the phase of the
    source-filter rendering.

    Random-phase Griffin-Lim settles on whatever pitch the smooth mel suggests, which on low voices is
    often none or a wrong one; starting from a harmonic phase at the predicted F0 keeps that pitch,
    while the magnitude, and so the timbre, is the mel's as in plain griffin_lim. Few iterations
    suffice: they only make the phase consistent with the magnitude.
    """
    y = render_harmonic_gl(*_device_inputs(frames, torch.device(device), seed), n_iter, momentum)
    return _unbatch(y, [len(f.f0) for f in frames])


def _device_inputs(frames: list, device: torch.device, seed: int) -> tuple[torch.Tensor, ...]:
    """render_inputs of a batch (padded to its own span) on `device`, and its shared noise."""
    f0, mel, samples = (torch.from_numpy(x).to(device) for x in render_inputs(frames, _span([len(f.f0) for f in frames])))
    return f0, mel, samples, shared_noise(f0.shape[1] * HOP, seed, device)


def render_inputs(frames: list, span: int, rows: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The renderers' inputs on the host, padded to `span` frames and `rows` clips (default: as many as
    given): F0 (rows, span), 0 where unvoiced or padding; log-mel (rows, span + 1, mels), -inf in the
    padding; each clip's own length in samples (rows,), 0 for a padding row."""
    rows = rows or len(frames)
    f0 = np.zeros((rows, span), np.float32)
    mel = np.full((rows, span + 1, frames[0].mel.shape[1]), -np.inf, np.float32)
    samples = np.zeros(rows, np.int64)
    for i, f in enumerate(frames):
        f0[i, :len(f.f0)], mel[i, :len(f.mel)], samples[i] = f.f0, f.mel, len(f.f0) * HOP
    return f0, mel, samples


def shared_noise(n: int, seed: int, device) -> torch.Tensor:
    """(1, n) white noise, every clip's (broadcast over a batch): its first values do not depend on n."""
    return _per_clip((), n, 1, seed, torch.randn).to(device)


def render_harmonic_gl(f0: torch.Tensor, mel: torch.Tensor, samples: torch.Tensor, noise: torch.Tensor,
                       n_iter: int = 8, momentum: float = 0.99) -> torch.Tensor:
    """harmonic_griffin_lim on render_inputs' tensors (and shared_noise of the span's samples), zero-padded
    (rows, span * HOP). Device operations only, no host read: on CUDA it can be captured as one graph."""
    start = torch.stft(_render_source_filter(f0, mel, samples, noise), N_FFT, HOP, window=_window_on(f0.device),
                       return_complex=True)
    return phase_from_magnitude(_magnitude(mel), f0.shape[1] * HOP, n_iter, momentum, init=start)


def _pulse_train(f0_s: torch.Tensor) -> torch.Tensor:
    """(B, n) F0 per sample -> the sum of every harmonic k·F0 below SAMPLE_RATE/2 - 200 Hz (no aliasing),
    in phase: sum_{k=1..K} cos(k·phase) with K = the harmonics below that limit at this sample.

    Harmonics in phase (a pulse train): random phases per harmonic measured worse on speaker similarity,
    F0 correlation and WER alike. The sum has a closed form (the Dirichlet kernel),
    sin((K + 1/2)·phase) / (2·sin(phase/2)) - 1/2, so it costs a few element-wise ops whatever K is,
    instead of one pass over the batch per harmonic (up to 130 of them, each a launch on the GPU). The
    phase is accumulated in float64 and wrapped to [-π, π) first: K·phase of an unwrapped float32 phase
    would lose the high harmonics' phase after a few seconds, and near 2π the quotient's small
    denominator would magnify the numerator's rounding."""
    cycles = torch.cumsum(f0_s.double() / SAMPLE_RATE, 1)
    phase = (2 * torch.pi * (cycles - cycles.round())).float()
    limit = SAMPLE_RATE / 2 - 200
    k = (torch.ceil(limit / f0_s) - 1).clamp(0, int(SAMPLE_RATE / 2 / F0_MIN))   # k·F0 < limit, k <= the cap
    half = torch.sin(phase / 2)
    at_zero = half.abs() < 1e-6                    # phase 0 (mod 2π): every cosine is 1
    dirichlet = torch.sin((k + 0.5) * phase) / (2 * torch.where(at_zero, torch.ones_like(half), half)) - 0.5
    return torch.where(at_zero, k, dirichlet)


def _source_filter(frames: list, device: torch.device, n_correct: int = 3, noise_floor: float = 0.06,
                   seed: int = 0) -> torch.Tensor:
    """The source-filter rendering, zero-padded (B, (T_max + TAIL) * HOP), on `device`."""
    return _render_source_filter(*_device_inputs(frames, torch.device(device), seed), n_correct, noise_floor)


def _render_source_filter(f0: torch.Tensor, mel: torch.Tensor, samples: torch.Tensor, noise: torch.Tensor,
                          n_correct: int = 3, noise_floor: float = 0.06) -> torch.Tensor:
    """The source-filter rendering of render_inputs' tensors, (rows, span * HOP).

    A harmonic excitation (phase integrated from F0, all harmonics below Nyquist) in voiced frames and
    white noise in unvoiced ones (plus a little in voiced ones, rising with frequency: breathiness)
    is shaped, bin by bin, until its log-mel matches the prediction. Griffin-Lim from a smooth mel
    has no defined pitch; this makes the pitch exactly the decoder's F0.
    """
    device = f0.device
    t_max = f0.shape[1]
    n = t_max * HOP
    target = torch.where(torch.isneginf(mel), float(np.log(LOG_FLOOR)), mel)
    # F0 per sample: linear interpolation between frame centres (frame i is centred at i*HOP + HOP/2)
    t = torch.arange(n, device=device, dtype=torch.float32)
    pos = ((t - HOP / 2) / HOP).clamp(0, t_max - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=t_max - 1)
    w = pos - lo
    voiced = (f0 > 0).float()
    f0_filled = torch.where(f0 > 0, f0, torch.full_like(f0, 100.0))
    f0_s = f0_filled[:, lo] * (1 - w) + f0_filled[:, hi] * w
    v_s = voiced[:, lo] * (1 - w) + voiced[:, hi] * w
    harm = _pulse_train(f0_s)
    # harmonics carry ~0.5 power per harmonic; scale both sources to a comparable level (each clip over
    # its own samples)
    own = (t[None, :] < samples[:, None]).float()
    harm = harm / torch.sqrt(((harm ** 2) * own).sum(1, keepdim=True) / own.sum(1, keepdim=True).clamp(min=1)).clamp(min=1e-4)
    window = _window_on(device)
    H = torch.stft(harm * v_s, N_FFT, HOP, window=window, return_complex=True)
    N = torch.stft(noise, N_FFT, HOP, window=window, return_complex=True)
    freq = torch.linspace(0, 1, N_FFT // 2 + 1, device=device)[None, :, None]
    v_frames = torch.nn.functional.pad(voiced, (0, 1))[:, None, :]
    noise_gain = (1 - v_frames) + v_frames * noise_floor * (1 + 4 * freq)
    X = H + N * noise_gain
    y = _istft(X, n)
    for _ in range(n_correct):
        X = X * _envelope_gain(target, y, window)
        y = _istft(X, n)
    return y


VOCODERS = {"griffin_lim": lambda frames, device: griffin_lim([f.mel for f in frames], device),
            "source_filter": source_filter,
            "harmonic_gl": harmonic_griffin_lim}
DEFAULT_VOCODER = "harmonic_gl"
