"""The checkpoint helpers every trainer resumes through (editor/training.py)."""
import pytest
import torch

from editor.training import resume_state, save_checkpoint


def test_resume_returns_the_saved_state_and_refuses_another_runs_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    logged = []
    assert resume_state(ckpt, "abc", resume=True, log=logged.append) is None  # nothing written yet
    assert "starting from step 0" in logged[-1]
    save_checkpoint(ckpt, {"fingerprint": "abc", "step": 7, "elapsed_s": 60.0, "w": torch.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left visible
    assert resume_state(ckpt, "abc", resume=False) is None
    st = resume_state(ckpt, "abc", resume=True, log=logged.append)
    assert st["step"] == 7 and torch.equal(st["w"], torch.arange(3))
    assert f"resumed from {ckpt} at step 7" in logged[-1]
    with pytest.raises(ValueError, match="checkpoint.pt was written by a run with other inputs"):
        resume_state(ckpt, "xyz", resume=True)
