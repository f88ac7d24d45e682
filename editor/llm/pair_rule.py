"""Which rated answers of one prompt make preference pairs, and which split a prompt's pairs go to.

Every two answers of a prompt whose scores differ by more than the threshold make one pair, the
higher one chosen (the seed's rule: an LLM judge's 1-10 scores, pairs kept when the margin exceeds 8).
A tie never makes a pair, whatever the threshold (it must be >= 0). All pairs of a prompt share one
split, drawn from a hash of its prompt key: a validation pair's prompt is never seen in training, so
the reward model's held-out accuracy is on unseen prompts."""
import hashlib
from collections import Counter


def check_threshold(t, what: str) -> float:
    if not isinstance(t, (int, float)) or t < 0:
        raise ValueError(f"{what}={t!r}: a pair's score margin must exceed a threshold >= 0 (a tie is no preference)")
    return float(t)


def prompt_split(prompt_key: str, validation_fraction: float) -> str:
    """train | validation, stable for a prompt key (independent of the other prompts and of the run)."""
    h = int.from_bytes(hashlib.sha1(f"preference-split:{prompt_key}".encode()).digest()[:8], "big") / 2**64
    return "validation" if h < validation_fraction else "train"


def scored_pairs(scores: list, threshold: float) -> list[tuple[int, int, float]]:
    """(chosen index, rejected index, margin) for every two answers whose scores differ by more than
    threshold; unscored answers (None) take part in none."""
    out = []
    for i, a in enumerate(scores):
        for j, b in enumerate(scores):
            if a is not None and b is not None and a - b > threshold:
                out.append((i, j, round(a - b, 4)))
    return out


def survival(margins_by_task: dict[str, list[float]], thresholds) -> dict[str, dict[str, int]]:
    """threshold -> task -> number of pairs whose margin exceeds it (the report's table: a strict
    threshold may leave few)."""
    out = {}
    for t in thresholds:
        c = Counter({task: sum(m > t for m in ms) for task, ms in margins_by_task.items()})
        out[f"{float(t):g}"] = {task: c[task] for task in sorted(margins_by_task)}
    return out
