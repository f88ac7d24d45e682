"""splits.held_out_engines: every voice of a held-out engine is a test speaker, so no model trains on that
engine and its voices stay an unseen-engine test; the texts still never cross splits."""
import json

import pytest
from omegaconf import OmegaConf

from conftest import make_cfg
from core import splits
from tts.voice_bank import generated_speakers

ENGINES_EN = ["piper:joe", "flite:kal", "flite:awb", "flite:rms", "flite:slt", "festival:kal_diphone",
              "festival:ked_diphone", "festival:cmu_us_slt_arctic_hts"]


def _cfg(**over):
    return OmegaConf.create({"enabled": True, "by": ["speaker", "text"], "salt": 0,
                             "fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}, **over})


def _speakers():
    return generated_speakers(["en"], 40, base_voices={"en": ENGINES_EN})


def test_held_out_engine_voices_are_all_test_speakers():
    spk = _speakers()
    festival = [s for s in spk if s.base_voice.startswith("festival:")]
    assert len(festival) >= 3
    plain, held = _cfg(), _cfg(held_out_engines=["festival"])
    assert {splits.speaker_split(s.id, plain, s.base_voice) for s in festival} != {"test"}  # the hash alone
    assert {splits.speaker_split(s.id, held, s.base_voice) for s in festival} == {"test"}
    for s in spk:                                                     # every other voice keeps its split
        if not s.base_voice.startswith("festival:"):
            assert splits.speaker_split(s.id, held, s.base_voice) == splits.speaker_split(s.id, plain, s.base_voice)


def test_texts_never_cross_splits_with_a_held_out_engine():
    spk, cfg = _speakers(), _cfg(held_out_engines=["festival"])
    sentences = [f"Sentence number {i}." for i in range(60)]
    by_split: dict[str, set[str]] = {}
    for s in spk:
        block = splits.texts_for(sentences, s, spk, cfg)
        assert block, s.id
        by_split.setdefault(splits.speaker_split(s.id, cfg, s.base_voice), set()).update(block)
    assert set(by_split) == {"train", "validation", "test"}
    names = list(by_split)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not by_split[a] & by_split[b], (a, b)


def test_no_held_out_engine_leaves_sample_keys_as_they_were():
    # the key of every planned sample hashes splits.identity: without held-out engines, the setting of before
    assert splits.identity(_cfg(held_out_engines=[])) == {"enabled": True, "by": ["speaker", "text"], "salt": 0,
                                                         "fractions": {"train": 0.8, "validation": 0.1, "test": 0.1}}
    assert splits.identity(_cfg(held_out_engines=["flite", "festival"]))["held_out_engines"] == \
        splits.identity(_cfg(held_out_engines=["festival", "flite"]))["held_out_engines"] == ["festival", "flite"]


@pytest.mark.parametrize("over, message", [
    ({"held_out_engines": ["festivall"]}, r"unknown engine\(s\) \['festivall'\]; engines are piper, espeak"),
    ({"held_out_engines": ["flite"], "fractions": {"train": 0.9, "validation": 0.1}},
     r"splits.held_out_engines=\['flite'\] puts their voices in the test split, but splits.fractions has none"),
])
def test_bad_settings_are_named(over, message):
    with pytest.raises(ValueError, match=message):
        splits.speaker_split("en_f1", _cfg(**over), "flite:kal")
    with pytest.raises(ValueError, match=message):   # what every planned pipeline hashes: checked with splits off too
        splits.identity(_cfg(**over, enabled=False))


def test_a_factory_plan_puts_the_held_out_engine_in_test(tmp_path):
    from pipelines import triplets
    from tts.voice_bank import make_voice_bank
    cfg = make_cfg(["voice_bank=generated_engines", "languages=[en]", "emotions=[happy]", "texts_per_tag=2",
                    "splits.held_out_engines=[flite]", f"cache_dir={tmp_path}", "margin.enabled=false"])
    bank = make_voice_bank(cfg.voice_bank, ["en"], cfg.sample_rate, cfg.seed)
    rows, rejects = triplets.plan(cfg, "emotion", bank, ["happy"], ["en"])
    voice = {s.id: s.base_voice for s in bank.speakers}
    metas = [r["meta"] for r in rows] + [json.loads(r["meta"]) for r in rejects]
    flite = [m for m in metas if voice[m["speaker"]].startswith("flite:")]
    assert flite and all(m["split"] == "test" for m in flite)
    assert {m["split"] for m in metas} == {"train", "validation", "test"}
