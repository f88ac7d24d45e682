"""The offline base voices besides Piper and espeak-ng (flite, festival): each speaks English that
pocketsphinx understands, each refuses what it cannot speak with a named error, and a bank can draw its
speakers across all the engines."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from bench.base_voice_wer import voice_wer
from scorers.asr import wer_of
from tts import base_voices
from tts.base_voices import ENGLISH_ONLY, BaseVoices, UnspeakableText, base_voice_sex, check_voice_name
from tts.engine import LocalEngine
from tts.voice_bank import GENERATED_SPEAKERS, GeneratedVoiceBank, generated_speakers, make_voice_bank

# Measured with bench/base_voice_wer.py (docs/voices.md), bound = measured + margin for ASR jitter.
WER_BOUND = {"flite:kal": 0.35, "flite:kal16": 0.15, "flite:awb": 0.15, "flite:rms": 0.2, "flite:slt": 0.4,
             "festival:kal_diphone": 0.2, "festival:ked_diphone": 0.3, "festival:cmu_us_slt_arctic_hts": 0.2}
ENGINES = ("piper", "flite", "festival")


@pytest.fixture(scope="module")
def engine():
    return LocalEngine(16000)


def test_every_new_voice_is_bounded():
    assert set(WER_BOUND) == set(ENGLISH_ONLY)


@pytest.mark.parametrize("voice", sorted(WER_BOUND))
def test_voice_speaks_english(engine, voice):
    x = engine.base("Please call me back when you get home tonight.", "en", voice)
    assert len(x) > 16000 and np.isfinite(x).all() and np.abs(x).max() > 0.01
    assert voice_wer(engine, voice) <= WER_BOUND[voice]


def test_new_voices_speak_english_only(engine):
    # no flite or festival voice in the registries speaks Mandarin or Cantonese
    for voice in ("flite:slt", "festival:kal_diphone"):
        with pytest.raises(ValueError, match="speaks English only"):
            engine.base("今天天气很好。", "zh", voice)
    with pytest.raises(UnspeakableText):
        engine.base("今天天气很好。", "en", "flite:slt")


def test_unknown_voices_are_named_errors():
    for bad, what in (("flite:foo", "not a flite voice"), ("flite:-o", "not a flite voice"),
                      ("festival:rab_diphone", "not a festival voice"),
                      ("festival:kal_diphone)(system", "not a festival voice"), ("piper:amy", "unknown base voice"),
                      ("mbrola:us1", "unknown base voice"), ("flite:awb_time", "not a flite voice")):
        with pytest.raises(ValueError, match=what):
            check_voice_name(bad)
        with pytest.raises(ValueError, match="unknown base voice"):
            BaseVoices().get(bad, "en")


def test_a_missing_synthesizer_is_named(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    for fn in (base_voices.flite_voice_names, base_voices.festival_voice_names):
        fn.cache_clear()
        monkeypatch.setattr(base_voices, fn.__name__, fn)
    with pytest.raises(RuntimeError, match="apt-get install flite"):
        check_voice_name("flite:slt")
    with pytest.raises(RuntimeError, match="apt-get install festival"):
        check_voice_name("festival:kal_diphone")
    base_voices.flite_voice_names.cache_clear()
    base_voices.festival_voice_names.cache_clear()


def test_sexes():
    assert [base_voice_sex(v) for v in ("piper:joe", "flite:slt", "festival:cmu_us_slt_arctic_hts", "flite:rms",
                                        "espeak:cmn-latn-pinyin+f2", "espeak:yue+m3", "espeak:en")] == \
        ["male", "female", "female", "male", "female", "male", None]


def test_bank_draws_across_engines(engine, tmp_path):
    with initialize_config_dir(config_dir=str(Path("configs").resolve()), version_base=None):
        cfg = compose("config", overrides=["voice_bank=generated_engines", f"cache_dir={tmp_path}"])
    bank = make_voice_bank(cfg.voice_bank, ["en", "zh"], 16000, 0)
    en = [s for s in bank.speakers if s.language == "en"]
    assert {s.base_voice.split(":")[0] for s in en} == set(ENGINES)
    assert en[:4] == [s for s in GENERATED_SPEAKERS if s.language == "en"]       # the written speakers stay
    assert len({(s.base_voice, s.timbre.warp) for s in en}) == len(en)         # no two share base voice and warp
    assert all(base_voice_sex(s.base_voice) == "female" for s in en[4:] if s.gender == "female")
    assert all(0.96 <= s.timbre.warp <= 1.04 for s in en[4:] if s.gender == "female")   # a female voice, not a child's
    # zh is not in the config's base_voices: its drawn speakers are the default pool's
    assert [s for s in bank.speakers if s.language == "zh"] == generated_speakers(["zh"], 40)
    assert bank.id != GeneratedVoiceBank(str(tmp_path), 16000, ["en", "zh"], per_language=40).id
    # the first drawn speaker of each new engine and sex speaks with its timbre, still understandably
    # (measured 0.0-0.32 over bench/base_voice_wer.py's sentences)
    text = "We walked along the river until the sun went down."
    for eng in ("flite", "festival"):
        for gender in ("female", "male"):
            s = next(s for s in en[4:] if s.base_voice.startswith(eng + ":") and s.gender == gender)
            assert wer_of(engine.render(text, "en", s.timbre, s.base_voice), 16000, text) <= 0.5, s


def test_bad_base_voices_config():
    for bad, what in (({"en": ["flite:nope"]}, "not a flite voice"), ({"zh": ["flite:slt"]}, "English only"),
                      ({"en": "flite:slt"}, "non-empty list"), (["flite:slt"], "base_voices")):
        with pytest.raises(ValueError, match=what):
            generated_speakers(["en"], 6, base_voices=bad)
