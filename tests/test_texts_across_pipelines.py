"""No text crosses splits across pipelines: a sentence of an emotion pair's test split is never spoken by a
training speaker of the speed, denoise, trim or paralinguistic data of the same bank (the audio LLM trains
on all of them at once), with or without extra sentence files. Each sentence list is split on its own
(core.splits.texts_of_split); before, the pooled pipelines split the pool of every tag's sentences as one
list, and 33 of the 136 test-split texts of the LLM's data (outputs_v4) were some task's training texts."""
import json
from pathlib import Path

import pytest

from conftest import make_cfg
from core import splits

ROOT = Path(__file__).resolve().parent.parent
TAGS = ["happy", "sad", "whisper", "child"]


@pytest.mark.parametrize("tag_dir", [None, "tag_texts"])
def test_test_texts_of_one_pipeline_are_no_training_texts_of_another(tmp_path, tag_dir):
    from pipelines import augment, paralinguistic_quadruplets, triplets
    from tts.voice_bank import make_voice_bank
    common = ["languages=[en,zh]", "voice_bank.per_language=18", f"cache_dir={tmp_path}", "margin.enabled=false"]
    emo = make_cfg([*common, "texts_per_tag=8", "texts.rotate_per_speaker=true",
                    *([f"texts.extra_dir={ROOT / 'data' / tag_dir}"] if tag_dir else [])])
    src = make_cfg([*common, "source.texts_per_speaker=40", f"texts.extra_dir={ROOT / 'data' / 'extra_texts'}"])
    nv = make_cfg([*common, "pipeline=paralinguistic_quadruplets", "texts_per_tag=6"])
    bank = make_voice_bank(emo.voice_bank, ["en", "zh"], emo.sample_rate, emo.seed)
    said = {}                                        # (pipeline, split) -> texts

    def add(pipeline, speaker, text):
        split = splits.speaker_split(speaker, emo.splits, {s.id: s.base_voice for s in bank.speakers}[speaker])
        said.setdefault((pipeline, split), set()).add(text)

    for kind, tags in (("emotion", TAGS[:2]), ("style", TAGS[2:])):
        rows, rejects = triplets.plan(emo, kind, bank, tags, ["en", "zh"])   # unrendered bank: rejects
        for m in [r["meta"] for r in rows] + [json.loads(r["meta"]) for r in rejects]:
            add(kind, m["speaker"], m["text"])
    for s in augment.generated_sources(src, bank):
        add("speed", s["speaker"], s["text"])
    for u in paralinguistic_quadruplets.generated_utterances(nv, bank, ["Laughter", "Breathing"], bank.speakers):
        add("paralinguistic", u["speaker"], u["text"])
    pipelines = {p for p, _ in said}
    assert pipelines == {"emotion", "style", "speed", "paralinguistic"}
    assert all((p, sp) in said for p in pipelines for sp in ("train", "test"))
    train = set().union(*(said[(p, "train")] for p in pipelines))
    for p in pipelines:
        for held in ("validation", "test"):
            assert not said.get((p, held), set()) & train, (p, held, sorted(said[(p, held)] & train)[:3])


def test_a_sentence_is_in_one_list_once(tmp_path):
    # lists are split by position: a line repeated in its file, or one of the shipped sentences again, could
    # otherwise be spoken in two splits; each is kept once, where it first is
    from tts import texts
    shipped = texts.corpus("en")["sad"]["sentences"]
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "happy.txt").write_text(f"A new one.\n{shipped[3]}\nAnother.\nA new one.\n")
    lists = texts.sentence_lists("en", "happy", str(tmp_path))
    assert lists[-1] == ["A new one.", "Another."]
    assert texts.sentence_lists("en", "happy", str(tmp_path), shipped=False) == \
        [["A new one.", shipped[3], "Another."]]                   # a run of its own texts keeps them


def test_tag_files_need_the_neutral_files_length(tmp_path):
    from tts import sentence_maker
    with pytest.raises(SystemExit, match="--tags needs --skip"):
        sentence_maker.main(["--out", str(tmp_path), "--tags", "happy"])
