"""bench/paired_clip_metric.py pairs one per-clip number of two editors' runs edit by edit, over every task
and seed, and refuses runs whose edits could differ."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import paired_clip_metric  # noqa: E402

BASE = "python bench/editor_llm_eval.py --split test --per-task 3"


def _run(tmp_path, name, command, clips):
    """clips: {task: [(key, language, wer), ...]}"""
    (tmp_path / name).write_text(json.dumps({"command": command, "per_clip": {
        t: [{"key": k, "language": lang, "wer": w} for k, lang, w in cs] for t, cs in clips.items()}}))
    return str(tmp_path / name)


def test_pairs_by_task_and_key_and_keeps_the_language(tmp_path):
    a = _run(tmp_path, "a.json", f"{BASE} --llm v10", {
        "speed_edit": [("k1", "en", 1.0), ("k2", "en", 0.8), ("z1", "zh", 0.1)],
        "denoise": [("k1", "en", 0.6), ("only_a", "en", 0.0)]})
    b = _run(tmp_path, "b.json", f"{BASE} --llm v12", {
        "speed_edit": [("k2", "en", 0.6), ("k1", "en", 0.9), ("z1", "zh", 0.9)],
        "denoise": [("k1", "en", 0.2)], "trim": [("k1", "en", 0.0)]})
    res = paired_clip_metric.compare([a], [b], "wer", "en", boots=200)
    # speed k1 (1.0 -> 0.9), speed k2 (0.8 -> 0.6), denoise k1 (0.6 -> 0.2); zh and unshared left out
    assert res["pairs"] == 3 and res["per_task"] == {"speed_edit": 2, "denoise": 1}
    assert res["b_minus_a"] == pytest.approx(-0.7 / 3, abs=1e-4)
    assert res["ci95"][0] <= res["b_minus_a"] <= res["ci95"][1] < 0
    assert res["b_better_share"] == 1.0 and res["better"] == "lower"
    assert res["a_only"] == 1 and res["b_only"] == 1          # denoise only_a, trim k1: counted, not paired
    assert paired_clip_metric.compare([a], [b], "wer", "en", boots=200, better="higher")["b_better_share"] == 0.0
    every = paired_clip_metric.compare([a], [b], "wer", None, boots=200)
    assert every["pairs"] == 4 and every["b_minus_a"] == pytest.approx((-0.7 + 0.8) / 4, abs=1e-4)


def test_refuses_runs_that_pick_other_edits_or_do_not_pair(tmp_path):
    a = _run(tmp_path, "a.json", f"{BASE} --llm v10", {"speed_edit": [("k1", "en", 1.0)]})
    b = _run(tmp_path, "b.json", f"{BASE} --llm v12 --seed 1", {"speed_edit": [("k1", "en", 0.5)]})
    with pytest.raises(ValueError, match="differ in more than the compared setting"):
        paired_clip_metric.compare([a], [b], "wer")
    with pytest.raises(ValueError, match="pair them one to one"):
        paired_clip_metric.compare([a, a], [a], "wer")
    c = _run(tmp_path, "c.json", f"{BASE} --llm v12", {"speed_edit": [("other", "en", 0.5)]})
    with pytest.raises(ValueError, match="no edit with 'wer'"):
        paired_clip_metric.compare([a], [c], "wer")
    (tmp_path / "lists.json").write_text(json.dumps({"command": f"{BASE} --llm v12", "per_clip": {
        "speed_edit": [{"key": "k1", "language": "en", "wer": [0.1, 0.2]}]}}))
    with pytest.raises(ValueError, match="is not one number per clip"):
        paired_clip_metric.compare([a], [str(tmp_path / "lists.json")], "wer")
    (tmp_path / "other.json").write_text(json.dumps({"command": f"{BASE} --llm v12"}))
    with pytest.raises(ValueError, match="no per_clip results"):
        paired_clip_metric.compare([a], [str(tmp_path / "other.json")], "wer")
