"""Reading a release back: its samples, filtered by the manifest, members decoded or raw.

    rel = Release("outputs/emotion_triplets")          # or .../latest, a release dir, shards/, a .tar, a glob, a,b
    rel.manifest                                       # one row per sample: key, shard, the JSON fields flattened
    for s in rel.samples(split="test", language="en", members=["src.flac"]):
        audio, rate = s.members["src.flac"]; s.json["text"]

A release is WebDataset: shards of tar members `KEY.<suffix>` (`json`, `src.flac`, `tok.npy`, ...), the
members of one key contiguous, and `manifest.parquet` beside `shards/`. Inputs without a manifest (a
loose shards folder, a .tar, a glob) get one built from the samples' JSON, so filters work the same.
Nothing here needs more than the standard library, numpy, pandas and soundfile: a release stays
readable by anyone, with plain webdataset too.
"""
import glob
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from core.sample import Sample

AUDIO_SUFFIXES = (".flac", ".wav")
# filter name -> manifest column; `tag` is what the pipelines call edit_info (an emotion, a style, ...)
FILTERS = {"split": "split", "task": "task", "tag": "edit_info", "language": "language", "speaker": "speaker"}


@dataclass(frozen=True)
class Span:
    """Where a member's bytes lie: read `size` bytes at `offset` of the plain tar `shard`."""
    shard: Path
    offset: int
    size: int

    def read(self) -> bytes:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.shard}: {self.size} bytes at {self.offset} expected, {len(data)} there (shard changed?)")
        return data


def decode(suffix: str, data: bytes):
    """Audio -> (float32 array, rate); .npy -> array; json -> dict; anything else stays bytes."""
    if suffix.endswith(AUDIO_SUFFIXES):
        import soundfile as sf
        x, rate = sf.read(io.BytesIO(data), dtype="float32")
        return x, rate
    if suffix.endswith(".npy"):
        return np.load(io.BytesIO(data), allow_pickle=False)
    if suffix == "json" or suffix.endswith(".json"):
        return json.loads(data)
    return data


def flatten(sample_json: dict) -> dict:
    """A sample's JSON as a manifest row: nested values as JSON text (as the pipelines write it)."""
    return {k: (json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, (dict, list)) else v)
            for k, v in sample_json.items()}


class Release:
    """The samples of one input: a release dir, a pipeline dir or its `latest`, a manifest.parquet, a shards
    folder, one .tar, a glob, or a comma-separated list of those."""

    def __init__(self, data):
        if data is None or not str(data).strip():
            raise ValueError("no data given: pass a release dir, a shards folder, a .tar, a glob or a comma list")
        self.data = str(data)
        frames, self.roots = [], []
        for part in [p.strip() for p in self.data.split(",") if p.strip()]:
            root, manifest = _resolve(part)
            self.roots.append(root)
            frames.append(manifest)
        man = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if "tokenizer_version" in man and man["tokenizer_version"].nunique() > 1:
            found = sorted(man["tokenizer_version"].dropna().unique())
            raise ValueError(f"data={self.data}: token releases of different tokenizers ({', '.join(found)}) "
                             "cannot be read together: their ids mean different sounds")
        if "tokenizer_digest" in man and man["tokenizer_digest"].nunique() > 1:
            found = sorted(man["tokenizer_digest"].dropna().unique())
            raise ValueError(f"data={self.data}: token releases of two tokenizers under one version name "
                             f"(weights {', '.join(found)}) cannot be read together: their ids mean different sounds")
        # the same sample reached twice (a release and its own shards folder): keys hash its content
        self.manifest = man.drop_duplicates("key", ignore_index=True)
        self.root = self.roots[0]
        self._where = dict(zip(self.manifest["key"], self.manifest["shard_path"]))
        self._index: dict[Path, dict[str, dict[str, Span]]] = {}

    def __len__(self):
        return len(self.manifest)

    @property
    def pipeline(self) -> str:
        """The name of the pipeline that wrote the (first) release read, from its run.json."""
        run = self.root / "run.json"
        name = json.loads(run.read_text()).get("pipeline") if run.is_file() else None
        return name or self.root.name

    @property
    def shards(self) -> list[Path]:
        return list(dict.fromkeys(self.manifest["shard_path"]))

    def select(self, split=None, task=None, tag=None, language=None, speaker=None) -> pd.DataFrame:
        """The manifest rows matching every given filter (a value or a list of values each)."""
        given = {"split": split, "task": task, "tag": tag, "language": language, "speaker": speaker}
        rows = self.manifest
        for name, want in given.items():
            if want is None:
                continue
            want = [want] if isinstance(want, str) else list(want)
            col = FILTERS[name]
            have = rows[col] if col in rows else pd.Series([None] * len(rows), index=rows.index)
            rows = rows[have.isin(want)]
            if rows.empty:
                present = sorted({str(v) for v in self.manifest.get(col, pd.Series(dtype=object)).dropna()})
                raise ValueError(f"data={self.data}: no samples with {name}={want}"
                                 + (f" (values here: {', '.join(present[:20])})" if present
                                    else f" (no sample has a {col})"))
        return rows

    def samples(self, split=None, task=None, tag=None, language=None, speaker=None,
                members: Iterable[str] | None = None, decode: bool = True) -> Iterator[Sample]:
        """The matching samples in manifest order. members: the suffixes to read (default all); decode=False
        gives every member's raw bytes."""
        keys = self.select(split, task, tag, language, speaker)["key"]
        for key in keys:
            yield self.sample(key, members, decode)

    def sample(self, key: str, members: Iterable[str] | None = None, decode: bool = True) -> Sample:
        spans = self.locate(key)
        want = set(members) if members is not None else None
        with open(self._where[key], "rb") as f:
            def read(span):
                f.seek(span.offset)
                return f.read(span.size)
            sample_json = json.loads(read(spans["json"])) if "json" in spans else {}
            raw = {s: read(sp) for s, sp in spans.items() if s != "json" and (want is None or s in want)}
        missing = (want or set()) - set(raw) - {"json"}
        if missing:
            raise ValueError(f"data={self.data}: sample {key} has no member {', '.join(sorted(missing))}")
        out = {s: _decode(s, b) for s, b in raw.items()} if decode else raw
        return Sample(key, sample_json, out, shard=self._where[key])

    def read(self, key: str, suffix: str) -> bytes:
        """One member's raw bytes; KeyError for a key or member the release does not have."""
        span = self.locate(key).get(suffix)
        if span is None:
            raise KeyError(f"data={self.data}: sample {key} has no member {suffix}")
        return span.read()

    def locate(self, key: str) -> dict[str, Span]:
        """suffix -> Span of each member of a sample: for serving members without reading whole shards."""
        shard = self._where.get(key)
        if shard is None:
            raise KeyError(f"data={self.data}: no sample {key}")
        if shard not in self._index:
            self._index[shard] = _spans(shard)
        spans = self._index[shard].get(key)
        if spans is None:
            raise ValueError(f"data={self.data}: sample {key} is in the manifest but not in {shard}")
        return spans


_decode = decode


def _resolve(part: str) -> tuple[Path, pd.DataFrame]:
    """(the folder the samples belong to, manifest with shard_path) of one input."""
    if any(c in part for c in "*?["):
        tars = sorted(Path(x) for x in glob.glob(part) if x.endswith(".tar"))
        if not tars:
            raise ValueError(f"{part}: the glob matches no .tar shards")
        return _folder_of(tars[0]), _scan(tars)
    p = Path(part).expanduser()
    if not p.exists():
        raise ValueError(f"{part}: no such shard, shards folder, release or glob (it does not exist)")
    p = p.resolve()  # a pipeline's latest link, or its shards link, read as the release it points to
    if p.is_file() and p.name.endswith(".parquet"):
        return p.parent, _manifest(p)
    if p.is_file() and p.suffix == ".tar":
        return _folder_of(p), _scan([p])
    if p.is_dir():
        # a pipeline dir's manifest is a link into its latest release: read as that release
        for manifest in (p / "manifest.parquet", p.parent / "manifest.parquet" if p.name == "shards" else None):
            if manifest is not None and manifest.is_file():
                return manifest.resolve().parent, _manifest(manifest.resolve())
        shards = p / "shards" if (p / "shards").is_dir() else p
        tars = sorted(shards.glob("*.tar"))
        if not tars:
            raise ValueError(f"{part}: no .tar shards in {shards} and no manifest.parquet")
        return (shards.parent if shards.name == "shards" else shards), _scan(tars)
    raise ValueError(f"{part}: not a release dir, shards folder, .tar shard, manifest.parquet or glob")


def _folder_of(tar: Path) -> Path:
    """The release a shard belongs to (the folder above shards/), else the shard's own folder."""
    tar = tar.resolve()
    return tar.parent.parent if tar.parent.name == "shards" else tar.parent


def _manifest(path: Path) -> pd.DataFrame:
    try:
        m = pd.read_parquet(path)
    except Exception as e:
        raise ValueError(f"{path}: manifest is not readable: {e}") from e
    if not {"key", "shard"} <= set(m.columns):
        raise ValueError(f"{path}: manifest has no key and shard columns")
    shards = path.parent / "shards"
    # the shard's name only: a manifest cannot point outside its own shards folder
    m["shard_path"] = [shards / Path(s).name for s in m["shard"]]
    for s in dict.fromkeys(m["shard_path"]):
        if not s.is_file():
            raise ValueError(f"{path}: shard {s} listed in the manifest is missing")
    return m


def _scan(tars: list[Path]) -> pd.DataFrame:
    """A manifest built from the samples' JSON, for inputs without one."""
    rows = []
    for tar in tars:
        spans = _spans(tar)
        with open(tar, "rb") as f:
            for key, members in spans.items():
                js = {}
                if "json" in members:
                    f.seek(members["json"].offset)
                    try:
                        js = json.loads(f.read(members["json"].size))
                    except ValueError as e:
                        raise ValueError(f"{tar}: {key}.json is not JSON: {e}") from e
                rows.append({"key": key, "shard": tar.name, **flatten(js), "shard_path": tar})
    return pd.DataFrame(rows, columns=None if rows else ["key", "shard", "shard_path"])


def _spans(tar: Path) -> dict[str, dict[str, Span]]:
    """key -> suffix -> Span, from the tar's headers alone (member data is skipped, not read)."""
    out: dict[str, dict[str, Span]] = {}
    try:
        with tarfile.open(tar, "r:") as tf:  # plain tar: member offsets are file offsets
            for m in tf:
                if m.isfile() and "." in m.name:
                    key, suffix = m.name.split(".", 1)  # as webdataset: the key ends at the first dot
                    out.setdefault(key, {})[suffix] = Span(tar, m.offset_data, m.size)
    except (OSError, tarfile.TarError) as e:
        raise ValueError(f"{tar} is not a readable plain tar shard: {e}") from e
    return out
