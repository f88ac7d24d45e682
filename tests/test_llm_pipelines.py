"""pipeline=edit and pipeline=clone: the audio LLM over a release on Ray actors (CPU here) through the
shared runner: one output sample per source sample, its audio as members, the source copied byte for
byte, reuse on a rerun; bad settings are named errors."""
import json

import numpy as np
import pytest
import torch

from conftest import SHIPPED_CODEC, run_pipeline
from core.reader import Release

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """An untrained tiny LLM artifact, as pipeline=train_editor publishes one (weights, vocab, training.json)."""
    from editor.llm.model import build_model, load_preset, save
    from editor.llm.vocab import load_vocab
    d = tmp_path_factory.mktemp("llm") / "editor-llm-tiny"
    torch.manual_seed(0)
    vocab = load_vocab()
    save(build_model(load_preset("tiny"), vocab), vocab, d)
    (d / "training.json").write_text(json.dumps({"tokenizer_version": SHIPPED_CODEC, "version": "editor-llm-tiny"}))
    return d


def _common(tmp_path, tiny_llm, para):
    return [f"data={para[2]}", f"output_dir={tmp_path}", f"pipeline.llm={tiny_llm}", "pipeline.split=null",
            "ray.progress=false"]


def test_edit_pipeline_writes_every_iteration_as_members(para, tiny_llm, tmp_path):
    # in this process (the stage is the clone test's, which runs it on Ray actors): half the time on 2 cores
    edit = ["pipeline=edit", *_common(tmp_path, tiny_llm, para), "pipeline.n_iter=2", "ray.enabled=false"]
    info, _ = run_pipeline(edit)
    src = Release(para[2])
    out = Release(tmp_path / "edit_paralinguistic_quadruplets")
    assert len(out) + info["counts"]["rejected"] == len(src) and len(out) > 0
    rej = info["counts"]["rejected_by_reason"]
    assert set(rej) <= {"llm_edit:empty_output"}, rej
    for s in out.samples(decode=False):
        s.validate()
        j = s.json
        assert j["task"] == "edited" and j["llm"] == "editor-llm-tiny" and j["n_iter"] == 2
        assert s.members["src.flac"] == src.read(j["source_key"], "src.flac"), "the source, byte for byte"
        for k in (1, 2):
            x, sr = Release(tmp_path / "edit_paralinguistic_quadruplets").sample(s.key, [f"edit{k}.flac"]).members[f"edit{k}.flac"]
            assert sr == 16000 and len(x) > 0 and np.isfinite(x).all()
            assert abs(len(x) / sr - j["durations"][f"edit{k}"]) < 0.01
    again, _ = run_pipeline(edit)
    assert again["counts"]["reused_from_previous"] == len(src), "a rerun reuses every sample"


def test_clone_pipeline_clones_every_prompt(para, tiny_llm, tmp_path, ray_local):
    info, _ = run_pipeline(["pipeline=clone", *_common(tmp_path, tiny_llm, para)])
    src = Release(para[2])
    out = Release(tmp_path / "clone_paralinguistic_quadruplets")
    assert len(out) + info["counts"]["rejected"] == len(src) and len(out) > 0
    for s in out.samples(decode=False):
        s.validate()
        assert s.json["task"] == "cloned" and s.members["prompt.flac"] == src.read(s.json["source_key"], "prompt.flac")


def test_bad_settings_are_named(para, tmp_path, tiny_llm):
    with pytest.raises(ValueError, match="the input's own folder"):     # publishing would push the input out
        run_pipeline(["pipeline=edit", f"data={para[2]}", f"output_dir={para[2].parent}",
                      f"pipeline.out_name={para[2].name}", f"pipeline.llm={tiny_llm}"])
    with pytest.raises(ValueError, match="not an audio-LLM artifact"):
        run_pipeline(["pipeline=edit", f"data={para[2]}", f"output_dir={tmp_path}", f"pipeline.llm={tmp_path}"])
    with pytest.raises(ValueError, match="needs data=RELEASE"):
        run_pipeline(["pipeline=clone", f"output_dir={tmp_path}", f"pipeline.llm={tiny_llm}"])
    with pytest.raises(ValueError, match="no samples with split"):
        run_pipeline(["pipeline=edit", *_common(tmp_path, tiny_llm, para)[:3], "pipeline.split=karaoke"])


def test_clone_pipeline_runs_in_process_without_ray(para, tiny_llm, tmp_path, caplog):
    """ray.enabled=false (auto where Ray is not installed: the GPU machine): the same stage, in this process."""
    import logging
    caplog.set_level(logging.INFO, logger="lms")
    info, _ = run_pipeline(["pipeline=clone", *_common(tmp_path, tiny_llm, para), "ray.enabled=false"])
    assert "running llm_clone in this process" in caplog.text
    src = Release(para[2])
    out = Release(tmp_path / "clone_paralinguistic_quadruplets")
    assert len(out) + info["counts"]["rejected"] == len(src) and len(out) > 0
    for s in out.samples(decode=False):
        s.validate()
        assert s.members["prompt.flac"] == src.read(s.json["source_key"], "prompt.flac")


def test_ray_setting_is_checked(monkeypatch):
    from omegaconf import OmegaConf

    from pipelines import runner
    assert runner.use_ray(OmegaConf.create({"enabled": False})) is False
    with pytest.raises(ValueError, match="ray.enabled='sometimes'"):
        runner.use_ray(OmegaConf.create({"enabled": "sometimes"}))
    monkeypatch.setattr(runner.importlib.util, "find_spec", lambda name: None)    # a machine without Ray
    assert runner.use_ray(OmegaConf.create({"enabled": "auto"})) is False
    with pytest.raises(ValueError, match="Ray is not installed"):
        runner.use_ray(OmegaConf.create({"enabled": True}))


FOLDER = ["pipeline=edit", "source=folder", "pipeline.edit_type=emotion", "pipeline.edit_info=happy", "ray.progress=false"]


def _clips(root):
    """Two speakers: three good short clips (one at 22.05 kHz), one unreadable, one over the editor's
    600 s by its header, one without a transcript."""
    import soundfile as sf

    from conftest import voiced
    for spk, name, sr in (("alice", "a", 16000), ("alice", "b", 22050), ("bob", "a", 16000)):
        (root / spk).mkdir(parents=True, exist_ok=True)
        sf.write(root / spk / f"{name}.wav", voiced(0.6, sr=sr, f0=120 + 40 * len(spk)), sr)
        (root / spk / f"{name}.txt").write_text(f"Clip {name} of {spk}.")
    (root / "bob" / "broken.wav").write_bytes(b"not audio")
    (root / "bob" / "broken.txt").write_text("Broken.")
    sf.write(root / "bob" / "long.wav", np.zeros(601 * 1000, np.int16), 1000)
    (root / "bob" / "long.txt").write_text("Far too long.")
    sf.write(root / "bob" / "mute.wav", voiced(0.6), 16000)  # no mute.txt: an emotion edit needs the text
    return {"alice/a.wav", "alice/b.wav", "bob/a.wav"}, 6


def test_edit_pipeline_edits_a_folder_of_clips(tiny_llm, tmp_path, ray_local, caplog):
    import logging

    import pandas as pd
    import soundfile as sf

    from core import audio, splits
    from core.tags import instruction
    root, out_dir = tmp_path / "clips", tmp_path / "o" / "edit_recordings"
    good, n_clips = _clips(root)
    # not ROOT/<speaker>/<clip>: ignored with a warning, never taken for a speaker or a clip
    (root / ".ipynb_checkpoints").mkdir()
    sf.write(root / ".ipynb_checkpoints" / "a.wav", np.zeros(8000, np.float32), 16000)
    sf.write(root / "top.wav", np.zeros(8000, np.float32), 16000)
    caplog.set_level(logging.WARNING, logger="lms")
    args = [*FOLDER, f"source.root={root}", f"output_dir={tmp_path / 'o'}", f"pipeline.llm={tiny_llm}"]
    info, cfg = run_pipeline(args)
    assert "top.wav" in caplog.text and "ignored" in caplog.text
    assert info["stage_cpu_s"].get("llm_edit", 0) > 0, "the LLM stage's time is recorded"
    out, rej = Release(out_dir), pd.read_parquet(out_dir / "rejects.parquet")
    assert len(out) + len(rej) == n_clips == info["counts"]["planned"], "nothing lost"
    assert len(set(out.manifest["key"]) | set(rej["key"])) == n_clips, "keys unique"
    by_file = {next(f for f in ("broken.wav", "long.wav", "mute.wav") if f in d): (s, r)
               for d, s, r in zip(rej["detail"], rej["stage"], rej["reason"])}
    assert by_file == {"broken.wav": ("llm_edit", "bad_input"), "long.wav": ("llm_edit", "too_long"),
                       "mute.wav": ("plan", "empty_text")}, rej[["stage", "reason", "detail"]]
    assert set(out.manifest["source_key"]) == good
    for s in out.samples(decode=False):
        s.validate()
        j = s.json
        assert j["task"] == "edited" and j["source_task"] == "recording" and j["llm"] == "editor-llm-tiny"
        assert (j["edit_type"], j["edit_info"], j["n_iter"], j["seed"], j["prompt_fixed"], j["temperature"]) == \
            ("emotion", "happy", 1, 0, False, 0.7)
        assert j["text"] == (root / j["source_key"]).with_suffix(".txt").read_text()
        assert j["instruction"] == instruction("emotion", "happy", j["text"])
        assert j["split"] == splits.speaker_split(j["speaker"], cfg.splits), "split by speaker"
        m = out.sample(s.key, ["src.flac", "edit1.flac"]).members
        (x, sr), (y, sr_y) = m["src.flac"], m["edit1.flac"]
        assert sr == sr_y == 16000 and len(y) > 0 and np.isfinite(y).all()
        assert np.abs(x - audio.load(root / j["source_key"], 16000)).max() < 1e-3, "src.flac is the clip at 16 kHz"
    again, _ = run_pipeline(args)
    c = again["counts"]
    assert c["reused_from_previous"] == n_clips - 2 and c["kept"] == len(out) and not again["stage_cpu_s"], \
        "a rerun reuses every edit and stage reject (the plan reject and the too-long one, judged from its " \
        "header against a limit that may have changed, are decided again, without model work)"
    # a clip replaced under the same name and transcript is other audio: edited again, not reused
    new = np.random.default_rng(3).standard_normal(16000).astype(np.float32) * 0.1
    sf.write(root / "alice" / "a.wav", new, 16000)
    third, _ = run_pipeline(args)
    assert third["counts"]["reused_from_previous"] == n_clips - 3
    s = next(s for s in Release(out_dir).samples(decode=False) if s.json["source_key"] == "alice/a.wav")
    x, _ = Release(out_dir).sample(s.key, ["src.flac"]).members["src.flac"]
    assert np.abs(x - new).max() < 1e-3, "the new clip's audio, not the old one's"


def test_a_run_that_keeps_nothing_leaves_a_readable_release(tiny_llm, tmp_path):
    """Every clip rejected: the release is empty but readable, and the next run into it works."""
    import soundfile as sf

    from conftest import voiced
    root = tmp_path / "clips" / "alice"
    root.mkdir(parents=True)
    sf.write(root / "a.wav", voiced(0.6), 16000)          # no a.txt: rejected at the plan
    args = [*FOLDER, f"source.root={root.parent}", f"output_dir={tmp_path / 'o'}", f"pipeline.llm={tiny_llm}",
            "ray.enabled=false"]
    for _ in range(2):
        info, _ = run_pipeline(args)
        assert info["counts"]["kept"] == 0 and info["counts"]["rejected"] == 1
    assert len(Release(tmp_path / "o" / "edit_recordings")) == 0


def test_one_request_the_editor_refuses_fails_alone():
    """A batch the editor refuses is retried row by row: only the bad row is a reject, named by its key."""
    from stages.llm_generate import LlmEdit

    class Stub:
        def edit_many(self, reqs):
            if any(r["text"] == "bad" for r in reqs):
                raise ValueError("request 1: paralinguistic edits need audio of at most 30 s")
            return [[np.full(1600, 0.1, np.float32)] for _ in reqs]
    st = LlmEdit(llm="unused", n_iter=1, prompt_fixed=False, seed=0, temperature=0.7)
    st.editor, st.request, st.check = Stub(), (lambda row: row["meta"]["r"]), (lambda r: r)
    rows = [{"key": k, "meta": {"r": {"text": t}}, "members": {}} for k, t in (("good_1", "good"), ("bad_2", "bad"))]
    good, bad = st.process_rows(rows)
    assert "reject" not in good and "edit1.flac" in good["members"]
    assert bad["reject"]["reason"] == "bad_input" and bad["reject"]["detail"].startswith("bad_2: ")


def test_folder_edit_settings_are_named(tmp_path, tiny_llm):
    base = [f"output_dir={tmp_path}", f"pipeline.llm={tiny_llm}", "pipeline=edit"]
    folder = [*base, "source=folder", f"source.root={tmp_path}"]
    for args, match in (
            (folder, "needs pipeline.edit_type"),
            ([*folder, "pipeline.edit_type=emotion", "pipeline.edit_info=joyful"], "pipeline.edit_info: unknown"),
            ([*folder, "pipeline.edit_type=karaoke"], "pipeline.edit_type: unknown"),
            ([*folder, "pipeline.edit_type=denoise", "pipeline.edit_info=happy"], "pipeline.edit_info:"),
            ([*folder, "pipeline.edit_type=paralinguistic", "pipeline.edit_info='So [Laughter] yes'"],
             "pipeline.edit_type=paralinguistic: not with source=folder"),
            ([*base, f"data={tmp_path}", "pipeline.edit_type=emotion", "pipeline.edit_info=happy"],
             "pipeline.edit_type=emotion: the samples of data="),
            ([*base, f"data={tmp_path}", "pipeline.edit_info=happy"], "pipeline.edit_info=happy: the samples"),
            ([*folder, "pipeline.edit_type=emotion", "pipeline.edit_info=happy", "pipeline.n_iter=0"], "pipeline.n_iter=0"),
            ([*folder, "pipeline.edit_type=emotion", "pipeline.edit_info=happy", "pipeline.temperature=-1"],
             "pipeline.temperature")):
        with pytest.raises(ValueError, match=match):
            run_pipeline(args)
