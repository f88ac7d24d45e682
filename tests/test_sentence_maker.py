"""tts.sentence_maker: many distinct source sentences, the same ones every time, in their language's script."""
import re
from pathlib import Path

import pytest

from tts import sentence_maker, texts

ROOT = Path(__file__).resolve().parent.parent


def test_sentences_are_distinct_deterministic_and_in_their_script():
    for lang in ("en", "zh"):
        a = sentence_maker.sentences(lang, 800)
        assert len(set(a)) == 800 and a == sentence_maker.sentences(lang, 800)
        assert a != sentence_maker.sentences(lang, 800, seed=1)
    assert all(re.fullmatch(r"[A-Z][A-Za-z ,]+\.", s) for s in sentence_maker.sentences("en", 200))
    assert all(re.fullmatch(r"[\u4e00-\u9fff，]+。", s) for s in sentence_maker.sentences("zh", 200))
    with pytest.raises(ValueError, match="distinct"):
        sentence_maker.sentences("zh", 10 ** 6)


def test_shipped_extra_texts_are_the_makers_and_read_by_the_factory(tmp_path):
    for lang in ("en", "zh"):
        lines = (ROOT / "data" / "extra_texts" / lang / "neutral.txt").read_text().splitlines()
        assert lines == sentence_maker.sentences(lang, len(lines)) and len(lines) >= 1000
        pool = texts.sentences(lang, "neutral", str(ROOT / "data" / "extra_texts"))
        assert pool[-len(lines):] == lines and len(pool) > len(lines)          # the shipped ones first
    # every Chinese character is one the text tokenizer was trained on (no byte fallback)
    shipped = {c for tag in texts.corpus("zh") for s in texts.sentences("zh", tag) for c in s}
    made = set("".join(sentence_maker.sentences("zh", 1500)))
    assert made <= shipped


def test_tag_files_are_the_streams_next_slices_disjoint_from_neutral(tmp_path):
    neutral = set(sentence_maker.sentences("en", 1500))
    made = sentence_maker.tag_sentences("en", ["happy", "whisper"], 40, skip=1500)
    assert [len(v) for v in made.values()] == [40, 40]
    assert not set(made["happy"]) & set(made["whisper"]) and not neutral & set(made["happy"] + made["whisper"])
    assert made["happy"] + made["whisper"] == sentence_maker.sentences("en", 1580)[1500:]
    for tags, message in ((["happy", "happy"], "each once"), (["neutral"], "not neutral"), (["hapy"], "hapy")):
        with pytest.raises(ValueError, match=message):
            sentence_maker.tag_sentences("en", tags, 5, skip=0)
    sentence_maker.main(["--out", str(tmp_path), "--tags", "sad", "--per-tag", "5", "--skip", "3"])
    assert (tmp_path / "zh" / "sad.txt").read_text().splitlines() == sentence_maker.sentences("zh", 8)[3:]


def test_shipped_tag_texts_are_the_makers_after_the_neutral_ones():
    for lang in ("en", "zh"):
        neutral = (ROOT / "data" / "extra_texts" / lang / "neutral.txt").read_text().splitlines()
        files = sorted((ROOT / "data" / "tag_texts" / lang).glob("*.txt"))
        assert len(files) == 12
        lines = [l for f in files for l in f.read_text().splitlines()]
        assert len(set(lines)) == len(lines) == 12 * 60 and not set(lines) & set(neutral)
        assert set(lines) <= set(sentence_maker.sentences(lang, len(neutral) + len(lines)))
        # the factory reads them after the tag's shipped sentences
        assert texts.sentences(lang, "happy", str(ROOT / "data" / "tag_texts"))[8:] == \
            (ROOT / "data" / "tag_texts" / lang / "happy.txt").read_text().splitlines()
