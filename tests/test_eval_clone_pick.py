"""Which clone examples the evaluation clones (bench/editor_llm_eval.py pick_clones): by default the first
--per-task distinct ones, as earlier reports; per language, up to N of each, so the English WER is not
read from a handful of clips when the picked samples are mostly Mandarin."""
from types import SimpleNamespace

from bench.editor_llm_eval import pick_clones


def _samples():
    # 12 Mandarin samples, then 6 English ones; every third sample repeats the clone example before it
    out = []
    for i, lang in enumerate(["zh"] * 12 + ["en"] * 6):
        key = f"{lang}{i - (i % 3 == 2)}"
        out.append(SimpleNamespace(key=key, json={"language": lang}))
    return out


def test_default_takes_the_first_distinct_examples():
    exs = pick_clones(_samples(), lambda s: s, limit=5)
    assert [c.key for c in exs] == ["zh0", "zh1", "zh3", "zh4", "zh6"]


def test_per_language_reaches_past_the_majority_language():
    exs = pick_clones(_samples(), lambda s: s, limit=5, per_language=3)
    keys = [c.key for c in exs]
    assert keys == ["zh0", "zh1", "zh3", "en12", "en13", "en15"]
    assert len(set(keys)) == len(keys)


def test_samples_without_a_clone_example_are_skipped():
    exs = pick_clones(_samples(), lambda s: None if s.json["language"] == "zh" else s, limit=10)
    assert [c.json["language"] for c in exs] == ["en"] * 4
