"""bench/paired_margins.py pairs two editors' margins edit by edit, by sample key, and refuses runs whose
edits could differ."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import paired_margins  # noqa: E402

BASE = "python bench/editor_llm_eval.py --split test --per-task 3"


def _run(tmp_path, name, command, margins):
    import json
    (tmp_path / name).write_text(json.dumps({"command": command, "per_clip": {
        task: [{"key": k, "margin": m} for k, m in by_key.items()] for task, by_key in margins.items()}}))
    return str(tmp_path / name)


def test_pairs_by_key_across_release_lists(tmp_path):
    """A guided run of emotion and style only pairs with an unguided run of every task on their shared keys."""
    a = _run(tmp_path, "a.json", f"{BASE} --data e,s,speed --llm v5",
             {"emotion_edit": {"k1": [5, 6], "k2": [7, 8], "k3": [4, 4]}, "style_edit": {"s1": [3, 5]}})
    b = _run(tmp_path, "b.json", f"{BASE} --data e,s --llm v10 --guidance emotion=1.5,style=1.5",
             {"emotion_edit": {"k3": [6, 5], "k1": [6, 7], "other": [9, 9]}, "style_edit": {"s9": [9, 9]}})
    res = paired_margins.paired([a], [b])
    first = res["emotion_edit iteration 1"]
    assert first["pairs"] == 2 and first["a_mean"] == 4.5 and first["b_mean"] == 6.0 and first["b_minus_a"] == 1.5
    assert res["emotion_edit iteration 2"]["b_minus_a"] == 1.0
    assert not any(k.startswith("style_edit") for k in res)        # no shared key: left out, not made up


def test_refuses_runs_that_pick_other_edits(tmp_path):
    a = _run(tmp_path, "a.json", f"{BASE} --data e --llm v5", {"emotion_edit": {"k1": [5, 6]}})
    b = _run(tmp_path, "b.json", f"{BASE} --data e --llm v10 --seed 1", {"emotion_edit": {"k1": [6, 6]}})
    with pytest.raises(ValueError, match="differ in more than the compared setting"):
        paired_margins.paired([a], [b])
