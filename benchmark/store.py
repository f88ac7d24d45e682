"""Every clip of a benchmark run on disk as it is made: the release's audio and the run's resume.

A clip is `<root>/<name>.flac`, a failure `<root>/<name>.failed.json` with its reason; both are
written to a temporary name and renamed, so a killed run leaves whole clips only and a rerun makes
just the missing ones. The array handed on is the one read back (16-bit FLAC), so a resumed run
scores exactly what an uninterrupted one would."""
import json
import os
from pathlib import Path

import numpy as np

from benchmark.editors import SR, Failed
from core import audio


class ClipStore:
    def __init__(self, root):
        self.root = Path(root)

    def _paths(self, name: str) -> tuple[Path, Path]:
        p = self.root / name
        return p.with_name(p.name + ".flac"), p.with_name(p.name + ".failed.json")

    def get(self, name: str):
        """The stored clip, its Failed, or None when not made yet."""
        wav, fail = self._paths(name)
        if wav.is_file():
            return audio.decode(wav.read_bytes(), str(wav))[0]
        if fail.is_file():
            return Failed(json.loads(fail.read_text(encoding="utf-8"))["reason"])
        return None

    def put(self, name: str, y) -> np.ndarray | Failed:
        wav, fail = self._paths(name)
        wav.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(y, Failed):
            path, data = fail, json.dumps({"reason": y.reason}, ensure_ascii=False).encode()
        else:
            path, data = wav, audio.encode_flac(np.asarray(y, np.float32), SR)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return self.get(name)
