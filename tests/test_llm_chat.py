"""The chat format, token by token, its loss mask, and the vocab's bad-input errors."""
import numpy as np
import pytest

from editor.llm import chat
from editor.llm.prompts import CLONE_SYSTEM, EDIT_SYSTEM
from editor.llm.vocab import AUDIO_SIZE, SPECIALS, load_vocab

V = load_vocab()
PROMPT_AUDIO = np.array([0, 1023, 1024, 5119, 7], dtype=np.int16)
SOURCE = np.array([3, 4, 1500, 1600, 1700], dtype=np.int64)
TARGET = np.array([10, 11, 2000, 2001, 5119, 0], dtype=np.int32)

CLONE = {"system": "clone", "instruction": None, "text": "图书馆每天早上八点开门。",
         "target_text": "[Sichuanese]今天天气好", "source_tokens": PROMPT_AUDIO, "target_tokens": TARGET,
         "speaker": {"name": "zh_f1", "prompt_text": "图书馆每天早上八点开门。"}}
EDIT = {"system": "edit", "text": "The library opens at eight.", "target_text": "The library opens at eight.",
        "instruction": "Make the following audio more happy. The text corresponding to the audio is: "
                       "The library opens at eight.",
        "source_tokens": SOURCE, "target_tokens": TARGET}


def test_layout():
    T = V.text_size
    assert V.audio_offset == T and V.special_offset == T + AUDIO_SIZE
    assert [V.bos, V.eos, V.pad] == [T + 5120, T + 5121, T + 5122]
    assert V.size % 64 == 0 and V.size >= T + AUDIO_SIZE + len(SPECIALS)
    assert V.audio_to_ids(np.array([0, 5119])).tolist() == [T, T + 5119]
    assert V.ids_to_audio([T, T + 5119]).tolist() == [0, 5119]
    assert V.version.startswith("llm-vocab-v1:")


def test_clone_sequence_token_by_token():
    T, ex = V.text_size, chat.build_example(CLONE, V)
    system_text = V.encode_text(CLONE_SYSTEM.format(name="zh_f1", prompt_text="图书馆每天早上八点开门。"))
    human_text = V.encode_text("[Sichuanese]今天天气好")
    expected = ([V.bos, V.system] + system_text
                + [V.audio_start, T + 0, T + 1023, T + 1024, T + 5119, T + 7, V.audio_end, V.turn_end]
                + [V.human] + human_text + [V.turn_end]
                + [V.assistant, T + 10, T + 11, T + 2000, T + 2001, T + 5119, T + 0, V.eos])
    assert ex["input_ids"].tolist() == expected
    assert ex["input_ids"].dtype == np.int32 and ex["labels"].dtype == np.int32
    assert V.decode_text(human_text) == "[Sichuanese]今天天气好"  # the dialect tag passes through as text
    answer = len(expected) - 7
    assert ex["labels"].tolist() == [-100] * answer + expected[answer:]
    assert chat.build_prompt(CLONE, V).tolist() == expected[:answer]


def test_edit_sequence_token_by_token():
    T, ex = V.text_size, chat.build_example(EDIT, V)
    expected = ([V.bos, V.system] + V.encode_text(EDIT_SYSTEM) + [V.turn_end]
                + [V.human] + V.encode_text(EDIT["instruction"])
                + [V.audio_start, T + 3, T + 4, T + 1500, T + 1600, T + 1700, V.audio_end, V.turn_end]
                + [V.assistant, T + 10, T + 11, T + 2000, T + 2001, T + 5119, T + 0, V.eos])
    assert ex["input_ids"].tolist() == expected
    labelled = np.flatnonzero(ex["labels"] != -100)
    assert labelled.tolist() == list(range(len(expected) - 7, len(expected)))
    assert ex["labels"][labelled].tolist() == expected[-7:]
    assert V.is_audio(ex["input_ids"][labelled[:-1]]).all() and ex["labels"][-1] == V.eos


def test_iterative_edit_feeds_the_previous_output_as_source():
    previous = np.array([42, 43, 3000])
    again = chat.build_edit_again(EDIT, previous, V)
    assert again.tolist() == chat.build_prompt({**EDIT, "source_tokens": previous}, V).tolist()
    new = chat.build_edit_again(EDIT, previous, V, instruction="Make the following audio more sad.")
    sad = V.encode_text("Make the following audio more sad.")
    h = new.tolist().index(V.human)
    assert new[h + 1:h + 1 + len(sad)].tolist() == sad and new[h + 1 + len(sad)] == V.audio_start
    with pytest.raises(ValueError, match="'clone'"):
        chat.build_edit_again(CLONE, previous, V)


@pytest.mark.parametrize("bad", [5120, -1, 99999])
def test_audio_id_out_of_range_names_the_value(bad):
    with pytest.raises(ValueError, match=f"audio id {bad} out of range"):
        chat.build_example({**EDIT, "target_tokens": np.array([1, bad, 2])}, V)


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="unknown system kind 'tts'"):
        chat.build_example({**EDIT, "system": "tts"}, V)
    with pytest.raises(ValueError, match=f"id {V.bos} is not an audio id"):
        V.ids_to_audio([V.audio_offset, V.bos])
    with pytest.raises(ValueError, match="instruction"):
        chat.build_example({**EDIT, "instruction": None}, V)
    with pytest.raises(ValueError, match="speaker"):
        chat.build_example({**CLONE, "speaker": None}, V)
    with pytest.raises(ValueError, match="1-D integer"):
        V.audio_to_ids(np.array([1.5, 2.0]))


def test_text_ids_are_cached_per_string_and_handed_out_as_copies(monkeypatch):
    """The vocab tokenizes each distinct string once (a server's prompts repeat their system prompt and
    negative instruction); a caller changing the ids it got does not change what the next caller gets,
    and a full cache starts over instead of growing."""
    from editor.llm import vocab as vocab_mod
    v = vocab_mod.load_vocab()
    calls = []
    real = v.text.encode
    monkeypatch.setattr(v.text, "encode", lambda t, **kw: calls.append(t) or real(t, **kw))
    first = v.encode_text(EDIT_SYSTEM)
    assert first == real(EDIT_SYSTEM, add_special_tokens=False)
    first.append(-1)
    assert v.encode_text(EDIT_SYSTEM) == real(EDIT_SYSTEM, add_special_tokens=False) and calls == [EDIT_SYSTEM]
    monkeypatch.setattr(vocab_mod, "TEXT_CACHE", 2)
    for t in ("a", "b", "c"):
        v.encode_text(t)
    assert len(v._text_ids) <= 2 and v.encode_text("c") == real("c", add_special_tokens=False)

