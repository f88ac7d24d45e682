"""Noise and room assets for the denoise pipeline: generated room impulse responses, babble made
from other speakers' clips, and user folders (e.g. MUSAN noise, real RIRs). Generated files are
written once into the cache, atomically."""
import hashlib
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from core import audio

AUDIO_EXT = (".wav", ".flac", ".ogg", ".mp3")


def _write(path: Path, x: np.ndarray, sr: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")    # per process: runs may share a cache
    sf.write(tmp, x, sr)
    os.replace(tmp, path)


def generated_rirs(cache_dir: str, sr: int, n: int = 12, seed: int = 0) -> list[str]:
    """Synthetic rooms: a direct path, a few early reflections and an exponentially decaying
    diffuse tail, RT60 between 0.2 and 0.9 s."""
    root = Path(cache_dir) / "rir" / f"gen-{sr}-{n}-{seed}"
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        path = root / f"rir_{i:02d}.wav"
        rt60 = rng.uniform(0.2, 0.9)
        if not path.is_file():
            t = np.arange(int(sr * rt60 * 1.2)) / sr
            h = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60) * 0.3
            h[0] = 1.0
            for _ in range(6):
                h[int(rng.uniform(0.002, 0.03) * sr)] += rng.uniform(0.2, 0.6) * rng.choice([-1, 1])
            _write(path, (h / np.max(np.abs(h))).astype(np.float32), sr)
        out.append(str(path))
    return out


def babble(cache_dir: str, clip_paths: list[str], sr: int, n: int = 6, talkers: int = 4, seed: int = 0) -> list[str]:
    """Babble noise: sums of `talkers` clips of different speakers, looped to 10 s."""
    if len(clip_paths) < talkers:
        raise ValueError(f"babble needs clips of at least {talkers} speakers, got {len(clip_paths)}")
    ident = hashlib.sha1(("|".join(sorted(clip_paths)) + f"{sr}{n}{talkers}{seed}").encode()).hexdigest()[:10]
    root = Path(cache_dir) / "noise" / f"babble-{ident}"
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        path = root / f"babble_{i:02d}.flac"
        picks = rng.choice(len(clip_paths), talkers, replace=False)
        if not path.is_file():
            mix = np.zeros(10 * sr, np.float32)
            for j in picks:
                x = audio.load(clip_paths[j], sr)
                x = np.tile(x, int(np.ceil(len(mix) / len(x))))[: len(mix)]
                mix += x / (np.sqrt(np.mean(x ** 2)) + 1e-9)
            _write(path, (mix / np.max(np.abs(mix)) * 0.9).astype(np.float32), sr)
        out.append(str(path))
    return out


def folder(path: str, what: str) -> list[str]:
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{what}={path}: not a directory")
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXT)
    if not files:
        raise ValueError(f"{what}={path}: no audio files ({', '.join(AUDIO_EXT)})")
    return files
