"""One example -> the token sequence the LLM trains on, and the prompt it generates from.

Upstream Step-Audio-EditX's chat: a system turn, a human turn, an assistant turn that is audio.
    clone: system = clone prompt + speaker block (name, prompt text, prompt audio)
           human  = the text to speak (a "[Sichuanese]"/"[Cantonese]" prefix is just text)
    edit:  system = the one edit prompt
           human  = the instruction, then the source audio
    assistant = the target audio, then <|eos|>

Our layout, one line per turn (T(x) = text ids, A(x) = audio ids between brackets when in a prompt):
    <|bos|> <|system|> T(system) [<|audio_start|> A(prompt audio) <|audio_end|>] <|turn_end|>
    <|human|> T(text or instruction) [<|audio_start|> A(source) <|audio_end|>] <|turn_end|>
    <|assistant|> A(target) <|eos|>
A model trained with pronunciations (Vocab.pronunciation_scheme, editor/llm/pronounce.py) also gets, as text, the
pronunciation of the prompt audio's text after the system prompt (clone) and of the target text after
the human turn's text (clone) or an instruction that quotes it (emotion, style, speed, paralinguistic).
The assistant's audio has no brackets: generation starts right after <|assistant|> and <|eos|>
ends it. Loss is on the assistant's audio and <|eos|> only: the prompt is given, not predicted.
Labels are aligned with input_ids (the model shifts them), so the first label is always -100;
packing relies on that (no loss across an example boundary).
"""
import numpy as np

from editor.llm.prompts import CLONE_SYSTEM, EDIT_SYSTEM
from editor.llm.vocab import Vocab

IGNORE = -100
SYSTEMS = ("clone", "edit")


PRONUNCIATION_LEAD = "\nPronunciation: "


def _pronounced(text, v: Vocab, instruction: str | None = None) -> list:
    """Text ids of `text`'s pronunciation when the model has one. An edit's instruction must quote the
    text: denoise and silence-trim instructions do not, and their transcript is optional at inference,
    so they never carry one, in training or after."""
    if not v.pronunciation_scheme or not text or not str(text).strip():
        return []
    if instruction is not None and str(text) not in instruction:
        return []
    from editor.llm.pronounce import pronounce
    return v.encode_text(PRONUNCIATION_LEAD + pronounce(str(text)))


def _system_and_human(ex: dict, v: Vocab) -> list:
    """Everything before the assistant header, as a list of id pieces."""
    kind = ex.get("system")
    if kind not in SYSTEMS:
        raise ValueError(f"unknown system kind {kind!r}; known: {', '.join(SYSTEMS)}")
    audio = [v.audio_start, *v.audio_to_ids(ex["source_tokens"]).tolist(), v.audio_end]
    if kind == "clone":
        spk = ex.get("speaker") or {}
        if "name" not in spk or "prompt_text" not in spk:
            raise ValueError(f"clone example needs speaker={{'name', 'prompt_text'}}, got {spk!r}")
        system = (v.encode_text(CLONE_SYSTEM.format(name=spk["name"], prompt_text=spk["prompt_text"]))
                  + _pronounced(spk["prompt_text"], v) + audio)
        human = v.encode_text(ex["target_text"]) + _pronounced(ex["target_text"], v)
    else:
        if not ex.get("instruction"):
            raise ValueError(f"edit example needs an instruction, got {ex.get('instruction')!r}")
        system = v.encode_text(EDIT_SYSTEM)
        human = v.encode_text(ex["instruction"]) + _pronounced(ex.get("target_text"), v, ex["instruction"]) + audio
    return [v.bos, v.system, *system, v.turn_end, v.human, *human, v.turn_end]


def build_prompt(ex: dict, v: Vocab) -> np.ndarray:
    """The generation prompt: everything up to and including <|assistant|> (target_tokens unused)."""
    return np.asarray(_system_and_human(ex, v) + [v.assistant], dtype=np.int32)


def build_example(ex: dict, v: Vocab) -> dict:
    """Training sequence: {"input_ids", "labels"} int32 arrays of equal length."""
    prompt = build_prompt(ex, v)
    answer = np.append(v.audio_to_ids(ex["target_tokens"]), np.int32(v.eos)).astype(np.int32)
    if answer.size == 1:
        raise ValueError("target_tokens is empty: nothing to learn")
    return {"input_ids": np.concatenate([prompt, answer]),
            "labels": np.concatenate([np.full(prompt.size, IGNORE, np.int32), answer])}


def build_edit_again(ex: dict, previous_tokens, v: Vocab, instruction: str | None = None) -> np.ndarray:
    """Iterative editing (upstream's n_edit_iter): the previous output becomes the new source audio.

    The instruction stays the same unless given (a paralinguistic edit's text has changed after the
    first round, so its caller builds the new instruction)."""
    if ex.get("system") != "edit":
        raise ValueError(f"iterative editing needs an edit example, got system {ex.get('system')!r}")
    again = {**ex, "source_tokens": previous_tokens}
    if instruction is not None:
        again["instruction"] = instruction
    return build_prompt(again, v)
