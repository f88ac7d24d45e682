"""Text corpus: shipped per-language JSON (data/texts/<lang>.json) plus user text files."""
import json
from functools import lru_cache
from pathlib import Path

from core.text_hygiene import strip_control

ROOT = Path(__file__).resolve().parent.parent / "data" / "texts"


@lru_cache(maxsize=None)
def corpus(language: str) -> dict:
    path = ROOT / f"{'zh' if language == 'yue' else language}.json"
    if not path.is_file():
        raise ValueError(f"no shipped text corpus for language {language!r} ({path})")
    return json.loads(path.read_text(encoding="utf-8"))["tags"]


@lru_cache(maxsize=None)
def shipped_sentences(language: str) -> frozenset[str]:
    """Every shipped sentence of the language, of any tag."""
    return frozenset(x for tag in corpus(language).values() for x in tag["sentences"])


def sentence_generations(language: str, tag: str, extra_dir: str | None = None, shipped: bool = True,
                         later_dirs=()) -> list[list[list[str]]]:
    """A tag's sentences as generations of lists: first sentence_lists (the shipped ones and extra_dir's),
    then one generation per directory of `later_dirs` (texts.later_dirs), its `<dir>/<language>/<tag>.txt`.
    A planner rotates each generation on its own and puts it after the earlier ones, so a pool grown by a
    later directory keeps every earlier text where it was, and a factory run reuses the samples it made.
    A later line already in an earlier list is dropped (a sentence is in one list, so in one split); a
    later directory without the tag's file adds nothing; one that does not exist is an error naming it."""
    gens = [sentence_lists(language, tag, extra_dir, shipped)]
    known = {s for part in gens[0] for s in part} | (shipped_sentences(language) if shipped else set())
    if isinstance(later_dirs, (str, Path)):  # texts.later_dirs=DIR, without the list's brackets
        later_dirs = [later_dirs]
    for d in later_dirs or ():
        if not Path(d).is_dir():
            raise ValueError(f"texts.later_dirs: {d} is not a directory")
        f = Path(d) / language / f"{tag}.txt"
        lines = _read_lines(f) if f.is_file() else []
        new = [t for t in lines if t not in known]
        known.update(new)
        gens.append([new] if new else [])
    return gens


def pooled_sentence_lists(language: str, extra_dir: str | None = None) -> list[list[str]]:
    """Every tag's sentence lists, in the corpus's tag order: the pool of the pipelines that draw source
    texts from all tags (speed, denoise, trim, paralinguistic)."""
    return [part for tag in corpus(language) for part in sentence_lists(language, tag, extra_dir)]


def prompt_text(language: str, tag: str) -> str:
    return corpus(language)[tag]["prompt"]


def sentences(language: str, tag: str, extra_dir: str | None = None, shipped: bool = True) -> list[str]:
    """Shipped sentences for a tag, then the lines of `<extra_dir>/<language>/<tag>.txt` if present
    (sentence_lists joined)."""
    return [s for part in sentence_lists(language, tag, extra_dir, shipped) for s in part]


def sentence_lists(language: str, tag: str, extra_dir: str | None = None, shipped: bool = True) -> list[list[str]]:
    """The tag's sentences as the lists they come in: the shipped ones, then the lines of
    `<extra_dir>/<language>/<tag>.txt` if present. Each list is partitioned among the splits on its
    own (core.splits.texts_of_split), so a sentence's split never depends on what it is pooled with.
    shipped=False (texts.shipped=false): the extra_dir lines only, so a run's texts are its own
    (the judge's corpus, data/judge_texts, never overlaps the shipped one); a missing or empty
    file is then an error naming it.

    Lines of the file repeated in it, or already among the language's shipped sentences, are dropped
    (kept once, where they first are). Other extra files of the language must not repeat its lines either:
    each list is split on its own, so a sentence in two lists could be in two splits.

    A line ends at "\n" only (str.splitlines would also split at a vertical tab or form feed),
    and control characters inside it are stripped. Whether a line fits the language is the
    planner's check: a line in another script becomes a reject with its reason there."""
    if not shipped and not extra_dir:
        raise ValueError("texts.shipped=false needs texts.extra_dir (the run's own sentences)")
    out = [list(corpus(language)[tag]["sentences"])] if shipped else []
    if extra_dir:
        root = Path(extra_dir)
        if not root.is_dir():
            raise ValueError(f"texts.extra_dir={extra_dir}: not a directory")
        f = root / language / f"{tag}.txt"
        if f.is_file():
            # a sentence is in one list once: a list is split among train/validation/test by position, so
            # a repeat, or a shipped sentence of the language, could land in two splits
            known = shipped_sentences(language) if shipped else frozenset()
            out.append([t for t in _read_lines(f) if t not in known])
    out = [part for part in out if part]
    if not out:
        raise ValueError(f"texts.extra_dir={extra_dir}: no sentences in {Path(extra_dir) / language / f'{tag}.txt'}"
                         " (texts.shipped=false)")
    return out


def _read_lines(f: Path) -> list[str]:
    """A text file's distinct non-empty lines, in order, control characters stripped."""
    try:
        lines = f.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"{f}: not UTF-8 text ({e})") from e
    return [t for t in dict.fromkeys(strip_control(l).strip() for l in lines) if t]
