"""Shard publication is atomic: a crash mid-shard leaves no partial .tar and keeps finished ones."""
import tarfile

import pytest

from conftest import clone_sample
from core.sample import SampleError
from core.shards import ShardWriter


def test_crash_leaves_no_partial_shard_and_keeps_finished(tmp_path):
    w = ShardWriter(tmp_path, "p", max_samples=2, max_bytes=10**9)
    for i in range(3):  # shard 0 complete (2 samples), shard 1 open with 1 sample
        w.write(clone_sample(f"k{i}"))
    del w  # the process dies here: no close()
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["p-000000.tar"]
    with tarfile.open(tmp_path / "p-000000.tar") as t:
        assert t.getnames() == ["k0.prompt.flac", "k0.tgt.flac", "k0.json", "k1.prompt.flac", "k1.tgt.flac", "k1.json"]
    ShardWriter(tmp_path, "p", 2, 10**9)  # a new run clears the stale temporary file
    assert not list(tmp_path.glob("*.tmp"))


def test_bytes_bound_and_key_validation(tmp_path):
    one = sum(len(v) + 1024 for v in clone_sample("k0").files().values())
    w = ShardWriter(tmp_path, "p", max_samples=100, max_bytes=int(1.5 * one))
    for i in range(4):
        w.write(clone_sample(f"k{i}"))
    w.close()
    assert len(list(tmp_path.glob("*.tar"))) == 2
    with pytest.raises(SampleError, match="no dots"):
        w.write(clone_sample("bad.key"))
