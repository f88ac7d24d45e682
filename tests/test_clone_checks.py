"""The clone's voicing estimate checks itself: re-estimated or rejected with a reason, never silently used;
with no base voice given, the closest voice by speaker embedding."""
import pickle

import numpy as np
import pytest

from stages.base import Stage
from tts.engine import LocalEngine
from tts.profile import WARP_GRID, WIDE_WARP_GRID, clone_voicing, profile
from tts.voicing import Voicing, VoicingRejected
from tts.world_render import synthesize

PROMPT = "The reading room on the second floor stays quiet until noon."
TEXT = "Fresh bread every morning."


@pytest.fixture(scope="module")
def engine():
    return LocalEngine(16000)


def test_normal_prompt_estimates_as_before(engine):
    """A prompt that passes the checks on the caller's base voice gets the one dio estimate it always had."""
    prompt = engine.render(PROMPT, "en", Voicing(f0_shift_st=-2, warp=0.95), "piper:joe")
    y, v, info = engine.clone(prompt, PROMPT, TEXT, "en", base_voice="piper:joe")
    base = profile(synthesize(engine.base_features(PROMPT, "en", "piper:joe")[1]), 16000, PROMPT, "en")
    before = clone_voicing(profile(prompt, 16000, PROMPT, "en"), base, 16000)
    assert v.replace(gain_db=0.0) == before
    assert info["base_voice"] == "piper:joe" and info["choice"] == "given by the caller"
    assert [t["failed"] for t in info["tries"]] == [[]]
    assert np.array_equal(y, engine.render(TEXT, "en", v, "piper:joe"))


def test_warp_on_the_grid_edge_is_searched_again(engine):
    prompt = engine.render(PROMPT, "en", Voicing(warp=1.6), "piper:joe")
    _, v, info = engine.clone(prompt, PROMPT, TEXT, "en", base_voice="piper:joe")
    first, last = info["tries"][0], info["tries"][-1]
    assert first["grid"] == list(WARP_GRID) and "edge of the grid" in first["failed"][0]
    assert last["grid"] == list(WIDE_WARP_GRID) and last["failed"] == []
    assert WARP_GRID[1] < v.warp < WIDE_WARP_GRID[1]


def test_implausible_f0_shift_is_rejected_with_its_reason(engine):
    """A high voice (flite:slt 10 semitones up, ~300 Hz) against a low base voice (flite:kal, ~90 Hz)."""
    prompt = engine.render(PROMPT, "en", Voicing(f0_shift_st=10), "flite:slt")
    with pytest.raises(VoicingRejected, match=r"f0 shift \+\d+\.\d st beyond") as e:
        engine.clone(prompt, PROMPT, TEXT, "en", base_voice="flite:kal")
    # dio first, then harvest: both tries are named
    assert len(e.value.reasons) == 2 and "(harvest" in e.value.reasons[1]
    assert isinstance(e.value, ValueError)
    assert pickle.loads(pickle.dumps(e.value)).reasons == e.value.reasons


def test_base_voice_is_the_closest(engine):
    """A prompt from flite:slt, lightly changed, is cloned on flite:slt, chosen by speaker embedding."""
    prompt = engine.render(PROMPT, "en", Voicing(f0_shift_st=1, warp=1.03), "flite:slt")
    _, _, info = engine.clone(prompt, PROMPT, TEXT, "en")
    assert info["base_voice"] == "flite:slt"
    assert "speaker embedding" in info["choice"]
    assert max(info["similarity"], key=info["similarity"].get) == "flite:slt"


def test_a_rejected_voicing_is_a_reject_with_its_reason():
    class Cloning(Stage):
        name = "clone_pair"

        def process(self, row):
            raise VoicingRejected("a prompt", ["piper:joe (dio, warp grid 0.70-1.45): f0 shift +19.0 st beyond +-15"])
    row = Cloning().process_rows([{"key": "k", "meta": {}, "members": {}}])[0]
    assert row["reject"]["reason"] == "voicing_rejected"
    assert "f0 shift +19.0 st" in row["reject"]["detail"]


def test_a_pair_is_cloned_on_one_base_voice(tmp_path):
    """With no base voice in the row, both clones of a pair use the one chosen on the neutral prompt."""
    import soundfile as sf
    from stages.clone_pair import ClonePair

    class Backend:
        calls = []

        def choose_base_voice(self, prompt, prompt_text, language):
            return "flite:slt" if prompt_text == "neutral" else "piper:joe"

        def clone(self, prompt, prompt_text, text, language, instruction, base_voice, seed):
            self.calls.append(base_voice)
            return np.full(16000, 0.1, np.float32)
    path = str(tmp_path / "p.wav")
    sf.write(path, np.full(16000, 0.1, np.float32), 16000)
    stage = ClonePair(sample_rate=16000)
    stage.sr, stage.backend, stage._prompts = 16000, Backend(), {}
    meta = {"prompt_src": {"path": path, "text": "neutral"}, "prompt_tgt": {"path": path, "text": "angry"},
            "instruction": "angry", "text": "hi", "language": "en", "seed": 0}
    row = stage.process_rows([{"key": "k", "meta": meta, "members": {}}])[0]
    assert row.get("reject") is None and Backend.calls == ["flite:slt", "flite:slt"]
