"""Audio references used by label tables: a file path, or '<shard.tar>#<member>' inside a shard."""
import tarfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from core import audio


@lru_cache(maxsize=8)
def shard_members(shard: str) -> dict:
    """All members of a shard by name (cached: references come in runs from the same shard)."""
    with tarfile.open(shard) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}


def read_bytes(ref: str) -> bytes:
    if "#" in ref:
        shard, member = ref.split("#", 1)
        if not Path(shard).is_file():
            raise ValueError(f"{ref}: shard {shard} not found")
        data = shard_members(shard).get(member)
        if data is None:
            raise ValueError(f"{ref}: no member {member} in {shard}")
        return data
    p = Path(ref)
    if not p.is_file():
        raise ValueError(f"{ref}: no such file")
    return p.read_bytes()


def load(ref: str, sr: int) -> np.ndarray:
    x, file_sr = audio.decode(read_bytes(ref), ref)
    return audio.resample(x, file_sr, sr)
