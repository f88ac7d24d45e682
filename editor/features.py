"""The editor's frames: 10 ms log-mel spectra (what the decoder predicts and the vocoder inverts) and
F0 from WORLD's dio/stonemask (the pitch the tokenizer keeps).

Why log-mel and Griffin-Lim rather than WORLD's own synthesis: on held-out clips WORLD
analysis-synthesis alone raised pocketsphinx WER from 0.33 to 0.59, while Griffin-Lim from an
80-band mel spectrum gave 0.38 (bench/vocoder_ceiling.py, docs/editor.md).
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyworld
import torch
from scipy.fft import dct

SAMPLE_RATE = 16000
FRAME_MS = 10.0
HOP = 160
N_FFT = 512
N_MELS = 80
F0_FLOOR, F0_CEIL = 60.0, 600.0
LOG_FLOOR = 1e-5
NEPER_DB = 20 / np.log(10)   # dB per neper of a magnitude
F0_PIECE_MIN = 25        # frames: the shortest piece a clip's F0 search is split into (f0_track_split)
F0_CONTEXT = 40          # frames analysed on each side of a piece and dropped: dio's filters and its
                         # contour repair look about this far (0.4 s)
F0_DECIMATIONS = range(1, 13)  # WORLD dio's `speed`: its F0 search runs on the clip downsampled this many times


@dataclass
class Frames:
    """One clip's frames: f0 (T,) in Hz with 0 = unvoiced; mel (T, N_MELS) natural-log magnitude."""
    f0: np.ndarray
    mel: np.ndarray

    def __len__(self):
        return len(self.f0)

    def crop(self, n: int) -> "Frames":
        return Frames(self.f0[:n], self.mel[:n])


def seeded_chunks(n: int, chunk: int, seed: int, draw, dim: int = 0) -> torch.Tensor:
    """Random values n long along `dim`, drawn `chunk` at a time by draw(generator), each chunk from its
    own generator (seed * 100003 + k): the first values do not depend on n, so a clip drawn inside a
    longer padded batch gets what it gets alone."""
    parts = [draw(torch.Generator().manual_seed(seed * 100003 + k)) for k in range(-(-n // chunk))]
    return torch.cat(parts, dim).narrow(dim, 0, n)


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """(N_FFT/2+1, N_MELS) triangular filters on the HTK mel scale, 0-8 kHz."""
    to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    edges = to_hz(np.linspace(0.0, to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    f = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.clip(np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)), 0.0, None).T.astype(np.float32)


def pad_to_block(x: np.ndarray, block_frames: int) -> np.ndarray:
    """Zero-pad so the clip is a whole number of token blocks (the tokens then cover it exactly)."""
    return np.pad(x, (0, (-len(x)) % (block_frames * HOP)))


def log_mel(x: np.ndarray) -> np.ndarray:
    """(len/HOP, N_MELS) log-mel magnitude of a clip whose length is a multiple of HOP."""
    s = torch.stft(torch.as_tensor(x, dtype=torch.float32), N_FFT, HOP, window=torch.hann_window(N_FFT),
                   return_complex=True).abs()
    mel = torch.as_tensor(mel_basis()).T @ s
    return torch.log(mel.clamp(min=LOG_FLOOR)).T[: len(x) // HOP].numpy()


def check_f0_decimation(decimation) -> int:
    if decimation not in F0_DECIMATIONS:
        raise ValueError(f"f0_decimation={decimation!r}: an integer from 1 to 12 (WORLD dio's speed)")
    return int(decimation)


def f0_track(x: np.ndarray, decimation: int = 1) -> np.ndarray:
    """dio's F0 candidates, refined by stonemask on the full-rate clip. decimation > 1 searches a
    downsampled copy (4: at 4 kHz, WORLD's own suggestion): the search is three quarters of the analysis
    time and gets 3.2x cheaper, while the refined F0 moves by a few cents (bench/f0_decimation.py)."""
    x = np.asarray(x, dtype=np.float64)
    f0, t = pyworld.dio(x, SAMPLE_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS,
                        speed=check_f0_decimation(decimation))
    return pyworld.stonemask(x, f0, t, SAMPLE_RATE)[: len(x) // HOP].astype(np.float32)


def f0_track_split(x: np.ndarray, pieces: int, map_fn=map, decimation: int = 1) -> np.ndarray:
    """f0_track of one clip as up to `pieces` parts searched apart (map_fn: a thread or process pool's
    map; pyworld releases the GIL), each with F0_CONTEXT frames of context either side, dropped after.
    For a lone request on a many-core machine: the search is a third of an edit's time at batch 1.
    On speech it gives the whole-clip track on all but a fraction of a percent of frames (tested)."""
    n = len(x) // HOP
    step = max(F0_PIECE_MIN, -(-n // max(1, pieces)))
    if step >= n:
        return f0_track(x, decimation)
    jobs = []
    for a in range(0, n, step):
        b, lo, hi = min(n, a + step), max(0, a - F0_CONTEXT), min(n, a + step + F0_CONTEXT)
        jobs.append((x[lo * HOP:hi * HOP], a - lo, b - lo, decimation))
    return np.concatenate(list(map_fn(_f0_piece, jobs)))


def _f0_piece(job) -> np.ndarray:
    segment, a, b, decimation = job
    return f0_track(segment, decimation)[a:b]


def analyze(x: np.ndarray, block_frames: int = 1, f0_pieces: int = 1, map_fn=map,
            f0_decimation: int = 1) -> Frames:
    """16 kHz mono float audio -> frames; the clip is zero-padded to whole token blocks first.
    f0_pieces > 1: the F0 search split over map_fn (f0_track_split); f0_decimation: f0_track's."""
    if x.ndim != 1 or len(x) < HOP * 4:
        raise ValueError(f"audio of shape {x.shape}: need mono audio of at least {4 * FRAME_MS:.0f} ms")
    x = pad_to_block(np.asarray(x, dtype=np.float32), block_frames)
    f0 = (f0_track(x, f0_decimation) if f0_pieces <= 1
          else f0_track_split(x, f0_pieces, map_fn, f0_decimation))
    return Frames(f0, log_mel(x))


def cepstrum(mel: np.ndarray, n: int) -> np.ndarray:
    """Mel cepstrum c0..c(n-1) of log-mel frames (orthonormal DCT-II)."""
    return dct(mel, type=2, norm="ortho", axis=-1)[..., :n]


def continuous_lf0(f0: np.ndarray) -> np.ndarray:
    """log F0 with unvoiced frames filled by interpolation (a constant 100 Hz if nothing is voiced)."""
    voiced = f0 > 0
    if not voiced.any():
        return np.full(len(f0), np.log(100.0), dtype=np.float32)
    idx = np.arange(len(f0))
    return np.interp(idx, idx[voiced], np.log(f0[voiced])).astype(np.float32)


@lru_cache(maxsize=1)
def _mel_centres_hz() -> np.ndarray:
    to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    return 700.0 * (10.0 ** (np.linspace(0.0, to_mel(SAMPLE_RATE / 2), N_MELS + 2)[1:-1] / 2595.0) - 1.0)


def warp_voice(fr: Frames, alpha: float) -> Frames:
    """Vocal-tract-length perturbation: every frequency (formants, harmonics, F0) scaled by alpha,
    durations kept. A new voice from an old one, for the decoder to learn timbre from references."""
    centres = _mel_centres_hz()
    src = np.interp(centres / alpha, centres, np.arange(N_MELS))   # fractional source band per band
    lo = np.clip(np.floor(src).astype(int), 0, N_MELS - 1)
    hi = np.clip(lo + 1, 0, N_MELS - 1)
    w = (src - lo).astype(np.float32)
    mel = fr.mel[:, lo] * (1 - w) + fr.mel[:, hi] * w
    return Frames((fr.f0 * alpha).astype(np.float32), mel.astype(np.float32))


def noisy_view(fr: Frames, rng: np.random.Generator, below_db=(55.0, 80.0), pad_frames: int = 0) -> Frames:
    """The clip's log-mel as it would be with white noise added (drawn below_db under its loudest
    log-mel value) and pad_frames of digital silence after it: per band the noise's magnitude follows
    the mel filter's width and varies per frame (Rayleigh, mean 1), adding to the speech's in power.
    F0 is kept (WORLD's F0 of speech hardly moves at these levels). For training a tokenizer whose ids
    do not change with what it should ignore (editor/train_decoder.py, noise_views)."""
    mel = np.concatenate([fr.mel, np.full((pad_frames, fr.mel.shape[1]), np.log(LOG_FLOOR), np.float32)])
    f0 = np.concatenate([fr.f0, np.zeros(pad_frames, np.float32)])
    width = mel_basis().sum(0)
    noise = fr.mel.max() - rng.uniform(*below_db) / NEPER_DB + np.log(width / width.max())
    n = np.exp(noise)[None, :] * rng.rayleigh(np.sqrt(2 / np.pi), size=mel.shape)
    noisy = 0.5 * np.log(np.exp(2 * mel.astype(np.float64)) + n ** 2)
    return Frames(f0, noisy.astype(np.float32))
