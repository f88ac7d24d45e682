"""Pronunciations in the LLM's prompts (editor/llm/pronounce.py): what they say, the shipped dictionary,
where a prompt carries them, and that only a model trained with them gets them."""
import gzip
import json
import types
from pathlib import Path

import numpy as np
import pytest

from editor.llm import chat
from editor.llm.pronounce import DEFAULT_DIR, PRONUNCIATION_SCHEME, build, pronounce
from editor.llm.prompts import CLONE_SYSTEM
from editor.llm.vocab import load_vocab

ROOT = Path(__file__).resolve().parent.parent
PLAIN, SPOKEN = load_vocab(), load_vocab(pronunciation_scheme=PRONUNCIATION_SCHEME)
AUDIO = np.array([5, 6, 7, 8, 9])
CLONE = {"system": "clone", "source_tokens": AUDIO, "target_tokens": AUDIO[:3], "target_text": "你好 world",
         "speaker": {"name": "s", "prompt_text": "Hello there."}}
EDIT = {"system": "edit", "instruction": "Make the following audio more happy. The text corresponding to the audio "
        "is: Hello there.", "source_tokens": AUDIO, "target_tokens": AUDIO[:3], "target_text": "Hello there."}


def test_pronunciation_of_words_syllables_tags_and_unknown_words():
    assert pronounce("Hello, world!") == "hh ah l ow/ w er l d/"            # CMU phones, stress dropped
    assert pronounce("新来的护士") == "x in1 l ai2 d e5 h u4 sh i4"          # initial, toned final; neutral tone 5
    assert pronounce("我要去银行") == "uo3 iao4 q v4 in2 h ang2"              # no initial; a phrase's reading (hang2)
    assert pronounce("I [Laughter] can't, 好") == "ay/ [Laughter] k ae n t/ h ao3"  # tags stay where they are
    assert pronounce("The zyzzyvaq café") == "dh ah/ zyzzyvaq/ café/"        # not in the dictionary: as written
    assert pronounce("...") == "" and pronounce("don\u2019t") == pronounce("don't") == "d ow n t/"
    # each phone or syllable is its own pre-token: "the" is the same text ids wherever it stands
    the = PLAIN.encode_text(" dh ah/")
    for text in ("The bridge.", "Over the bridge.", "我在 the bridge"):
        seq = PLAIN.encode_text(chat.PRONUNCIATION_LEAD + pronounce(text))
        assert any(seq[i:i + len(the)] == the for i in range(len(seq))), text


def test_the_shipped_dictionary_is_the_build_of_pocketsphinxs(tmp_path):
    import pocketsphinx
    meta = build(Path(pocketsphinx.__file__).parent / "model" / "en-us" / "cmudict-en-us.dict", tmp_path)
    assert (tmp_path / "cmudict.txt.gz").read_bytes() == (DEFAULT_DIR / "cmudict.txt.gz").read_bytes()
    shipped = json.loads((DEFAULT_DIR / "meta.json").read_text())
    assert {**shipped, "command": None} == {**meta, "command": None} and meta["words"] > 100000
    lines = gzip.open(DEFAULT_DIR / "cmudict.txt.gz", "rt").read().splitlines()
    assert "hello\thh ah l ow" in lines and not any("(" in l.split("\t")[0] for l in lines)


def _contains(seq: list, sub: list) -> bool:
    return any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def _insert(seq: list, after: list, extra: list) -> list:
    """seq with `extra` inserted right after the first occurrence of the sub-list `after`."""
    for i in range(len(seq) - len(after) + 1):
        if seq[i:i + len(after)] == after:
            return seq[:i + len(after)] + extra + seq[i + len(after):]
    raise AssertionError("sub-sequence not found")


def test_prompts_carry_pronunciations_only_for_a_model_trained_with_them():
    spoken = lambda text: PLAIN.encode_text(chat.PRONUNCIATION_LEAD + pronounce(text))
    for ex, places in ((CLONE, [(CLONE_SYSTEM.format(name="s", prompt_text="Hello there."), "Hello there."),
                                ("你好 world", "你好 world")]),
                       (EDIT, [(EDIT["instruction"], "Hello there.")])):
        plain, with_p = chat.build_example(ex, PLAIN), chat.build_example(ex, SPOKEN)
        expected = plain["input_ids"].tolist()
        for text, said in places:
            expected = _insert(expected, PLAIN.encode_text(text), spoken(said))
        assert with_p["input_ids"].tolist() == expected
        # the loss stays on the answer: the same labels, now after a longer prompt
        n = len(expected) - len(plain["input_ids"])
        assert with_p["labels"].tolist() == [-100] * n + plain["labels"].tolist()
    # an edit without a transcript has nothing to pronounce; one whose instruction does not quote its text
    # (denoise, silence trim: the transcript is optional at inference) gets none, in training too
    for bare in ({**EDIT, "target_text": ""}, {**EDIT, "instruction": "Remove any noise from the given audio."}):
        assert chat.build_prompt(bare, SPOKEN).tolist() == chat.build_prompt(bare, PLAIN).tolist()
    # the pronunciation is of the answer's text (target_text), not of the source's (text)
    tagged = {**EDIT, "text": "Hello there.", "target_text": "Hello [Laughter] there.",
              "instruction": "Add some non-verbal sounds, the new text is : Hello [Laughter] there.\n"
                             "  The text corresponding to the audio is: Hello there."}
    assert _contains(chat.build_prompt(tagged, SPOKEN).tolist(),
                     PLAIN.encode_text(chat.PRONUNCIATION_LEAD + "hh ah l ow/ [Laughter] dh eh r/"))


def test_the_editor_pronounces_what_the_answer_says():
    from editor.llm.editor import Editor
    ed = types.SimpleNamespace(vocab=SPOKEN)
    p = Editor._edit_prompt(ed, "emotion", "happy", "Hello there.", AUDIO).tolist()
    assert _contains(p, PLAIN.encode_text(chat.PRONUNCIATION_LEAD + "hh ah l ow/ dh eh r/"))
    # a paralinguistic edit's answer says the tagged text (its edit_info)
    tagged = Editor._edit_prompt(ed, "paralinguistic", "Hello [Laughter] there.", "Hello there.", AUDIO).tolist()
    assert _contains(tagged, PLAIN.encode_text(chat.PRONUNCIATION_LEAD + "hh ah l ow/ [Laughter] dh eh r/"))
    ed = types.SimpleNamespace(vocab=PLAIN)      # the shipped model: its prompts as before
    assert "Pronunciation" not in PLAIN.decode_text(Editor._edit_prompt(ed, "emotion", "happy", "Hello there.", AUDIO))
    assert "pronunciation_scheme" not in json.loads((ROOT / "editor/artifacts/editor-llm-v12/llm_vocab.json").read_text())


def test_a_model_trained_with_pronunciations_keeps_and_checks_the_scheme(tmp_path):
    from editor.llm.model import build_model, load, load_preset, save
    model = build_model(load_preset("tiny"), SPOKEN)
    save(model, SPOKEN, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "llm_vocab.json").read_text())
    assert meta["pronunciation_scheme"] == PRONUNCIATION_SCHEME
    assert load(tmp_path / "m")[1].pronunciation_scheme == PRONUNCIATION_SCHEME
    (tmp_path / "m" / "llm_vocab.json").write_text(json.dumps({**meta, "pronunciation_scheme": "pronunciation-v0"}))
    with pytest.raises(ValueError, match="trained with pronunciations 'pronunciation-v0', this code writes"):
        load(tmp_path / "m")
