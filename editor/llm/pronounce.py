"""How a text sounds, written out for the LLM's prompt: English words as CMU phones, Chinese characters as
toned pinyin, paralinguistic tags kept where they stand.

    "Hello, 你好 [Laughter] world" -> "hh ah l ow/ n i3 h ao3 [Laughter] w er l d/"

Each phone, initial, final and tone digit is a word of its own for the tokenizer's pre-tokenizer, so it
becomes the same one to three text ids wherever it stands; "/" ends an English word (one id), a tone
digit a syllable.

Why: a model trained from scratch on a few thousand sentences sees most words a handful of times, so it
cannot learn from the text tokens alone what each word sounds like (the shipped LLM's clones have the
voice but a pocketsphinx WER of about 1). ~40 English phones and ~20 initials and ~35 toned finals of
Mandarin recur in every sentence, so with the pronunciation in the prompt the sound of unseen words is made of parts it has heard
often. Step-Audio-EditX does not need this: it starts from a text LLM and a TTS model trained on
millions of sentences.

The string goes through the project's text tokenizer like any text (no new ids). A model trained with it
records the scheme's version (PRONUNCIATION_SCHEME) in its vocabulary file and always gets it at inference;
models without it (the shipped editor-llm-v12) never do.

Sources, both offline: the CMU pronouncing dictionary as pocketsphinx ships it (first pronunciation of
each word, stress marks dropped), copied into the artifact `editor/artifacts/pronunciation-v1` by
`python -m editor.llm.pronounce --out DIR`, so the GPU machine, without pocketsphinx, reads the same
dictionary; pypinyin for Han characters, as initial and toned final (Mandarin readings, also for Cantonese
text: a known limit).
A word not in the dictionary stays as written, lowercased.
"""
import argparse
import gzip
import json
import re
from functools import lru_cache
from pathlib import Path

PRONUNCIATION_SCHEME = "pronunciation-v1"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "artifacts" / PRONUNCIATION_SCHEME
DICT_NAME = "cmudict.txt.gz"
_LATIN = "A-Za-z\u00c0-\u024f"
_PIECES = re.compile(rf"\[[^\[\]]{{1,40}}\]|[\u4e00-\u9fff]+|[{_LATIN}]+(?:'[{_LATIN}]+)*")


@lru_cache(maxsize=2)
def lexicon(directory: str = str(DEFAULT_DIR)) -> dict[str, str]:
    """word (lowercase) -> its phones, lowercase, no stress, separated by spaces."""
    path = Path(directory) / DICT_NAME
    if not path.is_file():
        raise ValueError(f"pronunciation dictionary {path} is missing: build it with "
                         f"python -m editor.llm.pronounce --out {directory}")
    out = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            word, phones = line.rstrip("\n").split("\t")
            out[word] = phones
    return out


def _pinyin(han: str) -> list[str]:
    """A run of Han characters -> one "initial final+tone" string per syllable ("x in1", "uo3": no initial).
    Initials and finals, not whole syllables: ~400 toned syllables are nearly as sparse in a small corpus
    as the characters themselves, ~20 initials and ~35 finals are not (bench/pronunciation_coverage.py)."""
    from pypinyin import Style, lazy_pinyin
    initials = lazy_pinyin(han, style=Style.INITIALS, strict=True)
    finals = lazy_pinyin(han, style=Style.FINALS_TONE3, strict=True, neutral_tone_with_five=True)
    return [f"{i} {f}" if i else f for i, f in zip(initials, finals)]


CACHED_CHARS = 512     # texts up to this long are cached (a server's request texts may be 10,000 characters)


def pronounce(text: str, directory: str = str(DEFAULT_DIR)) -> str:
    """The pronunciation of `text` (see the module doc). Left out: punctuation, digits (write numbers as
    words), other scripts and Han characters outside the basic CJK block. Short texts are cached: a
    trainer builds each example's prompt several times (lengths, batches); the cache stays a few MB."""
    return (_pronounce_cached if len(text) <= CACHED_CHARS else _pronounce)(text, directory)


@lru_cache(maxsize=8192)
def _pronounce_cached(text: str, directory: str) -> str:
    return _pronounce(text, directory)


def _pronounce(text: str, directory: str) -> str:
    words = lexicon(directory)
    out = []
    for m in _PIECES.finditer(text.replace("\u2019", "'")):     # a typographic apostrophe: don’t = don't
        piece = m.group(0)
        if piece[0] == "[":
            out.append(piece)                      # a paralinguistic tag: where the event goes
        elif "\u4e00" <= piece[0] <= "\u9fff":
            out += _pinyin(piece)
        else:
            out.append(words.get(piece.lower(), piece.lower()) + "/")
    return " ".join(out)


def check_scheme(scheme: str, what: str) -> None:
    """A model's prompts carry `scheme`; this code writes PRONUNCIATION_SCHEME: anything else is refused."""
    if scheme != PRONUNCIATION_SCHEME:
        raise ValueError(f"{what}: trained with pronunciations {scheme!r}, this code writes {PRONUNCIATION_SCHEME!r}")


def build(pocketsphinx_dict: Path, out: Path) -> dict:
    """The artifact: the dictionary's first pronunciation per word, stress dropped, gzipped; meta.json."""
    entries = {}
    for line in pocketsphinx_dict.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 2 or "(" in parts[0]:      # "word(2)": an alternative pronunciation
            continue
        entries.setdefault(parts[0].lower(), " ".join(re.sub(r"\d", "", p).lower() for p in parts[1:]))
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (DICT_NAME + ".partial")
    with gzip.GzipFile(tmp, "wb", mtime=0) as f:   # mtime 0: the same bytes on every build
        f.write("".join(f"{w}\t{p}\n" for w, p in sorted(entries.items())).encode())
    tmp.replace(out / DICT_NAME)
    import pypinyin
    meta = {"version": PRONUNCIATION_SCHEME, "words": len(entries), "source": "CMU pronouncing dictionary as shipped "
            "by pocketsphinx (BSD-style licence), first pronunciation, stress dropped",
            "pinyin": f"pypinyin {pypinyin.__version__}: Style.INITIALS and Style.FINALS_TONE3, strict, neutral tone 5",
            "command": "python -m editor.llm.pronounce" + ("" if out.resolve() == DEFAULT_DIR else " --out DIR")}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_DIR))
    a = ap.parse_args(argv)
    import pocketsphinx
    src = Path(pocketsphinx.__file__).parent / "model" / "en-us" / "cmudict-en-us.dict"
    print(json.dumps(build(src, Path(a.out))))


if __name__ == "__main__":
    main()
