"""People's 5-point ratings of candidate answers -> the pairs table the preference trainers read.

The candidate page (pipelines/label_candidates.py) stores one rating per annotator and candidate:
item `<sample key>/cand<i>` of task "candidates" in a LabelStore. Here each candidate's score is the
mean of its annotators' ratings, and every two candidates of one prompt whose scores differ by more
than `min_margin` (the seed's > 3 on 1..5) become a pair: the higher one chosen. Ties and smaller
differences give no pair. The answers are the candidates' codec ids (`cand<i>.tok.npy` of the
release), so the table is editor/llm/pairs.py's, with rater "people:<annotators>"."""
import itertools
import logging
import re
from pathlib import Path

import numpy as np

from editor.llm import pairs
from editor.llm.pair_rule import prompt_split   # the machine rater's: a prompt rated by both is on one side

log = logging.getLogger("lms")
TASK = "candidates"
SCALE = (1, 5)
# thresholds whose surviving pair counts are reported beside the one used (a strict rule may leave few)
REPORTED_MARGINS = (0, 1, 2, 3)
_ITEM = re.compile(r"(.+)/cand([0-9]+)")


def item_id(key: str, i: int) -> str:
    """The label store's item for candidate i of a sample: sample keys have no '/', so this parses back."""
    return f"{key}/cand{i}"


def parse_item(item: str) -> tuple[str, int] | None:
    m = _ITEM.fullmatch(item)
    return (m[1], int(m[2])) if m else None


def mean_scores(store) -> dict[str, dict[int, tuple[float, list[str]]]]:
    """sample key -> candidate index -> (mean rating, its annotators), over the store's ratings."""
    by: dict[str, dict[int, dict[str, float]]] = {}
    for r in store.ratings():
        parsed = parse_item(r["item_id"])
        if parsed:
            by.setdefault(parsed[0], {}).setdefault(parsed[1], {})[r["annotator"]] = r["score"]
    return {key: {i: (sum(s.values()) / len(s), sorted(s)) for i, s in cands.items()} for key, cands in by.items()}


def order_agreement(store) -> dict:
    """How often two annotators order two answers of one prompt the same way, over the answer pairs
    both rated with a strict preference (a tie by either is no order): what a pairs table rests on,
    which per-answer agreement (LabelStore.agreement) can hide when one annotator rates higher."""
    by: dict[str, dict[str, dict[int, float]]] = {}
    for r in store.ratings():
        parsed = parse_item(r["item_id"])
        if parsed:
            by.setdefault(parsed[0], {}).setdefault(r["annotator"], {})[parsed[1]] = r["score"]
    compared = same = 0
    for who in by.values():
        for a, b in itertools.combinations(sorted(who), 2):
            common = sorted(who[a].keys() & who[b].keys())
            for i, j in itertools.combinations(common, 2):
                da, db = who[a][i] - who[a][j], who[b][i] - who[b][j]
                if da and db:
                    compared += 1
                    same += (da > 0) == (db > 0)
    return {"pairs": compared, "same_order": same / compared if compared else None}


def people_pairs(store, release, min_margin: float = 3.0, validation_fraction: float = 0.1) -> tuple[list[dict], dict]:
    """(pair rows of editor/llm/pairs.COLUMNS, counts) from a "candidates" LabelStore and the release
    (core/reader.Release) whose candidates were rated. Prompts the release no longer has (ratings of
    an older release in the same database) are counted, not exported."""
    if isinstance(min_margin, bool) or not isinstance(min_margin, (int, float)) or min_margin < 0:
        raise ValueError(f"pipeline.min_margin={min_margin!r}: must be a number >= 0")
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)) \
            or not 0 <= validation_fraction < 1:
        raise ValueError(f"pipeline.validation_fraction={validation_fraction!r}: must be in [0, 1)")
    known = set(release.manifest["key"])
    rows, missing = [], 0
    over = {t: 0 for t in sorted({*REPORTED_MARGINS, min_margin})}
    annotators = set()
    scores = mean_scores(store)
    codec = pairs.release_codec(release.root)
    for key, cands in scores.items():
        if key not in known:
            missing += 1
            continue
        annotators.update(a for _, who in cands.values() for a in who)
        found = [(a, b, cands[a][0] - cands[b][0]) for a, b in itertools.combinations(sorted(cands), 2)]
        for t in over:
            over[t] += sum(abs(m) > t for _, _, m in found)
        kept = [(a, b, m) if m > 0 else (b, a, -m) for a, b, m in found if abs(m) > min_margin]
        if not kept:
            continue
        sample = release.sample(key, members=sorted({f"cand{i}.tok.npy" for a, b, _ in kept for i in (a, b)}))
        js = sample.json
        for chosen, rejected, margin in kept:
            who = sorted(set(cands[chosen][1]) | set(cands[rejected][1]))
            rows.append({
                "pair_id": f"people:{key}:cand{chosen}>cand{rejected}", "prompt_key": js["prompt_key"],
                "task": js["source_task"], "split": prompt_split(js["prompt_key"], validation_fraction),
                "example": js["example"],
                "chosen": np.asarray(sample.members[f"cand{chosen}.tok.npy"]).reshape(-1),
                "rejected": np.asarray(sample.members[f"cand{rejected}.tok.npy"]).reshape(-1),
                "chosen_score": float(cands[chosen][0]), "rejected_score": float(cands[rejected][0]),
                "margin": float(margin), "rater": "people:" + ",".join(who),
                "tokenizer_version": codec})
    if missing:
        log.warning("%d rated prompts are not in %s (an older release's?); their ratings are not exported",
                    missing, release.data)
    counts = {"prompts_rated": len(scores) - missing, "annotators": sorted(annotators),
              "pairs_over_margin": over, "pairs": len(rows), "prompts_not_in_release": missing}
    return rows, counts


def export(store, release, path, min_margin: float = 3.0, validation_fraction: float = 0.1) -> dict:
    """Write the pairs table atomically (pairs.write_pairs); the counts, with the file written."""
    rows, counts = people_pairs(store, release, min_margin, validation_fraction)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {**counts, "path": str(pairs.write_pairs(rows, path))}
