"""bench/paired_ceilings.py pairs two codecs' ceilings edit by edit and refuses runs whose edits differ."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import paired_ceilings  # noqa: E402


def _run(path: Path, seed: int, codecs: dict, data=(8.0, 8.5, 9.0)) -> str:
    path.write_text(json.dumps({
        "command": f"python bench/margin_ceiling.py --data D --seed {seed} "
                   + " ".join(f"--codec {c}" for c in codecs) + f" --out {path.name}",
        "codecs": {c: {t: {"per_clip": {"data": list(data), "ceiling": list(v)}} for t in paired_ceilings.TASKS}
                   for c, v in codecs.items()}}))
    return str(path)


def test_pairs_edits_across_files_and_seeds(tmp_path):
    both = _run(tmp_path / "s0.json", 0, {"tok-v3:dec-v3": [7, 8, 6], "tok-v8:dec-v8": [1, 1, 1],
                                          "tok-v10:dec-v10": [5, 5, 4]})
    old = _run(tmp_path / "s1.json", 1, {"tok-v3:dec-v3": [7, 7, 7]})
    new = _run(tmp_path / "s1b.json", 1, {"tok-v10:dec-v10": [8, 8, 9]})
    res = paired_ceilings.compare("tok-v3:", "v10", [(both, both), (old, new)], boots=200)
    # one run in one file, the other in two: each edit paired with the same edit of its own seed
    e = res["emotion_edit"]
    assert e["n"] == 6
    assert e["diff_mean"] == pytest.approx(((5 - 7) + (5 - 8) + (4 - 6) + 1 + 1 + 2) / 6, abs=0.01)
    assert e["a_share_ge_6"] == 1.0 and e["b_share_ge_6"] == 0.5


def test_refuses_runs_of_other_edits(tmp_path):
    a = _run(tmp_path / "a.json", 0, {"tok-v3:dec-v3": [7, 8, 6]})
    other_seed = _run(tmp_path / "b.json", 1, {"tok-v10:dec-v10": [8, 8, 9]})
    with pytest.raises(SystemExit, match="different edits"):
        paired_ceilings.compare("v3", "v10", [(a, other_seed)])
    other_clips = _run(tmp_path / "c.json", 0, {"tok-v10:dec-v10": [8, 8, 9]}, data=(1.0, 2.0, 3.0))
    with pytest.raises(SystemExit, match="do not pair"):
        paired_ceilings.compare("v3", "v10", [(a, other_clips)])
    with pytest.raises(SystemExit, match="matches"):
        paired_ceilings.compare("tok-v", "v10", [(a, a)])
