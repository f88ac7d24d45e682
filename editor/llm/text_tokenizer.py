"""Byte-level BPE text tokenizer trained on the project's own English and Chinese text.

Byte-level: any string encodes (no unknown token), an unseen Chinese character falls back to its
three UTF-8 bytes. Chinese characters (and full-width punctuation) are split off one by one before
BPE, so merges never glue several characters into one token: with a corpus of a few hundred
sentences, phrase tokens would memorize the corpus rather than teach reading. English keeps the
usual word split (a word and its leading space).

    python -m editor.llm.text_tokenizer --out DIR [--vocab-size N] [--extra-dir D]
"""
import argparse
import json
import sys
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from core import tags
from core.nvspeech import insert_tag
from editor.llm.prompts import CLONE_SYSTEM, DIALECT_TAGS, EDIT_SYSTEM
from tts import texts

LANGUAGES = ("en", "zh")
DEFAULT_VOCAB_SIZE = 8192  # a cap: the shipped corpus runs out of merges at 4283
# One pre-token per CJK ideograph / CJK or full-width punctuation mark.
_CJK_CHAR = Regex("[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


def corpus(extra_dir: str | None = None) -> dict[str, list[str]]:
    """Every string the LLM reads as text, by source, in a fixed order (training is deterministic)."""
    out = {}
    for lang in LANGUAGES:
        tag_texts = texts.corpus(lang)
        out[f"sentences_{lang}"] = [s for tag in tag_texts
                                    for s in [tag_texts[tag]["prompt"], *texts.sentences(lang, tag, extra_dir)]]
    first = {lang: out[f"sentences_{lang}"][1] for lang in LANGUAGES}  # a sample sentence per language
    instr = [tags.instruction("emotion", t, "") for t in tags.EMOTIONS]
    instr += [tags.instruction("style", t, "") for t in tags.STYLES]
    instr += [tags.instruction("speed", t, "") for t in tags.SPEED_TAGS]
    instr += [tags.instruction(kind, None, "") for kind in ("denoise", "vad")]
    instr += [tags.instruction("paralinguistic", None, first[lang], insert_tag(first[lang], t, place, lang))
              for lang in LANGUAGES for t in tags.PARALINGUISTIC_TAGS for place in ("start", "end")]
    out["instructions"] = instr
    out["system_prompts"] = [CLONE_SYSTEM, EDIT_SYSTEM, *DIALECT_TAGS]
    return out


def train(sentences: list[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(_CJK_CHAR, behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    # No special tokens here: the joint vocabulary (vocab.py) adds its own after the audio ids.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(sentences, trainer=trainer, length=len(sentences))
    return tok


def load(path):
    """A trained tokenizer (its directory or tokenizer.json) as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast
    path = Path(path)
    f = path / "tokenizer.json" if path.is_dir() else path
    if not f.is_file():
        raise ValueError(f"no text tokenizer at {path} (expected tokenizer.json)")
    return PreTrainedTokenizerFast(tokenizer_file=str(f))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory (tokenizer.json, training.json)")
    p.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    p.add_argument("--extra-dir", default=None, help="user sentences: DIR/<language>/<tag>.txt")
    a = p.parse_args(argv)
    parts = corpus(a.extra_dir)
    tok = train([s for v in parts.values() for s in v], a.vocab_size)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    zh_chars = sorted({c for s in parts["sentences_zh"] for c in s})
    single = sum(len(tok.encode(c).ids) == 1 for c in zh_chars)
    info = {"command": "python -m editor.llm.text_tokenizer " + " ".join(argv if argv is not None else sys.argv[1:]),
            "vocab_size_requested": a.vocab_size, "vocab_size": tok.get_vocab_size(),
            "extra_dir": a.extra_dir, "corpus_counts": {k: len(v) for k, v in parts.items()},
            # how many of the corpus's distinct Chinese characters are one token each
            "zh_chars_single_token": f"{single}/{len(zh_chars)}"}
    (out / "training.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(info, ensure_ascii=False))


if __name__ == "__main__":
    main()
