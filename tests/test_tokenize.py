"""pipeline=tokenize: a token release with the source's keys, splits and JSON; one token member per audio
member with 41.7 tokens per second of its clip; the same ids as the codec gives the clip; resumable to
byte-identical members; one tokenizer version per release; user recordings too."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO, kill_when, run_pipeline
from core.reader import Release
from core.sample import TOKENS, Sample, clone_example, llm_example, token_member
from editor import artifacts

SHIPPED, SHIPPED_DECODER = artifacts.SHIPPED_TOKENIZER, artifacts.SHIPPED_DECODER
BLOCK = 5  # tokens per 120 ms interleaving block


@pytest.fixture(scope="module")
def tokens(para, tmp_path_factory, cache_dir, ray_local):
    """The paralinguistic run (4 audio members per sample, splits on) as a token release."""
    out = tmp_path_factory.mktemp("tok")
    info, _ = run_pipeline(["pipeline=tokenize", f"data={para[2]}", f"output_dir={out}", "ray.progress=false",
                            "writer.max_samples_per_shard=6"])
    return para[2], out / "paralinguistic_quadruplets_tokens", info


def _codec():
    from editor.codec import Codec
    return Codec.load(SHIPPED)


def test_token_release_keeps_keys_splits_and_json(tokens):
    src_dir, tok_dir, info = tokens
    src, tok = Release(src_dir), Release(tok_dir)
    assert list(tok.manifest["key"]) == list(src.manifest["key"])
    assert info["counts"]["rejected"] == 0 and info["tokenizer"]["version"] == SHIPPED.name
    both = src.manifest.set_index("key").join(tok.manifest.set_index("key"), rsuffix="_tok")
    assert (both["split"] == both["split_tok"]).all() and both["split"].notna().all()
    for s in tok.samples(decode=False):
        orig = src.sample(s.key, members=[])
        added = {k: v for k, v in s.json.items() if k not in orig.json}
        assert {k: s.json[k] for k in orig.json} == orig.json, s.key
        assert set(added) == {"tokenizer_version", "token_counts", "tokens_per_second", "tokenizer_digest"}
        assert added["tokenizer_digest"] == artifacts.weights_digest(SHIPPED)
        Sample(s.key, s.json, s.members).validate()  # the token form of the task's schema
        assert set(s.members) == {"src.tok.npy", "tgt.tok.npy", "sub.tok.npy", "prompt.tok.npy"}


def test_token_counts_are_41_7_per_second_and_ids_equal_the_codecs(tokens):
    src_dir, tok_dir, _ = tokens
    src, tok, codec = Release(src_dir), Release(tok_dir), _codec()
    rate = codec.tokenizer.tokens_per_second()["interleaved"]
    checked = 0
    for s in tok.samples():
        audio = src.sample(s.key)
        for suffix, (x, sr) in audio.members.items():
            if not suffix.endswith(".flac"):
                continue
            ids = s.members[token_member(suffix)]
            assert ids.dtype == np.int16 and ids.min() >= 0 and ids.max() < 5120
            assert abs(len(ids) - rate * len(x) / sr) <= BLOCK, (s.key, suffix, len(ids), len(x) / sr)
            assert len(ids) == s.json["token_counts"][suffix.split(".")[0]] and len(ids) % BLOCK == 0
            (ling, sem), = codec.encode([x])
            assert np.array_equal(ids, codec.tokenizer.interleave(ling, sem)), (s.key, suffix)
            checked += 1
    assert checked == 4 * len(tok)


def test_token_samples_give_llm_and_clone_examples(tokens):
    tok = Release(tokens[1])
    s = next(tok.samples())
    ex = llm_example(s)
    assert ex["system"] == "edit" and ex["source"] == "src.tok.npy" and ex["target"] == "tgt.tok.npy"
    assert ex["instruction"] == s.json["instruction"] and ex["target_text"] == s.json["text_with_tags"]
    c = clone_example(s)
    cx = llm_example(c)
    assert cx["system"] == "clone" and cx["source"] == "prompt.tok.npy" and cx["target"] == "tgt.tok.npy"
    assert cx["speaker"]["prompt_text"] == s.json["prompt"]["text"]
    assert np.array_equal(c.members["prompt.tok.npy"], s.members["prompt.tok.npy"])


def test_decoded_tokens_sound_like_the_clip(tokens):
    """Codec.decode of the stored ids gives back the voice: the round trip the codec documents
    (docs/editor.md: MCD 2.55 dB on held-out voices), here on the test split's clips."""
    from editor import features
    from editor.codec import Codec
    from editor.evaluate import mcd
    src, tok = Release(tokens[0]), Release(tokens[1])
    codec = Codec.load(SHIPPED, SHIPPED_DECODER)
    split = "test" if (tok.manifest["split"] == "test").any() else "validation"
    keys = list(tok.select(split=split)["key"])[:3]
    assert keys
    dists = []
    for key in keys:
        x, _ = src.sample(key, members=["src.flac"]).members["src.flac"]
        ids = tok.sample(key, members=["src.tok.npy"]).members["src.tok.npy"]
        ref = codec.analyze(x)
        y, = codec.decode([codec.tokenizer.deinterleave(ids)], [ref])
        dists.append(mcd(ref, features.analyze(y[:len(x)], codec.tokenizer.block)))
    assert np.mean(dists) < 4.0, dists  # the documented round trip is 2.55 dB; noise is over 10


def test_one_tokenizer_version_per_token_release(tokens, tmp_path):
    src_dir, tok_dir, _ = tokens
    other = tmp_path / "tokenizer-v9"
    shutil.copytree(SHIPPED, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "version": "tokenizer-v9"}))
    with pytest.raises(ValueError, match="never mixes tokenizer versions"):
        run_pipeline(["pipeline=tokenize", f"data={src_dir}", f"output_dir={tok_dir.parent}",
                      f"pipeline.tokenizer={other}"])
    with pytest.raises(ValueError, match="already a token release"):
        run_pipeline(["pipeline=tokenize", f"data={tok_dir}", f"output_dir={tmp_path}"])
    # reading two releases of different tokenizers together is refused too
    fake = tmp_path / "fake"
    shutil.copytree(tok_dir / "latest", fake)
    man = pd.read_parquet(fake / "manifest.parquet")
    man["tokenizer_version"] = "tokenizer-v9"
    man.to_parquet(fake / "manifest.parquet", index=False)
    with pytest.raises(ValueError, match="different tokenizers"):
        Release(f"{tok_dir},{fake}")
    # one version name, other weights (a tokenizer retrained under the same name): refused as well
    cfg = json.loads((SHIPPED / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "retrained": True}))
    with pytest.raises(ValueError, match=f"another tokenizer named {SHIPPED.name}"):
        run_pipeline(["pipeline=tokenize", f"data={src_dir}", f"output_dir={tok_dir.parent}",
                      f"pipeline.tokenizer={other}"])
    man["tokenizer_version"], man["tokenizer_digest"] = SHIPPED.name, "0123456789abcdef"
    man.to_parquet(fake / "manifest.parquet", index=False)
    with pytest.raises(ValueError, match="two tokenizers under one version name"):
        Release(f"{tok_dir},{fake}")


def test_recordings_folder_is_tokenized(tmp_path, cache_dir, ray_local):
    root = tmp_path / "recs"
    for spk, lang, f0, rate in (("alice", "en", 200.0, 16000), ("bob", "en", 110.0, 22050)):
        t = np.arange(int(rate * 1.3)) / rate  # 1.3 s at the file's own rate: resampled to 16 kHz
        (root / spk).mkdir(parents=True)
        (root / spk / "speaker.json").write_text(json.dumps({"language": lang}))
        sf.write(root / spk / "a.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), rate)
        (root / spk / "a.txt").write_text("A short recording.")
    (root / "alice" / "b.wav").write_bytes(b"not audio")
    (root / "alice" / "b.txt").write_text("Broken.")
    info, _ = run_pipeline(["pipeline=tokenize", "source=folder", f"source.root={root}",
                            f"output_dir={tmp_path / 'o'}", "ray.progress=false"])
    rel = Release(tmp_path / "o" / "recordings_tokens")
    assert sorted(rel.manifest["speaker"]) == ["alice", "bob"]
    for s in rel.samples():
        assert s.json["task"] == "recording" and s.json["split"] in ("train", "validation", "test")
        assert abs(len(s.members["audio" + TOKENS]) - 41.667 * 1.3) <= BLOCK
    rej = pd.read_parquet(tmp_path / "o" / "recordings_tokens" / "rejects.parquet")
    assert list(rej["reason"]) == ["bad_input"] and "b.wav" in rej["detail"][0]
    # a refresh with other splits settings makes the samples again (new keys) with the split they now have
    first = dict(zip(rel.manifest["key"], rel.manifest["speaker"]))
    run_pipeline(["pipeline=tokenize", "source=folder", f"source.root={root}", f"output_dir={tmp_path / 'o'}",
                  "ray.progress=false", "splits.fractions={train: 0.0, validation: 0.0, test: 1.0}"])
    again = Release(tmp_path / "o" / "recordings_tokens")
    assert not set(again.manifest["key"]) & set(first) and sorted(again.manifest["speaker"]) == ["alice", "bob"]
    assert set(again.manifest["split"]) == {"test"}


def _env():
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def test_killed_tokenize_driver_resumes_to_byte_identical_members(tokens, tmp_path):
    src_dir, tok_dir, _ = tokens
    args = [sys.executable, "run.py", "pipeline=tokenize", f"data={src_dir}", f"output_dir={tmp_path}",
            "writer.max_samples_per_shard=2", "ray.progress=false", "ray.num_cpus=1"]
    partial = tmp_path / "paralinguistic_quadruplets_tokens" / "releases"
    kill_when(args, lambda: len(list(partial.glob("*.partial/progress/*.json"))) >= 2, _env())
    assert not (tmp_path / "paralinguistic_quadruplets_tokens" / "latest").exists()
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((tmp_path / "paralinguistic_quadruplets_tokens" / "run.json").read_text())
    assert run["counts"]["resumed_shards"] >= 2
    a, b = Release(tmp_path / "paralinguistic_quadruplets_tokens"), Release(tok_dir)
    assert list(a.manifest["key"]) == list(b.manifest["key"])
    for key in b.manifest["key"]:
        for suffix in ("src", "tgt", "sub", "prompt"):
            assert a.read(key, suffix + TOKENS) == b.read(key, suffix + TOKENS), (key, suffix)
