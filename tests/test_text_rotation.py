"""texts.rotate_per_speaker: each speaker of an emotion or style run starts at its own place in its split's
texts, so a tag's pairs span many texts at the same cost; the texts still never cross splits, and with the
setting off every planned sample is the one of before."""
import json
from pathlib import Path

from conftest import make_cfg

ROOT = Path(__file__).resolve().parent.parent


def _plan(tmp_path, *over):
    from pipelines import triplets
    from tts.voice_bank import make_voice_bank
    cfg = make_cfg(["languages=[en]", "emotions=[happy]", "texts_per_tag=3", "voice_bank.per_language=12",
                    f"texts.extra_dir={ROOT / 'data' / 'tag_texts'}", f"cache_dir={tmp_path}",
                    "margin.enabled=false", *over])
    bank = make_voice_bank(cfg.voice_bank, ["en"], cfg.sample_rate, cfg.seed)
    rows, rejects = triplets.plan(cfg, "emotion", bank, ["happy"], ["en"])
    metas = [(r["key"], r["meta"]) for r in rows] + [(r["key"], json.loads(r["meta"])) for r in rejects]
    return {k: (m["speaker"], m["split"], m["text"]) for k, m in metas}


def test_rotation_spreads_the_texts_inside_each_split(tmp_path):
    plain, rotated = _plan(tmp_path), _plan(tmp_path, "texts.rotate_per_speaker=true")
    assert len(plain) == len(rotated) > 0                        # the same number of pairs: the same cost
    texts_of = lambda plan, split: {t for _, s, t in plan.values() if s == split}
    assert len(texts_of(plain, "train")) == 3                   # every train speaker: the block's first three
    assert len(texts_of(rotated, "train")) > 6                  # rotated: the pairs span the block
    for a in ("train", "validation", "test"):                   # texts never cross splits
        for b in ("train", "validation", "test"):
            if a < b:
                assert not (texts_of(rotated, a) | texts_of(plain, a)) & (texts_of(rotated, b) | texts_of(plain, b))
    per_speaker = {}
    for spk, _, t in rotated.values():
        per_speaker.setdefault(spk, []).append(t)
    assert all(len(set(ts)) == len(ts) for ts in per_speaker.values())     # no speaker says a text twice


def test_rotation_off_plans_the_samples_of_before(tmp_path):
    # off and with the shipped sentences alone (one list), every speaker speaks the first texts_per_tag of
    # its split's block as splits.texts_for cut it before lists were split apart, so sample keys (which hash
    # the text, speaker and stages, not the config) are those of earlier runs
    from core import splits
    from tts import texts
    from tts.voice_bank import make_voice_bank
    plan = _plan(tmp_path, "texts.extra_dir=null")
    cfg = make_cfg(["languages=[en]", "voice_bank.per_language=12"])
    bank = make_voice_bank(cfg.voice_bank, ["en"], cfg.sample_rate, cfg.seed)
    shipped = texts.corpus("en")["happy"]["sentences"]
    for spk in bank.speakers:
        said = [t for s, _, t in plan.values() if s == spk.id]
        assert sorted(said) == sorted(splits.texts_for(shipped, spk, bank.speakers, cfg.splits)[:3]), spk.id


def test_a_later_generation_keeps_every_earlier_text_and_adds_its_own(tmp_path):
    # a pool grown by texts.later_dirs: the samples planned before are planned again (same keys, so a
    # factory rerun reuses them), and texts_per_tag past the first generation's end says the new texts
    import pytest

    from tts.sentence_maker import tag_sentences
    later = tmp_path / "later"
    (later / "en").mkdir(parents=True)
    new = tag_sentences("en", ["happy"], 40, skip=2220)["happy"]
    repeated = (ROOT / "data" / "tag_texts" / "en" / "happy.txt").read_text().split("\n")[0]
    (later / "en" / "happy.txt").write_text("\n".join(new + [repeated]) + "\n")
    grown = f"texts.later_dirs=[{later}]"
    assert _plan(tmp_path, "texts.rotate_per_speaker=true") == _plan(tmp_path, "texts.rotate_per_speaker=true", grown)
    before = _plan(tmp_path, "texts.rotate_per_speaker=true", "texts_per_tag=200")
    after = _plan(tmp_path, "texts.rotate_per_speaker=true", "texts_per_tag=200", grown)
    assert before.items() <= after.items()                     # every earlier sample, unchanged
    added = {v for k, v in after.items() if k not in before}
    assert {t for _, _, t in added} == set(new)                # every new text said, only new texts
    texts_of = lambda split: {t for _, s, t in after.values() if s == split}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not texts_of(a) & texts_of(b)                   # the new list is split on its own
    assert _plan(tmp_path, "texts.rotate_per_speaker=true", "texts_per_tag=200", f"texts.later_dirs={later}") == after
    with pytest.raises(ValueError, match="texts.later_dirs: .*nowhere"):
        _plan(tmp_path, f"texts.later_dirs=[{tmp_path / 'nowhere'}]")
