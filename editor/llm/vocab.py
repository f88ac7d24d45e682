"""The LLM's joint id space: text ids, then the 5120 audio ids, then special tokens.

    [0, T)                 text tokenizer ids (T = text_size, >= the tokenizer's own size)
    [T, T + 5120)          audio ids, in the codec's interleaved order (DualCodebookTokenizer.interleave)
    [T + 5120, size)       special tokens: the named ones below, then reserved rows

Audio is one contiguous block so "is this an audio id" is one comparison and a generator can be
restricted to audio + end-of-audio by slicing logits. `size` is rounded up to a multiple of 64
(faster matmuls on the embedding/lm_head); the rows past the named specials are reserved.
`text_size` may exceed the tokenizer's length so a warm-start checkpoint whose embedding has
padding rows (init_from) keeps every one of its rows.
"""
import hashlib
from pathlib import Path

import numpy as np

AUDIO_SIZE = 5120            # 1024 linguistic + 4096 semantic ids, one joint codec vocabulary
ALIGN = 64
TEXT_CACHE = 4096            # distinct strings whose text ids a Vocab keeps
DEFAULT_TEXT_TOKENIZER = Path(__file__).resolve().parent.parent / "artifacts" / "text-tokenizer-v1"

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"       # EOS also ends the generated audio
SYSTEM, HUMAN, ASSISTANT, TURN_END = "<|system|>", "<|human|>", "<|assistant|>", "<|turn_end|>"
AUDIO_START, AUDIO_END = "<|audio_start|>", "<|audio_end|>"   # brackets audio inside a prompt
SPECIALS = (BOS, EOS, PAD, SYSTEM, HUMAN, ASSISTANT, TURN_END, AUDIO_START, AUDIO_END)


class Vocab:
    """Ids of one text tokenizer joined with the audio block and the specials."""

    def __init__(self, text_tokenizer, text_size: int | None = None, pronunciation_scheme: str | None = None):
        self.text = text_tokenizer
        # a server's prompts repeat most of their text (the system prompt, a guided edit's negative
        # instruction): each distinct string is tokenized once, up to TEXT_CACHE of them
        self._text_ids: dict[str, tuple[int, ...]] = {}
        # the pronunciation scheme the model's prompts carry (editor/llm/pronounce.py), None for none:
        # not part of the id layout, but of what a prompt must hold, so it is saved beside it
        self.pronunciation_scheme = pronunciation_scheme
        n = len(text_tokenizer)
        self.text_size = n if text_size is None else int(text_size)
        if self.text_size < n:
            raise ValueError(f"text_size={text_size} is smaller than the text tokenizer ({n} ids)")
        self.audio_offset = self.text_size
        self.special_offset = self.text_size + AUDIO_SIZE
        self.size = -(-(self.special_offset + len(SPECIALS)) // ALIGN) * ALIGN
        self.special = {name: self.special_offset + i for i, name in enumerate(SPECIALS)}
        (self.bos, self.eos, self.pad, self.system, self.human, self.assistant, self.turn_end,
         self.audio_start, self.audio_end) = (self.special[s] for s in SPECIALS)
        # The version names the layout and the exact text tokenizer: a checkpoint is only valid with it.
        digest = hashlib.sha256(text_tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:12]
        self.version = f"llm-vocab-v1:text{self.text_size}-{digest}:audio{AUDIO_SIZE}:special{len(SPECIALS)}:size{self.size}"

    def encode_text(self, text: str) -> list[int]:
        ids = self._text_ids.get(text)
        if ids is None:
            if len(self._text_ids) >= TEXT_CACHE:
                self._text_ids.clear()
            ids = self._text_ids[text] = tuple(self.text.encode(text, add_special_tokens=False))
        return list(ids)

    def decode_text(self, ids) -> str:
        return self.text.decode([int(i) for i in ids if int(i) < self.text_size])

    def audio_to_ids(self, tokens) -> np.ndarray:
        """Codec audio ids [0, 5120) -> LLM ids."""
        a = np.asarray(tokens)
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"audio tokens must be a 1-D integer array, got shape {a.shape} dtype {a.dtype}")
        bad = a[(a < 0) | (a >= AUDIO_SIZE)]
        if bad.size:
            raise ValueError(f"audio id {int(bad[0])} out of range [0, {AUDIO_SIZE}) ({bad.size} bad ids)")
        return a.astype(np.int32) + self.audio_offset

    def ids_to_audio(self, ids) -> np.ndarray:
        """LLM ids (audio block only) -> codec audio ids; strip EOS and anything after it first."""
        a = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = a[(a < self.audio_offset) | (a >= self.special_offset)]
        if bad.size:
            raise ValueError(f"id {int(bad[0])} is not an audio id (audio ids are "
                             f"[{self.audio_offset}, {self.special_offset})); {bad.size} such ids")
        return (a - self.audio_offset).astype(np.int32)

    def is_audio(self, ids) -> np.ndarray:
        a = np.asarray(ids)
        return (a >= self.audio_offset) & (a < self.special_offset)


def load_vocab(text_tokenizer=DEFAULT_TEXT_TOKENIZER, text_size: int | None = None,
               pronunciation_scheme: str | None = None) -> Vocab:
    """The joint vocabulary over a tokenizer directory / tokenizer.json (default: the shipped one)."""
    from editor.llm.text_tokenizer import load
    return Vocab(load(text_tokenizer), text_size, pronunciation_scheme)
