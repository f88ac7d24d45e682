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
