"""Train/validation/test assignment, so that no speaker and no text crosses splits.

A speaker's split comes from a hash of its id (salted, stable across runs and machines).
- Planned data (our corpus, our speakers): each text list is partitioned among the splits in
  proportion to their speakers, and a speaker only speaks texts of its split's block: nothing is
  dropped and no text is spoken in two splits.
- Given data (a user's recordings): a text's split is the hash of the text; a recording whose text
  hashes to another split than its speaker is dropped as split_conflict."""
import hashlib

DEFAULT = {"train": 0.8, "validation": 0.1, "test": 0.1}


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


def speaker_split(speaker: str, cfg) -> str | None:
    return split_of(f"speaker:{speaker}", dict(cfg.fractions), str(cfg.salt)) if cfg.enabled else None


def texts_for(sentences: list[str], speaker: str, speakers: list[str], cfg) -> list[str]:
    """The block of `sentences` that belongs to this speaker's split (planned data)."""
    if not cfg.enabled or "text" not in cfg.by:
        return sentences
    groups = {}
    for s in speakers:
        groups.setdefault(speaker_split(s, cfg), []).append(s)
    names = [n for n in dict(cfg.fractions) if n in groups]
    n = len(sentences)
    sizes = [max(1, round(n * len(groups[g]) / len(speakers))) for g in names]
    while sum(sizes) > n and max(sizes) > 1:  # rounding: keep the blocks inside the list
        sizes[sizes.index(max(sizes))] -= 1
    start = sum(sizes[: names.index(speaker_split(speaker, cfg))])
    return sentences[start: start + sizes[names.index(speaker_split(speaker, cfg))]]
