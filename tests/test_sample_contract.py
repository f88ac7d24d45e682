"""One sample definition (core/sample.py, docs/samples.md): every pipeline's samples, read back with
plain webdataset + soundfile, follow their task's schema, carry the voice prompt they were cloned
from, and map to an LLM edit example and a clone example; a sample that breaks its schema is refused
with its key and field, and stops the run."""
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import RAW, REPO, clone_sample, read_samples, run_pipeline
from core import audio
from core.reader import Release
from core.sample import (PROMPT, SAMPLE_VERSION, TASK_SCHEMAS, Sample, SampleError, clone_example, llm_example,
                         prompt_info)
from core.shards import ShardWriter

# fixture -> the task of its samples
RUNS = {"emotion_run": "emotion_edit", "style_run": "style_edit", "speed_run": "speed_edit",
        "denoise_run": "denoise", "trim_run": "silence_trim", "para": "paralinguistic_edit"}


def _samples(request, fixture) -> list[dict]:
    got = request.getfixturevalue(fixture)
    return read_samples(got[0]) if isinstance(got[0], Path) else got[0]


def _release_dir(request, fixture) -> Path:
    got = request.getfixturevalue(fixture)
    return got[0] if isinstance(got[0], Path) else got[2]


@pytest.mark.parametrize("fixture", list(RUNS))
def test_every_release_reads_back_through_the_one_reader(fixture, request):
    """The reader gives back exactly what plain webdataset reads: same keys, same bytes, valid samples."""
    plain = {s["key"]: s for s in _samples(request, fixture)}
    rel = Release(_release_dir(request, fixture))
    assert list(rel.manifest["key"]) == list(plain), "manifest order = shard order"
    for s in rel.samples(decode=False):
        assert s.members == plain[s.key]["members"] and s.json == plain[s.key]["json"], s.key
        s.validate()
    one = rel.sample(next(iter(plain)))  # decoded: audio as (float array, rate)
    x, rate = one.members["src.flac"]
    assert x.dtype == np.float32 and rate == one.json["sample_rate"]


def _bank_clip(j: dict) -> dict:
    """The voice-bank clip the sample's JSON says its source side was cloned from (or voiced by)."""
    if j["task"] == "paralinguistic_edit":
        return j["prompts"]["neutral"]
    if j["task"] in ("emotion_edit", "style_edit"):
        return j["prompts"]["src"]
    return j["source"]["prompt"]


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    x, sr = sf.read(io.BytesIO(data), dtype="float32")
    return x, sr


@pytest.mark.parametrize("fixture", list(RUNS))
def test_pipeline_samples_follow_the_one_definition(fixture, request):
    samples = _samples(request, fixture)
    assert samples
    prompts = {}
    for s in samples:
        sample = Sample(s["key"], s["json"], s["members"]).validate()
        j, where = sample.json, s["key"]
        assert sample.task == RUNS[fixture] and j["sample_version"] == SAMPLE_VERSION, where
        for name, data in sample.members.items():  # every member is audio that soundfile reads
            x, sr = _decode(data)
            assert sr == j["sample_rate"] and len(x) > 0.2 * sr, (where, name)
        # the prompt: one obvious place, the member, its text, the clip it came from
        p, clip = j["prompt"], _bank_clip(j)
        assert p["member"] == PROMPT and p["text"] == clip["text"] and p["target"] in sample.members, where
        prompts.setdefault(clip["path"], sample.members[PROMPT])
        assert sample.members[PROMPT] == prompts[clip["path"]], "one clip, one prompt.flac"
        # the LLM edit example: members and texts that exist
        ex = llm_example(sample)
        assert ex["system"] == "edit" and ex["instruction"] == j["instruction"], where
        assert {ex["source"], ex["target"]} == {"src.flac", "tgt.flac"} and ex["text"] == j["text"], where
        assert ex["target_text"] == (j["text_with_tags"] if sample.task == "paralinguistic_edit" else j["text"])
        # the clone example: prompt + its text + the sample's text -> that text in the prompt's voice
        c = clone_example(sample)
        assert c.task == "clone" and c.members[PROMPT] == sample.members[PROMPT], where
        assert c.members["tgt.flac"] == sample.members[p["target"]] and c.json["text"] == j["text"], where
        cx = llm_example(c)
        assert cx["system"] == "clone" and cx["speaker"] == {"name": j["speaker"], "prompt_text": clip["text"],
                                                              "prompt_audio": PROMPT}
        assert (cx["source"], cx["target"], cx["text"], cx["target_text"]) == (PROMPT, "tgt.flac", clip["text"],
                                                                                j["text"])
    for path, data in list(prompts.items())[:3]:  # prompt.flac is the bank clip as the TTS got it
        x, _ = _decode(data)
        ref = audio.load(path, 16000)
        assert len(x) == len(ref) and np.max(np.abs(x - ref)) < 1e-3, path


def test_paralinguistic_members_and_their_texts(para):
    for s in para[0]:
        sample = Sample(s["key"], s["json"], s["members"])
        j = sample.json
        assert set(sample.members) == {"src.flac", "tgt.flac", "sub.flac", PROMPT}
        assert sample.transcript("sub.flac") == j["substitution"]["text"]
        assert sample.transcript("tgt.flac") == j["text_with_tags"] and sample.transcript("src.flac") == j["text"]
        assert sample.transcript(PROMPT) == j["prompts"]["neutral"]["text"]


def test_no_audio_inside_json_anywhere_in_the_pipeline_code():
    # every Python file of the repository but the tests: audio travels as a member, or as a file part of
    # the cloning server's multipart request, never encoded as text
    files = [f for f in sorted(REPO.rglob("*.py")) if not {"tests", ".venv"} & set(f.relative_to(REPO).parts)]
    assert any(f.parts[-2:] == ("tts", "server.py") for f in files)
    for f in files:
        assert not re.search(r"base64|b64", f.read_text()), f"{f.relative_to(REPO)}: audio travels as bytes, not as text"


def test_rows_carry_any_number_of_members_in_one_arrow_schema():
    from stages.base import ROW_SCHEMA, decode_row, encode_rows, new_row
    rows = [new_row("a", {"x": 1}),
            {**new_row("b", {}), "members": {"src.flac": b"1"}},
            {**new_row("c", {}), "members": {"src.flac": b"1", "tgt.flac": b"2", "sub.flac": b"3", PROMPT: b"4",
                                             "src.tok.npy": b"5"}}]
    for chunk in ([rows[0]], [rows[1]], rows):  # a block of rows with no member has the same schema
        assert encode_rows(chunk).schema == ROW_SCHEMA
    assert [decode_row(r) for r in encode_rows(rows).to_pylist()] == rows


# --- refusals -------------------------------------------------------------------------------------

def _broken(change) -> Sample:
    s = clone_sample("clone_en-f1_0123456789ab")
    change(s)
    return s


@pytest.mark.parametrize("change,message", [
    (lambda s: s.json.pop("text"), r"field 'text' is missing"),
    (lambda s: s.json.update(sample_rate="16k"), r"field 'sample_rate' must be int, got str"),
    (lambda s: s.json.update(task="karaoke"), r"field 'task' is 'karaoke', not one of"),
    (lambda s: s.json["prompt"].pop("text"), r"field 'prompt.text' is missing"),
    (lambda s: s.json["prompt"].update(target="src.flac"), r"field 'prompt.target' names member 'src.flac'"),
    (lambda s: s.json["prompt"].update(sha256="0" * 64), r"field 'prompt.sha256' is not the hash"),
    (lambda s: s.json.update(durations=[1.0]), r"field 'durations' must be object, got list"),
    (lambda s: s.json.update(sample_version=1), r"field 'sample_version' is 1"),
    (lambda s: s.json.update(text=True), r"field 'text' must be string, got bool"),
    (lambda s: s.json.update(provenance={"when": object()}), r"field 'provenance' is not JSON"),
    (lambda s: s.members.pop("tgt.flac"), r"member 'tgt.flac' is missing"),
    (lambda s: s.members.update({"tgt.flac": b"UklGRiQAAABXQVZF"}), r"member 'tgt.flac' is not FLAC audio"),
    (lambda s: s.members.update({"tgt.flac": b""}), r"member 'tgt.flac' is empty"),
    (lambda s: s.members.update({"src.flac": "fLaC as text"}), r"member 'src.flac' is a str, not bytes"),
])
def test_a_schema_breaking_sample_is_refused_with_its_key_and_field(change, message, tmp_path):
    bad = _broken(change)
    w = ShardWriter(tmp_path, "p", max_samples=10, max_bytes=10**9)
    w.write(clone_sample("first"))
    with pytest.raises(SampleError, match=rf"^sample clone_en-f1_0123456789ab: {message}"):
        w.write(bad)
    w.close()
    names = [m for s in read_samples_raw(tmp_path) for m in s]
    assert names and not [n for n in names if n.startswith("clone_en-f1")], "nothing of the bad sample written"


def read_samples_raw(shards_dir: Path) -> list[list[str]]:
    import tarfile
    out = []
    for p in sorted(shards_dir.glob("*.tar")):
        with tarfile.open(p) as t:
            out.append(t.getnames())
    return out


def test_every_edit_schema_requires_what_its_llm_mapping_reads():
    for task, schema in TASK_SCHEMAS.items():
        llm = schema.llm
        if llm is None:
            continue
        for f in (llm.text, llm.target_text, *([llm.instruction] if llm.instruction else [])):
            assert f in schema.fields and str in (schema.fields[f] if isinstance(schema.fields[f], tuple)
                                                  else (schema.fields[f],)), (task, f)
        assert {llm.source, llm.target} <= set(schema.members), task
        assert "prompt" in schema.fields, f"{task}: every LLM task can carry its voice prompt"


def test_a_schema_error_stops_the_run_naming_key_and_field(tmp_path, cache_dir, ray_local, monkeypatch):
    """A pipeline that builds a bad sample is a bug: the run stops at that sample, nothing is released."""
    import pipelines.triplets as triplets
    monkeypatch.setattr(triplets, "prompt_info", lambda members, text, target: {
        **prompt_info(members, text, target), "text": None})
    with pytest.raises(SampleError, match=r"^sample happy_en-f1_[0-9a-f]{12}: field 'prompt.text' must be string, "
                                          r"got NoneType"):
        run_pipeline(["pipeline=emotion_triplets", f"output_dir={tmp_path}", "languages=[en]", "emotions=[happy]",
                      "texts_per_tag=1", "limit=1", *RAW, "ray.progress=false"])
    d = tmp_path / "emotion_triplets"
    assert not (d / "latest").exists() and not list(d.rglob("*.tar")), "nothing released, no shard"


def test_samples_of_an_older_release_are_recomputed_not_reused(tmp_path):
    from pipelines.runner import _current_version_keys

    class Out:
        def latest(self):
            return tmp_path
    pd.DataFrame({"key": ["a", "b"], "text": ["x", "y"]}).to_parquet(tmp_path / "manifest.parquet")
    assert _current_version_keys(Out()) == set(), "no sample_version column: written before version 2"
    pd.DataFrame({"key": ["a", "b"], "sample_version": [1, SAMPLE_VERSION]}).to_parquet(tmp_path / "manifest.parquet")
    assert _current_version_keys(Out()) == {"b"}


def test_docs_name_every_task_field_and_member():
    doc = (REPO / "docs" / "samples.md").read_text()
    for task, schema in TASK_SCHEMAS.items():
        assert f"`{task}`" in doc, task
        for name in schema.fields:
            assert f"`{name.rsplit('.', 1)[-1]}`" in doc, (task, name)
        for member in schema.members:
            assert f"`{member}`" in doc, (task, member)
