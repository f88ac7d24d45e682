"""The embedded cloning engine: real Piper/espeak-ng + WORLD, no mocks."""
import numpy as np
import pytest

from scorers.asr import wer_of
from tts.engine import LocalEngine
from tts.presets import PRESETS, preset
from tts.profile import profile
from tts.voicing import Voicing

PROMPT = ("On Monday morning the library opens at nine, and the reading room on the second floor stays "
          "quiet until the afternoon classes begin across the street.")
TEXT = "The new bakery on the corner sells fresh bread every morning."


@pytest.fixture(scope="module")
def engine():
    return LocalEngine(16000)


def test_every_tag_has_a_documented_preset():
    from core.tags import EMOTIONS, STYLES
    for tag in EMOTIONS + STYLES:
        v, doc = PRESETS[tag]
        assert doc and v != Voicing(), tag


def test_intensity_scales_from_neutral(engine):
    assert preset("happy", 0.0) == Voicing()
    assert preset("happy", 0.5).f0_shift_st == pytest.approx(PRESETS["happy"][0].f0_shift_st / 2)


def test_clone_recovers_prompt_prosody(engine):
    """Clones from a sad and a happy prompt of one speaker differ as the prompts do."""
    timbre = Voicing(f0_shift_st=8, warp=1.15)
    prompts = {t: engine.render(PROMPT, "en", timbre + preset(t)) for t in ("neutral", "happy", "sad")}
    clones = {t: engine.clone(p, PROMPT, TEXT, "en")[0] for t, p in prompts.items()}
    prof = {t: profile(x, 16000, TEXT, "en") for t, x in clones.items()}
    assert prof["happy"]["f0_median_st"] > prof["neutral"]["f0_median_st"] + 1.5
    assert prof["sad"]["f0_median_st"] < prof["neutral"]["f0_median_st"] - 1
    assert prof["sad"]["rate_syl_s"] < 0.9 * prof["neutral"]["rate_syl_s"]
    assert prof["sad"]["energy_db"] < prof["neutral"]["energy_db"] - 2
    # the neutral clone keeps the speaker's pitch level (8 semitones above the base voice)
    base = profile(engine.base(TEXT, "en", None), 16000, TEXT, "en")
    assert prof["neutral"]["f0_median_st"] > base["f0_median_st"] + 4
    assert wer_of(clones["neutral"], 16000, TEXT) <= 0.3


def test_clone_is_deterministic(engine):
    p = engine.render(PROMPT, "en", preset("fear"))
    a, b = engine.clone(p, PROMPT, TEXT, "en")[0], engine.clone(p, PROMPT, TEXT, "en")[0]
    assert np.array_equal(a, b)


def test_mandarin_and_cantonese(engine):
    for lang, voice in (("zh", "espeak:cmn-latn-pinyin"), ("yue", "espeak:yue")):
        x = engine.render("今天天气很好，我们去公园散步吧。", lang, preset("happy"), voice)
        assert 1.5 < len(x) / 16000 < 8


def test_text_a_voice_cannot_speak(engine):
    from tts.base_voices import UnspeakableText
    with pytest.raises(UnspeakableText, match="not English"):
        engine.render("今天天气很好", "en", Voicing())
    with pytest.raises(UnspeakableText, match="no Chinese"):
        engine.render("hello there", "zh", Voicing())
    with pytest.raises(UnspeakableText, match="empty"):
        engine.render("   ", "en", Voicing())


def test_bad_prompt_audio(engine):
    from core.audio import BadAudio
    with pytest.raises(BadAudio, match="prompt audio"):
        engine.clone(np.zeros(16000, np.float32), PROMPT, TEXT, "en")
    with pytest.raises(BadAudio, match="prompt audio"):
        engine.clone(np.ones(100, np.float32) * 0.1, PROMPT, TEXT, "en")
