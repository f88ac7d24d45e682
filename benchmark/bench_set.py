"""The benchmark set: its 8 speakers, its own sentences, and N prompts per label and language.

Speakers: voice_bank.pool=benchmark, 4 per language (2 female, 2 male), draws salted by the pool so
none is a default-pool (editor, codec, margin scorer) or judge-pool voice. Texts:
data/benchmark_texts/<lang>/<tag>.txt, written for the benchmark and disjoint from the shipped
corpus (data/texts) and the judge's (data/judge_texts); paralinguistic.txt holds sentences with a
`[*]` slot that each tag fills. A prompt is a (speaker, sentence) pair of its label's sentences,
drawn without replacement by a seed: the same config always gives the same set."""
import hashlib
from pathlib import Path

import numpy as np

from core.nvspeech import strip_tags
from tts.voice_bank import generated_speakers

REPO = Path(__file__).resolve().parent.parent
TEXTS = REPO / "data" / "benchmark_texts"
POOL = "benchmark"
PER_LANGUAGE = 4
SLOT = "[*]"
CATEGORIES = ("emotion", "style", "paralinguistic")


def speakers(languages) -> list:
    return generated_speakers(list(languages), PER_LANGUAGE, POOL)


def lines(language: str, name: str, root: Path = TEXTS) -> list[str]:
    f = Path(root) / language / f"{name}.txt"
    if not f.is_file():
        raise ValueError(f"benchmark texts: no {f} (the set needs sentences for {language}/{name})")
    out = [l.strip() for l in f.read_text(encoding="utf-8").split("\n") if l.strip()]
    if not out:
        raise ValueError(f"benchmark texts: {f} is empty")
    return out


def all_texts(languages, root: Path = TEXTS) -> set[str]:
    """Every benchmark sentence as it is spoken (slots removed)."""
    return {strip_tags(l.replace(SLOT, " ")) for lang in languages for f in (Path(root) / lang).glob("*.txt")
            for l in lines(lang, f.stem, root)}


def _rng(seed: int, *parts) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha1("/".join(map(str, (seed, *parts))).encode()).hexdigest()[:12], 16))


def _fill(line: str, tag: str, language: str) -> str:
    if line.count(SLOT) != 1:
        raise ValueError(f"benchmark texts: paralinguistic line {line!r} needs exactly one {SLOT} slot")
    sep = "" if language in ("zh", "yue") else " "
    head, tail = (p.strip() for p in line.split(SLOT))
    return sep.join(p for p in (head, f"[{tag}]", tail) if p)


def build(languages, labels: dict[str, list[str]], n: int, seed: int, root: Path = TEXTS) -> list[dict]:
    """The prompts: n per (category, label, language). labels = {"emotion": [...], "style": [...],
    "paralinguistic": [tags]}. A prompt: id, language, category, label, speaker, text (what Iter0
    says) and, for paralinguistic, text_with_tags (the edit's target)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"pipeline.n={n!r}: prompts per label and language must be an int >= 1")
    unknown = sorted(set(labels) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"pipeline.labels: unknown category {unknown[0]!r}; categories: {', '.join(CATEGORIES)}")
    out = []
    for lang in languages:
        spk = speakers([lang])
        for category, tags in labels.items():
            for label in tags:
                sents = lines(lang, "paralinguistic" if category == "paralinguistic" else label, root)
                pairs = [(s, t) for s in spk for t in sents]
                if n > len(pairs):
                    raise ValueError(f"pipeline.n={n}: only {len(pairs)} (speaker, sentence) pairs for "
                                     f"{lang}/{label} ({len(spk)} speakers x {len(sents)} sentences)")
                for i, k in enumerate(sorted(_rng(seed, lang, category, label).choice(len(pairs), n, replace=False))):
                    s, line = pairs[k]
                    p = {"id": f"{lang}-{category}-{label}-{i:03d}", "language": lang, "category": category,
                         "label": label, "speaker": s.id}
                    if category == "paralinguistic":
                        p["text_with_tags"] = _fill(line, label, lang)
                        p["text"] = strip_tags(p["text_with_tags"])
                    else:
                        p["text"] = line
                    out.append(p)
    return out


def training_speakers(training_json: dict) -> set[str]:
    """Every speaker id an editor's training.json lists (under any task's "speakers")."""
    found = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "speakers" and isinstance(v, list):
                    found.update(map(str, v))
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(training_json)
    return found
