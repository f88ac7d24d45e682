"""A generated voice bank of any size: the written speakers first, then drawn ones that are a pure
function of (language, gender, index), each speakable, and enough of them that the hash split
leaves two test speakers per language at the size the shipped editor's data uses."""
import numpy as np
import pytest

from core.splits import split_of
from tts.voice_bank import GENERATED_SPEAKERS, GeneratedVoiceBank, generated_speakers

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def test_default_is_the_written_speakers():
    assert generated_speakers(["en", "zh"]) == [s for s in GENERATED_SPEAKERS if s.language in ("en", "zh")]


def test_sizes_nest_and_ids_are_unique():
    small, big = generated_speakers(["en", "zh"], 6), generated_speakers(["en", "zh", "yue"], 18)
    assert len(big) == 54 and len({s.id for s in big}) == 54
    for lang in ("en", "zh"):
        of = lambda bank: [s for s in bank if s.language == lang]
        assert of(small) == of(big)[:6]                       # a larger bank keeps the smaller one's speakers
        assert of(big)[:4] == [s for s in GENERATED_SPEAKERS if s.language == lang]
        genders = [s.gender for s in of(big)]
        assert genders.count("female") == genders.count("male") == 9
    drawn = [s for s in big if s not in GENERATED_SPEAKERS]
    assert len({(s.base_voice, s.timbre) for s in drawn}) == len(drawn)   # no two share base voice and timbre
    assert all(s.base_voice.startswith("espeak:cmn") for s in drawn if s.language == "zh")
    with pytest.raises(ValueError, match="per_language"):
        generated_speakers(["en"], 0)


def test_shipped_data_size_leaves_two_test_speakers_per_language():
    """bench/editor_llm_data.sh uses per_language=18: the LLM's test split needs two voices per language."""
    for lang in ("en", "zh"):
        test = [s.id for s in generated_speakers([lang], 18) if split_of(f"speaker:{s.id}", FRACTIONS, "0") == "test"]
        assert len(test) >= 2, (lang, test)


def test_drawn_speakers_speak_with_their_own_voice(tmp_path):
    from tts.engine import LocalEngine
    from tts.voicing import Voicing
    eng = LocalEngine(16000)
    zh = [s for s in generated_speakers(["zh"], 6) if s not in GENERATED_SPEAKERS]
    clips = [eng.render("今天天气很好。", "zh", s.timbre, s.base_voice) for s in zh]
    plain = eng.render("今天天气很好。", "zh", Voicing(), "espeak:cmn-latn-pinyin")
    for x in clips:
        assert len(x) > 0.5 * 16000 and np.isfinite(x).all() and np.abs(x).max() > 0.01
    # a different voice: not the plain base rendering, and the two drawn voices differ from each other
    n = min(len(c) for c in [*clips, plain])
    assert all(np.abs(c[:n] - plain[:n]).mean() > 1e-3 for c in clips)
    assert np.abs(clips[0][:n] - clips[1][:n]).mean() > 1e-3
    bank = GeneratedVoiceBank(str(tmp_path), 16000, ["zh"], per_language=6)
    assert bank.id != GeneratedVoiceBank(str(tmp_path), 16000, ["zh"]).id   # its own cache
