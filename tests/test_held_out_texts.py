"""bench/held_out_texts.py: an earlier data set's validation or test sentence among a grown set's
training sentences is found and fails the check; texts of other splits do not."""
import pandas as pd
import pytest

from bench.held_out_texts import main


def _manifest(root, pipeline, rows):
    d = root / pipeline
    d.mkdir(parents=True)
    pd.DataFrame(rows, columns=["split", "text"]).to_parquet(d / "manifest.parquet")


def test_a_held_out_text_in_training_fails(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    _manifest(old, "emotion_triplets", [("train", "a"), ("validation", "b"), ("test", "c")])
    _manifest(new, "emotion_triplets", [("train", "a"), ("train", "d"), ("test", "c")])
    _manifest(new, "paralinguistic_quadruplets", [("train", "e")])
    assert main(["--train", str(new), "--held", str(old)]) == 0      # "c" is a test text in both: fine
    _manifest(new, "speed_triplets", [("train", "b")])               # old's validation text, now trained on
    assert main(["--train", str(new), "--held", str(old), "--out", str(tmp_path / "r.json")]) == 1
    assert '"in_training": 1' in (tmp_path / "r.json").read_text()


def test_a_dir_without_manifests_is_named(tmp_path):
    with pytest.raises(SystemExit, match="nowhere: no factory manifest"):
        main(["--train", str(tmp_path / "nowhere"), "--held", str(tmp_path)])
