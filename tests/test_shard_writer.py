"""Shard publication is atomic: a crash mid-shard leaves no partial .tar and keeps finished ones."""
import tarfile

import pytest

from core.shards import ShardWriter


def test_crash_leaves_no_partial_shard_and_keeps_finished(tmp_path):
    w = ShardWriter(tmp_path, "p", max_samples=2, max_bytes=10**9)
    for i in range(3):  # shard 0 complete (2 samples), shard 1 open with 1 sample
        w.write(f"k{i}", {"src.flac": b"a" * 10, "json": {"i": i}})
    del w  # the process dies here: no close()
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["p-000000.tar"]
    with tarfile.open(tmp_path / "p-000000.tar") as t:
        assert t.getnames() == ["k0.src.flac", "k0.json", "k1.src.flac", "k1.json"]
    ShardWriter(tmp_path, "p", 2, 10**9)  # a new run clears the stale temporary file
    assert not list(tmp_path.glob("*.tmp"))


def test_bytes_bound_and_key_validation(tmp_path):
    w = ShardWriter(tmp_path, "p", max_samples=100, max_bytes=5000)
    for i in range(4):
        w.write(f"k{i}", {"src.flac": b"x" * 3000})
    w.close()
    assert len(list(tmp_path.glob("*.tar"))) == 2
    with pytest.raises(ValueError, match="no dots"):
        w.write("bad.key", {"src.flac": b"x"})
