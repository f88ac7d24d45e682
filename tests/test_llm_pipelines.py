"""pipeline=edit and pipeline=clone: the audio LLM over a release on Ray actors (CPU here) through the
shared runner: one output sample per source sample, its audio as members, the source copied byte for
byte, reuse on a rerun; bad settings are named errors."""
import json

import numpy as np
import pytest
import torch

from conftest import run_pipeline
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
    (d / "training.json").write_text(json.dumps({"tokenizer_version": "tokenizer-v3", "version": "editor-llm-tiny"}))
    return d


def _common(tmp_path, tiny_llm, para):
    return [f"data={para[2]}", f"output_dir={tmp_path}", f"pipeline.llm={tiny_llm}", "pipeline.split=null",
            "ray.progress=false"]


def test_edit_pipeline_writes_every_iteration_as_members(para, tiny_llm, tmp_path, ray_local):
    info, _ = run_pipeline(["pipeline=edit", *_common(tmp_path, tiny_llm, para), "pipeline.n_iter=2"])
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
    again, _ = run_pipeline(["pipeline=edit", *_common(tmp_path, tiny_llm, para), "pipeline.n_iter=2"])
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
