"""Train/validation/test assignment, so that no speaker and no text crosses splits.

A speaker's split comes from a hash of its id (salted, stable across runs and machines).
- Planned data (our corpus, our speakers): each text list (a tag's shipped sentences, one file of
  texts.extra_dir) is partitioned among the splits in proportion to their speakers, and a speaker only
  speaks texts of its split's blocks, so no text is spoken in two splits, in any pipeline of the same
  bank, as long as no sentence is in two lists (tts.texts drops repeats of shipped sentences). Rounding
  the block sizes can leave a list's last sentence unused.
- Given data (a user's recordings): a text's split is the hash of the text; a recording whose text
  hashes to another split than its speaker is dropped as split_conflict.
- Held-out engines (splits.held_out_engines): every speaker whose clips are rendered on a base voice of
  one of these engines (a generated speaker, or a folder speaker whose speaker.json names one) is a test
  speaker, whatever its hash, so that no model trains on that engine's audio and it stays an
  unseen-engine test."""
import hashlib
from functools import lru_cache

DEFAULT = {"train": 0.8, "validation": 0.1, "test": 0.1}
ENGINES = ("piper", "espeak", "flite", "festival")  # the prefixes of base voice names (tts/base_voices.py)


def split_of(value: str, fractions: dict, salt: str = "") -> str:
    names = list(fractions)
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"splits.fractions must be non-negative and not all zero: {fractions}")
    u = int(hashlib.sha1(f"{salt}/{value}".encode()).hexdigest()[:12], 16) / 16 ** 12
    acc = 0.0
    for name in names:
        acc += fractions[name] / total
        if u < acc:
            return name
    return names[-1]


def assign(speaker: str, text: str, cfg) -> tuple[str | None, bool]:
    """(split, ok). ok is False when the text belongs to another split than the speaker."""
    if not cfg.enabled:
        return None, True
    fr = dict(cfg.fractions)
    s = split_of(f"speaker:{speaker}", fr, str(cfg.salt))
    if "text" not in cfg.by:
        return s, True
    return s, split_of(f"text:{text}", fr, str(cfg.salt)) == s


def identity(cfg) -> dict:
    """What of splits goes into sample keys: no held-out engines leaves the keys of before that setting."""
    from omegaconf import OmegaConf
    d = OmegaConf.to_container(cfg)
    engines = held_out_engines(cfg)   # checked here too: a misspelt engine is an error even with splits off
    if engines:
        d["held_out_engines"] = sorted(engines)
    else:
        d.pop("held_out_engines", None)
    return d


def held_out_engines(cfg) -> set[str]:
    engines = set(cfg.get("held_out_engines") or ())
    if unknown := engines - set(ENGINES):
        raise ValueError(f"splits.held_out_engines={sorted(engines)}: unknown engine(s) {sorted(unknown)}; "
                         f"engines are {', '.join(ENGINES)}")
    if engines and "test" not in cfg.fractions:
        raise ValueError(f"splits.held_out_engines={sorted(engines)} puts their voices in the test split, "
                         f"but splits.fractions has none: {dict(cfg.fractions)}")
    return engines


def _settings(cfg) -> tuple[tuple, str, frozenset]:
    """fractions, salt and held-out engines as plain values: planning asks for every speaker's split once
    per speaker and tag, and each access to an OmegaConf node costs microseconds."""
    return tuple(dict(cfg.fractions).items()), str(cfg.salt), frozenset(held_out_engines(cfg))


def on_engine(base_voice: str | None, engines) -> bool:
    """Whether a base voice ('flite:slt') belongs to one of these engines."""
    return bool(base_voice) and base_voice.split(":")[0] in engines


@lru_cache(maxsize=65536)
def _speaker_split(speaker: str, base_voice: str | None, fractions: tuple, salt: str, engines: frozenset) -> str:
    if on_engine(base_voice, engines):
        return "test"
    return split_of(f"speaker:{speaker}", dict(fractions), salt)


def speaker_split(speaker: str, cfg, base_voice: str | None = None) -> str | None:
    """The split of a speaker: `test` for a base voice of a held-out engine, else by hash of its id."""
    if not cfg.enabled:
        return None
    return _speaker_split(speaker, base_voice, *_settings(cfg))


def texts_for(sentences: list[str], speaker, speakers: list, cfg) -> list[str]:
    """The block of `sentences` that belongs to this speaker's split (planned data). `speaker` and
    `speakers` (all speakers of its language) are voice-bank speakers (id, base_voice)."""
    if not cfg.enabled or "text" not in cfg.by:
        return sentences
    settings = _settings(cfg)
    groups = {}
    for s in speakers:
        groups.setdefault(_speaker_split(s.id, s.base_voice, *settings), []).append(s.id)
    names = [n for n, _ in settings[0] if n in groups]
    n = len(sentences)
    sizes = [max(1, round(n * len(groups[g]) / len(speakers))) for g in names]
    while sum(sizes) > n and max(sizes) > 1:  # rounding: keep the blocks inside the list
        sizes[sizes.index(max(sizes))] -= 1
    mine = names.index(_speaker_split(speaker.id, speaker.base_voice, *settings))
    start = sum(sizes[:mine])
    return sentences[start: start + sizes[mine]]


def texts_of_split(lists: list[list[str]], speaker, speakers: list, cfg) -> list[str]:
    """texts_for of each list on its own, joined. A sentence's split then depends only on its own list
    (a tag's shipped sentences, or one file of texts.extra_dir) and the bank's speakers, not on what a
    pipeline pools it with: an emotion run, which reads one tag's lists, and a speed run, which pools
    every tag's, put it in the same split, so no text of one's test split is in the other's training data."""
    return [s for part in lists if part for s in texts_for(part, speaker, speakers, cfg)]
