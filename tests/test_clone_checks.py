"""The clone's voicing estimate checks itself: re-estimated or rejected with a reason, never silently used;
with no base voice given, the closest voice by speaker embedding."""
import pickle

import numpy as np
import pytest
import soundfile as sf

from stages.base import Stage
from tts.engine import LocalEngine
from tts.profile import WARP_GRID, WIDE_WARP_GRID, clone_voicing, profile
from tts.voice_bank import GeneratedVoiceBank
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


def test_a_large_shift_to_a_plausible_voice_is_used(engine):
    """A high voice (flite:slt 10 semitones up, ~300 Hz) on a low base voice (flite:kal, ~90 Hz): a shift
    of ~22 st, which the old fixed +-15 st bound rejected, to an F0 a voice can have. Used as estimated."""
    prompt = engine.render(PROMPT, "en", Voicing(f0_shift_st=10), "flite:slt")
    _, v, info = engine.clone(prompt, PROMPT, TEXT, "en", base_voice="flite:kal")
    assert [t["failed"] for t in info["tries"]] == [[]]
    assert 18 < v.f0_shift_st < 24


def test_the_factorys_child_style_prompt_is_accepted(engine, tmp_path):
    """The voice bank's own child-style clip of en_f1 (female timbre on the male piper:joe, plus the child
    preset): ~+17.8 st, ~470 Hz, a child's F0. It passes the F0 check on its first estimate."""
    bank = GeneratedVoiceBank(str(tmp_path), 16000, ["en"])
    job = bank.job(next(s for s in bank.speakers if s.id == "en_f1"), "child")
    GeneratedVoiceBank.render(engine, job)
    prompt, _ = sf.read(job["path"], dtype="float32")
    _, v, info = engine.clone(prompt, job["text"], TEXT, "en", base_voice=job["base_voice"])
    assert not [f for t in info["tries"] for f in t["failed"] if f.startswith("f0")]
    assert info["tries"][0]["f0"] == "dio" and info["tries"][-1]["failed"] == []
    assert v.f0_shift_st > 15 and not v.whisper


def test_an_implausible_f0_is_rejected_with_its_reason(engine):
    """flite:slt 22 semitones up (~620 Hz, above any speaking voice) is no voice to clone."""
    prompt = engine.render(PROMPT, "en", Voicing(f0_shift_st=22), "flite:slt")
    with pytest.raises(VoicingRejected, match=r"f0 median \d+ Hz in the prompt above the plausible 600") as e:
        engine.clone(prompt, PROMPT, TEXT, "en", base_voice="flite:slt")
    # dio first, then harvest: both tries are named
    assert len(e.value.reasons) == 2 and "(harvest" in e.value.reasons[1]
    assert isinstance(e.value, ValueError)
    assert pickle.loads(pickle.dumps(e.value)).reasons == e.value.reasons


def test_a_shift_beyond_the_renderers_clip_is_rejected(engine):
    """flite:slt 19 semitones up (~500 Hz, a plausible child) on flite:kal (~90 Hz) is ~31 st, more than
    the renderer applies: the clone would miss the prompt's pitch by 7 st."""
    prompt = engine.render(PROMPT, "en", Voicing(f0_shift_st=19), "flite:slt")
    with pytest.raises(VoicingRejected, match=r"f0 shift \+\d+\.\d st from this base beyond the renderer's \+-24"):
        engine.clone(prompt, PROMPT, TEXT, "en", base_voice="flite:kal")


def test_an_octave_error_is_re_estimated_with_harvest(engine, monkeypatch):
    """dio doubling the prompt's F0 (simulated: +12 st on its dio profile) puts it above any voice; the
    estimate is made again with harvest, and harvest's is the one used."""
    prompt = engine.render(PROMPT, "en", Voicing(f0_shift_st=12), "flite:slt")
    _, truth, _ = engine.clone(prompt, PROMPT, TEXT, "en", base_voice="flite:slt")
    def doubled(x, sr, text, language, feat=None):
        p = profile(x, sr, text, language, feat)
        if feat is None and x is prompt:  # the dio pass on the prompt
            p["f0_median_st"] += 12
        return p
    monkeypatch.setattr("tts.engine.profile", doubled)
    engine._prompt_cache.clear()
    _, v, info = engine.clone(prompt, PROMPT, TEXT, "en", base_voice="flite:slt")
    first, last = info["tries"]
    assert first["f0"] == "dio" and "in the prompt above the plausible" in first["failed"][0]
    assert last["f0"] == "harvest" and last["failed"] == []
    assert abs(v.f0_shift_st - truth.f0_shift_st) < 1 and abs(first["f0_shift_st"] - 12 - last["f0_shift_st"]) < 1


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
            raise VoicingRejected("a prompt", ["piper:joe (dio, warp grid 0.70-1.45): f0 median 640 Hz in the prompt "
                                                "above the plausible 600"])
    row = Cloning().process_rows([{"key": "k", "meta": {}, "members": {}}])[0]
    assert row["reject"]["reason"] == "voicing_rejected"
    assert "f0 median 640 Hz in the prompt" in row["reject"]["detail"]


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


def test_a_prompt_clip_whose_voicing_is_rejected_does_not_stop_the_bank(tmp_path, monkeypatch, capsys):
    """The first run and a rerun make the same bank: a rendered clip whose voicing is rejected is kept (its
    clones become rejects with the reason), where it used to stop the first run only."""
    from conftest import RAW, make_cfg
    from pipelines.triplets import build_voice_bank
    from tts import texts
    sad = texts.prompt_text("en", "sad")

    def reject_sad(self, prompt, prompt_text, language, base_voice=None):
        if prompt_text == sad:
            raise VoicingRejected(prompt_text[:40], ["f0 median 640 Hz in the prompt above the plausible 600"])
        return Voicing(), 0.0
    monkeypatch.setattr(LocalEngine, "prompt_voicing", reject_sad)
    cfg = make_cfg(["languages=[en]", *RAW, "ray.enabled=false", f"cache_dir={tmp_path}/cache"])
    bank = GeneratedVoiceBank(str(tmp_path / "bank"), 16000, ["en"], per_language=1)
    assert len(bank.missing(["sad"])) == 2
    build_voice_bank(cfg, bank, ["sad"])
    assert bank.missing(["sad"]) == []
    out = capsys.readouterr().out
    assert f"{bank.speakers[0].id}/sad rendered, but its voicing is rejected" in out and "640 Hz" in out
    assert "neutral rendered, but" not in out
