"""WebDataset shard writer: one sample = one key with contiguous members, bounded shards,
published by rename so that a shard is visible only when complete. Every sample is validated
against its task's schema (core/sample.py) before any of it is written."""
import io
import os
import tarfile
from pathlib import Path

from core.sample import Sample


class ShardWriter:
    def __init__(self, directory: str | Path, prefix: str, max_samples: int, max_bytes: int, start_index: int = 0):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.tar.tmp"):  # left by a crashed run; never visible as shards
            stale.unlink()
        self.prefix, self.max_samples, self.max_bytes = prefix, max_samples, max_bytes
        self.index = start_index
        self.published: list[dict] = []
        self._tar = None

    def _open(self):
        self.name = f"{self.prefix}-{self.index:06d}.tar"
        self._tmp = self.dir / (self.name + ".tmp")
        self._file = open(self._tmp, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)
        self._count, self._bytes, self._keys = 0, 0, []

    def _add(self, name: str, data: bytes):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
        self._tar.addfile(info, io.BytesIO(data))
        self._bytes += len(data) + 1024

    def write(self, sample: Sample) -> str:
        """Validate the sample (core.sample.SampleError names its key and the field), then write its
        members and JSON as KEY.<suffix>. Returns the shard name."""
        files = sample.validate().files()
        if self._tar is None:
            self._open()
        for suffix, data in files.items():
            self._add(f"{sample.key}.{suffix}", data)
        self._count += 1
        self._keys.append(sample.key)
        name = self.name
        if self._count >= self.max_samples or self._bytes >= self.max_bytes:
            self.flush()
        return name

    def flush(self):
        if self._tar is None:
            return
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.dir / self.name)
        self.published.append({"shard": self.name, "samples": self._count, "keys": self._keys})
        self._tar = None
        self.index += 1

    def close(self):
        self.flush()

    def abort(self):
        """Drop the open shard (after an error, e.g. a full disk): its temp file goes, freeing the
        space, and nothing half-written is ever renamed into place."""
        if self._tar is None:
            return
        self._tar = None
        try:
            self._file.close()
        except OSError:  # buffered bytes that do not fit: they are discarded with the file
            pass
        self._tmp.unlink(missing_ok=True)
