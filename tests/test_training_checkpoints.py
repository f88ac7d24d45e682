"""The checkpoint helpers every trainer resumes through (editor/training.py), and how every trainer
publishes its artifact (editor/artifacts.py)."""
import os
import shutil

import pytest
import torch

from editor import artifacts
from editor.training import resume_state, save_checkpoint


def test_resume_returns_the_saved_state_and_refuses_another_runs_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    logged = []
    assert resume_state(ckpt, "abc", resume=True, log=logged.append) is None  # nothing written yet
    assert "starting from step 0" in logged[-1]
    save_checkpoint(ckpt, {"fingerprint": "abc", "step": 7, "elapsed_s": 60.0, "w": torch.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left visible
    st = resume_state(ckpt, "abc", resume=True, log=logged.append)
    assert st["step"] == 7 and torch.equal(st["w"], torch.arange(3))
    assert f"resumed from {ckpt} at step 7" in logged[-1]
    with pytest.raises(ValueError, match="checkpoint.pt was written by a run with other inputs"):
        resume_state(ckpt, "xyz", resume=True)
    # a fresh run discards it: a crash before its own first checkpoint cannot resume the earlier run
    assert resume_state(ckpt, "abc", resume=False, log=logged.append) is None
    assert not ckpt.exists() and "is discarded" in logged[-1]


def artifact(d, text):
    d.mkdir(exist_ok=True)
    (d / "weights.bin").write_text(text)
    return d


def test_publish_replaces_an_artifact_without_the_name_ever_standing_empty(tmp_path, monkeypatch):
    """The swap is one step: no rename that would leave the name empty runs, and a crash after the swap
    (here: cleaning up the old artifact fails) leaves the new artifact whole under the name."""
    probe = [artifact(tmp_path / "probe-a", "a"), artifact(tmp_path / "probe-b", "b")]
    if not artifacts._exchange(*probe):
        pytest.skip("this file system cannot swap two paths (the fallback is tested below)")
    shutil.rmtree(probe[0]), shutil.rmtree(probe[1])
    final = tmp_path / "decoder-v2"
    artifacts.publish(artifact(artifacts.staging_dir(final), "first"), final)    # a new name: one rename
    assert (final / "weights.bin").read_text() == "first"
    renames, second = [], artifact(artifacts.staging_dir(final), "second")
    monkeypatch.setattr(os, "replace", lambda *a: renames.append(a) or pytest.fail("a two-step rename ran"))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        artifacts.publish(second, final)
    assert (final / "weights.bin").read_text() == "second" and not renames
    monkeypatch.undo()
    leftover = [p for p in tmp_path.iterdir() if p != final]
    assert len(leftover) == 1 and (leftover[0] / "weights.bin").read_text() == "first"   # the old one, aside
    artifacts.publish(artifact(artifacts.staging_dir(final), "third"), final)
    assert (final / "weights.bin").read_text() == "third"


def test_publish_falls_back_to_two_renames_where_paths_cannot_be_swapped(tmp_path, monkeypatch):
    final = tmp_path / "decoder-v2"
    artifacts.publish(artifact(artifacts.staging_dir(final), "first"), final)
    monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)
    artifacts.publish(artifact(artifacts.staging_dir(final), "second"), final)
    assert (final / "weights.bin").read_text() == "second" and [p.name for p in tmp_path.iterdir()] == [final.name]
