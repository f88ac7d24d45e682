"""core/reader.py: one reader of a release for every consumer, and the release's splits in the editor.

The release is written by the real ShardWriter, with a manifest as the runner writes it: six samples of
three speakers, one per split, so that split filters and the editor's held-out voices can be checked
without a pipeline run.
"""
import io
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import make_cfg

from core.reader import Release, flatten
from core.sample import SAMPLE_VERSION, Sample
from core.shards import ShardWriter

RATE = 16000
SPLIT_OF = {"spk_a": "train", "spk_b": "validation", "spk_c": "test"}


def _flac(freq: float, seconds: float = 0.6) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.2 * np.sin(2 * np.pi * 3 * t)), RATE, format="FLAC")
    return buf.getvalue()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """pipeline dir with releases/r1 (2 shards, manifest) and its latest link; returns (pipeline dir, samples)."""
    pipe = tmp_path_factory.mktemp("out") / "emotion_triplets"
    rel = pipe / "releases" / "r1"
    writer = ShardWriter(rel / "shards", "emotion_triplets", 4, 2**30)
    rows, written = [], {}
    for i, (speaker, language) in enumerate([("spk_a", "en"), ("spk_a", "zh"), ("spk_b", "en"),
                                             ("spk_b", "zh"), ("spk_c", "en"), ("spk_c", "zh")]):
        key = f"emotion_{i:04d}"
        tag = "happy" if i % 2 else "sad"
        js = {"task": "emotion_edit", "edit_type": "emotion", "edit_info": tag, "split": SPLIT_OF[speaker],
              "speaker": speaker, "language": language, "text": f"text {i}", "instruction": f"make it {tag}",
              "margin": 5.0 + i, "durations": {"src": 0.6, "tgt": 0.6},
              # the rest of an emotion_edit sample's schema (core/sample.py)
              "sample_version": SAMPLE_VERSION, "sample_rate": RATE, "provenance": {}, "prompt": None,
              "acoustics": {}, "loudness": {}, "quality": {}, "gender": None, "intensity": None,
              "prompts": {"src": {}, "tgt": {}}, "speaker_sim": None}
        tokens = io.BytesIO()
        np.save(tokens, np.arange(i, i + 5, dtype=np.int32))
        members = {"src.flac": _flac(180 + 20 * i), "tgt.flac": _flac(260 + 20 * i), "src.tok.npy": tokens.getvalue()}
        shard = writer.write(Sample(key, js, members))
        rows.append({"key": key, "shard": shard, **flatten(js)})
        written[key] = (members, js)
    writer.close()
    pd.DataFrame(rows).to_parquet(rel / "manifest.parquet")
    (pipe / "latest").symlink_to("releases/r1")
    for name in ("shards", "manifest.parquet"):
        (pipe / name).symlink_to(f"latest/{name}")
    return pipe, written


def test_every_input_form_reads_the_same_samples(release, tmp_path):
    pipe, written = release
    keys = list(written)
    shards = pipe / "releases" / "r1" / "shards"
    tars = sorted(shards.glob("*.tar"))
    assert len(tars) == 2
    for data in (pipe, pipe / "latest", pipe / "releases" / "r1", pipe / "shards", pipe / "manifest.parquet",
                 f"{shards}/*.tar", f"{tars[0]},{tars[1]}", f"{pipe},{shards}"):
        rel = Release(data)
        assert list(rel.manifest["key"]) == keys, data
        assert rel.root == (pipe / "releases" / "r1").resolve(), data
    assert list(Release(tars[1]).manifest["key"]) == keys[4:]  # one shard: its own samples only
    loose = tmp_path / "loose"                                   # shards without a manifest: built from the JSON
    shutil.copytree(shards, loose)
    rel = Release(loose)
    assert list(rel.manifest["key"]) == keys and list(rel.manifest["split"]) == [SPLIT_OF[s] for s in
                                                                                  rel.manifest["speaker"]]
    assert rel.manifest["durations"][0] == '{"src": 0.6, "tgt": 0.6}'  # nested fields flattened as the runner does
    assert [s.key for s in rel.samples(split="test")] == keys[4:]


def test_filters_select_by_manifest_columns(release):
    pipe, written = release
    rel = Release(pipe)
    assert [s.key for s in rel.samples(split="test")] == ["emotion_0004", "emotion_0005"]
    assert [s.key for s in rel.samples(split=["train", "validation"], language="zh")] == \
        ["emotion_0001", "emotion_0003"]
    assert [s.key for s in rel.samples(tag="happy", speaker="spk_b")] == ["emotion_0003"]
    assert [s.key for s in rel.samples(task="emotion_edit")] == list(written)
    with pytest.raises(ValueError, match=r"split=\['tset'\].*values here: test, train, validation"):
        list(rel.samples(split="tset"))


def test_members_decode_to_arrays_or_stay_raw(release):
    pipe, written = release
    rel = Release(pipe)
    s = next(rel.samples(speaker="spk_c", language="zh"))
    members, js = written[s.key]
    assert s.json == js and set(s.members) == {"src.flac", "tgt.flac", "src.tok.npy"}
    audio, rate = s.members["src.flac"]
    original, _ = sf.read(io.BytesIO(members["src.flac"]), dtype="float32")
    assert rate == RATE and audio.dtype == np.float32 and np.array_equal(audio, original)
    assert s.members["src.tok.npy"].dtype == np.int32 and list(s.members["src.tok.npy"]) == [5, 6, 7, 8, 9]
    raw = rel.sample(s.key, decode=False)
    assert raw.members == members                                # byte for byte: what release reuse copies
    only = rel.sample(s.key, members=["tgt.flac"], decode=False)
    assert set(only.members) == {"tgt.flac"} and only.members["tgt.flac"] == members["tgt.flac"]
    assert rel.read(s.key, "src.flac") == members["src.flac"]
    with pytest.raises(KeyError):
        rel.read(s.key, "../../etc/passwd")
    with pytest.raises(ValueError, match="has no member prompt.flac"):
        rel.sample(s.key, members=["prompt.flac"])


def test_bad_inputs_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.tar").write_bytes(b"not a tar" * 100)
    for bad, msg in ((tmp_path / "missing", "missing: no such shard.*does not exist"),
                     (tmp_path / "empty", "empty: no .tar shards"),
                     (tmp_path / "bad.tar", "bad.tar is not a readable plain tar"),
                     (f"{tmp_path}/*.tar.gz", r"\*.tar.gz: the glob matches no .tar"),
                     ("", "no data given")):
        with pytest.raises(ValueError, match=msg):
            Release(bad)


def test_editor_takes_its_splits_from_the_release(release, tmp_path):
    from editor import corpus
    from editor.evaluate import heldout_clips
    from pipelines.train_tokenizer import train_corpus
    pipe, written = release
    c = corpus.build(str(pipe), tmp_path, 12, workers=1)
    src = next(m for m in c.meta if m["member"] == "emotion_0002.src.flac")
    assert (src["split"], src["instruction"], src["margin"], src["speaker"]) == \
        ("validation", "make it sad", 7.0, "spk_b")
    clips = heldout_clips(str(pipe), None, 10)                    # default held-out voices: the test split's
    assert {m["speaker"] for _, m in clips} == {"spk_c"} and len(clips) == 4
    cfg = make_cfg(["pipeline=train_tokenizer", "editor=tiny", f"data={pipe}", f"cache_dir={tmp_path}"])
    train, val, held = train_corpus(cfg)
    assert {s.split("~")[0] for s in train.speakers()} == {"spk_a"}
    assert val.speakers() == ["spk_b"] and held == ["spk_b", "spk_c"]
    # an experiment moves a speaker: spk_c trains, spk_a is held out for validation
    cfg = make_cfg(["pipeline=train_tokenizer", "editor=tiny", f"data={pipe}", f"cache_dir={tmp_path}",
                    "editor.split_train=[spk_c]", "editor.split_val=[spk_a]"])
    train, val, held = train_corpus(cfg)
    assert {s.split("~")[0] for s in train.speakers()} == {"spk_c"}
    assert val.speakers() == ["spk_a", "spk_b"] and held == ["spk_a", "spk_b"]
    with pytest.raises(ValueError, match="spk_a is given to two splits"):
        corpus.with_splits(c, {"train": ["spk_a"], "test": ["spk_a"]})
