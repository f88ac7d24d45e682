"""bench/paired_benchmark.py pairs two editors' benchmark cells prompt by prompt and refuses runs of
different sets."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import paired_benchmark  # noqa: E402


def _results(tmp_path, name, cells, judge="j"):
    path = tmp_path / name
    path.write_text(json.dumps({"editor": name, "judge": judge, "summary": {}, "cells": cells}))
    return path


def _cell(pid, it, correct, wer=None, mode="feedback", run="editor", speaker=None):
    c = {"run": run, "source": "own", "mode": mode, "id": pid, "language": pid[:2], "category": "emotion",
         "label": "sad", "iter": it, "correct": correct, "speaker": speaker or f"spk-{pid}"}
    if wer is not None:
        c["wer"] = wer
    return c


def test_pairs_prompt_by_prompt(tmp_path):
    """Only prompts in both runs count; other runs and modes are left out; WER pairs on English clips."""
    a = _results(tmp_path, "a.json", [_cell("en-1", 1, False, 1.0), _cell("en-2", 1, True, 0.5),
                                      _cell("zh-1", 1, False), _cell("en-9", 1, True, 0.0),
                                      _cell("en-1", 1, True, 9.0, mode="prompt_fixed"),
                                      _cell("en-1", 1, True, 9.0, run="baseline")])
    b = _results(tmp_path, "b.json", [_cell("en-1", 1, True, 1.5), _cell("en-2", 1, True, 0.5),
                                      _cell("zh-1", 1, True)])
    rows = paired_benchmark.compare(paired_benchmark.cells(a, "feedback"), paired_benchmark.cells(b, "feedback"))
    r = rows["emotion_iter1"]
    assert r["prompts"] == 3 and r["accuracy_a"] == pytest.approx(33.3) and r["accuracy_b"] == 100.0
    assert r["accuracy_b_minus_a"] == pytest.approx(66.7)
    assert r["wer_clips"] == 2 and r["wer_b_minus_a"] == 0.25
    assert 0 <= r["accuracy_ci"][0] < 66.7 < r["accuracy_ci"][1] == 100.0
    assert r["wer_ci"] is None, "two English speakers: too few to resample"


def test_runs_of_other_sets_are_refused(tmp_path):
    a = _results(tmp_path, "a.json", [_cell("en-1", 1, True)])
    b = _results(tmp_path, "b.json", [_cell("en-7", 1, True)])
    with pytest.raises(SystemExit, match="share no cell"):
        paired_benchmark.compare(paired_benchmark.cells(a, "feedback"), paired_benchmark.cells(b, "feedback"))
    # the same prompt id for another speaker (another seed's set), or another judge: refused
    c = _results(tmp_path, "c.json", [_cell("en-1", 1, True, speaker="someone else")])
    with pytest.raises(SystemExit, match="not runs of the same benchmark set"):
        paired_benchmark.compare(paired_benchmark.cells(a, "feedback"), paired_benchmark.cells(c, "feedback"))
    d = _results(tmp_path, "d.json", [_cell("en-1", 1, True)], judge="judge-v9")
    with pytest.raises(SystemExit, match="different judges"):
        paired_benchmark.compare(paired_benchmark.cells(a, "feedback"), paired_benchmark.cells(d, "feedback"))


def test_intervals_resample_speakers_not_prompts(tmp_path):
    """Ten prompts of each of two speakers all improved and ten of each of two others all got worse: over
    prompts the mean looks certain to be 0 give or take little; over the four speakers it is far wider."""
    up = [_cell(f"en-u{i}", 1, False, speaker=f"s{i % 2}") for i in range(20)]
    down = [_cell(f"en-d{i}", 1, True, speaker=f"t{i % 2}") for i in range(20)]
    a = _results(tmp_path, "a.json", up + down)
    b = _results(tmp_path, "b.json", [{**c, "correct": not c["correct"]} for c in up + down])
    r = paired_benchmark.compare(paired_benchmark.cells(a, "feedback"), paired_benchmark.cells(b, "feedback"))["emotion_iter1"]
    assert r["accuracy_b_minus_a"] == 0 and r["speakers"] == 4
    assert r["accuracy_ci"][0] <= -40 and r["accuracy_ci"][1] >= 40, r["accuracy_ci"]
