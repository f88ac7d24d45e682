"""Audio references used by label tables: a file path, or '<shard.tar>#<member>' inside a shard."""
from functools import lru_cache
from pathlib import Path

import numpy as np

from core import audio
from core.reader import Release


@lru_cache(maxsize=8)
def _shard(shard: str) -> Release:
    """One shard's index (cached: references come in runs from the same shard)."""
    return Release(shard)


def read_bytes(ref: str) -> bytes:
    if "#" in ref:
        shard, member = ref.split("#", 1)
        if not Path(shard).is_file():
            raise ValueError(f"{ref}: shard {shard} not found")
        key, _, suffix = member.partition(".")
        try:
            return _shard(shard).read(key, suffix)
        except KeyError:
            raise ValueError(f"{ref}: no member {member} in {shard}") from None
    p = Path(ref)
    if not p.is_file():
        raise ValueError(f"{ref}: no such file")
    return p.read_bytes()


def load(ref: str, sr: int) -> np.ndarray:
    x, file_sr = audio.decode(read_bytes(ref), ref)
    return audio.resample(x, file_sr, sr)
