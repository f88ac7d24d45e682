"""The paralinguistic 1-3 score (the seed's rule: 3 = perfect, 2 = flawed, 1 = failed) without an LLM.

An edit that adds `[Laughter]` to a clip keeps the words and inserts a sound. So the edited clip is
aligned to its source (DTW, cosine distance over per-clip normalised MFCCs c1..c12, 10 ms frames): the words match, and an
inserted event is a sounding stretch of the edited clip during which the alignment barely advances
through the source. Each requested tag has a place in the source, its share of the characters
before it mapped onto the source's speech span (start, clause or end). Then

    3: every requested event found near its place, and the rest matches the source (alignment cost)
    2: some found, or all found but the words around them damaged
    1: none found (omission, the seed's most common failure)

It needs no editor data (only the source and the edited clip): kept apart from what trains the editor.
With a judge that has the vocalization task, each event found is also named (which of the ten
sounds it is) and counts only when it is the requested one; a wrong one makes the score 2 ("flawed").
Without it an event is "a new sounding stretch", so a wrong vocalization at the right place counts as
found. A long pause filled with breath noise may count too; docs/benchmark.md has the calibration."""
from dataclasses import dataclass

import numpy as np

from core.nvspeech import TAG_RE, strip_tags
from scorers.judge.logmel import HOP, SR, logmel

FRAME_S = HOP / SR


@dataclass(frozen=True)
class Settings:
    min_event_s: float = 0.15      # the shortest vocalization counted (a "mm" is ~0.3 s)
    max_advance: float = 0.25      # source frames per edited frame inside an inserted stretch
    sounding_db: float = 35.0      # a frame sounds if within this many dB of the clip's loudest
    place_tol_s: float = 0.6       # how far from its place an event may be found (also 15 % of the speech)
    max_cost: float = 0.5          # mean matched-frame cosine distance above which the words count as damaged


def _features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, 12) MFCCs c1..c12, normalised per clip (voice and level differ between clips),
    and each frame's level in dB below the clip's loudest."""
    from scipy.fftpack import dct
    m = logmel(x)                                   # (64, frames), natural log power
    c = dct(m, axis=0, norm="ortho")[1:13].T
    c = (c - c.mean(0)) / (c.std(0) + 1e-6)
    level = 10 * np.log10(np.exp(m).sum(0) + 1e-12)
    return c.astype(np.float64), level - level.max()


def _path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DTW path (pairs of source frame, edited frame, ascending) and the local cost of each pair."""
    import librosa
    _, wp = librosa.sequence.dtw(X=a.T, Y=b.T, metric="cosine")
    wp = wp[::-1]
    x, y = a[wp[:, 0]], b[wp[:, 1]]
    cost = 1 - (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-9)
    return wp, cost


def inserted_stretches(wp: np.ndarray, level_b: np.ndarray, s: Settings) -> list[tuple[int, int, int]]:
    """(first edited frame, last edited frame, source frame) of each sounding stretch of the edited
    clip during which the source advances at most max_advance frames per frame."""
    n_b = int(wp[:, 1].max()) + 1
    src_of = np.zeros(n_b, int)
    for i, j in wp:                                  # the first source frame each edited frame meets
        if src_of[j] == 0 or i < src_of[j]:
            src_of[j] = i
    w = max(2, int(round(s.min_event_s / FRAME_S)))
    slow = np.zeros(n_b, bool)
    for j in range(n_b - w):
        if src_of[j + w] - src_of[j] <= s.max_advance * w:
            slow[j:j + w + 1] = True
    out, j = [], 0
    while j < n_b:
        if not slow[j]:
            j += 1
            continue
        k = j
        while k + 1 < n_b and slow[k + 1]:
            k += 1
        sounding = level_b[j:k + 1] > -s.sounding_db
        if sounding.sum() >= w:                      # a pause is slow too, but silent
            out.append((j, k, int(src_of[j])))
        j = k + 1
    return out


def places_s(text_with_tags: str, level_a: np.ndarray, s: Settings) -> list[tuple[str, float]]:
    """Each tag and where it belongs in the source (seconds): its share of the tag-free characters
    before it, over the source's first to last sounding frame."""
    loud = np.flatnonzero(level_a > -s.sounding_db)
    start, end = (loud[0], loud[-1]) if len(loud) else (0, len(level_a) - 1)
    total = max(1, len(strip_tags(text_with_tags)))
    out = []
    for m in TAG_RE.finditer(text_with_tags):
        before = len(strip_tags(text_with_tags[:m.start()] + " x").rstrip("x").rstrip())
        out.append((m.group(1), (start + (end - start) * min(1.0, before / total)) * FRAME_S))
    return out


def _match(source: np.ndarray, edited: np.ndarray, text_with_tags: str, s: Settings):
    """Align, find the inserted stretches, and give each requested tag the nearest free stretch at its
    place: ([(tag, stretch or None)], events, match_cost)."""
    tags = TAG_RE.findall(text_with_tags)
    if not tags:
        raise ValueError(f"text_with_tags {text_with_tags!r}: no [Tag] to look for")
    fa, la = _features(np.asarray(source, np.float32))
    fb, lb = _features(np.asarray(edited, np.float32))
    wp, cost = _path(fa, fb)
    events = inserted_stretches(wp, lb, s)
    inside = np.zeros(len(wp), bool)
    for j0, j1, _ in events:
        inside |= (wp[:, 1] >= j0) & (wp[:, 1] <= j1)
    match_cost = float(cost[~inside].mean()) if (~inside).any() else float("inf")
    speech_s = float((la > -s.sounding_db).sum()) * FRAME_S
    tol = max(s.place_tol_s, 0.15 * speech_s)
    free, placed = list(events), []
    for tag, t in places_s(text_with_tags, la, s):
        near = [e for e in free if abs(e[2] * FRAME_S - t) <= tol]
        best = min(near, key=lambda e: abs(e[2] * FRAME_S - t)) if near else None
        if best is not None:
            free.remove(best)
        placed.append((tag, best))
    return placed, events, match_cost


def _cut(edited: np.ndarray, stretch) -> np.ndarray:
    j0, j1, _ = stretch
    return np.asarray(edited, np.float32)[int(j0 * FRAME_S * SR): int((j1 + 1) * FRAME_S * SR)]


def detected_events(source: np.ndarray, edited: np.ndarray, text_with_tags: str,
                    s: Settings = Settings()) -> list[tuple[str, np.ndarray]]:
    """(requested tag, the edited clip's audio of the stretch found at its place) for each tag found."""
    placed, _, _ = _match(source, edited, text_with_tags, s)
    return [(tag, _cut(edited, st)) for tag, st in placed if st is not None]


def score(source: np.ndarray, edited: np.ndarray, text_with_tags: str, s: Settings = Settings(),
          name_event=None) -> dict:
    """{"score": 1|2|3, "found": [tag...], "wrong_type": [tag...], "missing": [tag...], "match_cost",
    "events": [(start_s, end_s)]} for an edited clip (16 kHz) that should say text_with_tags, made from
    `source` (the tag-free clip).

    name_event(audio) -> the vocalization it hears (the judge's vocalization task), optional: then an
    event at its place counts as found only when it is the requested one, and one of another kind is
    `wrong_type` (the seed's "flawed": 2). Without it, any new sound at the place counts."""
    placed, events, match_cost = _match(source, edited, text_with_tags, s)
    found, wrong, missing = [], [], []
    for tag, st in placed:
        if st is None:
            missing.append(tag)
        elif name_event is None or name_event(_cut(edited, st)) == tag:
            found.append(tag)
        else:
            wrong.append(tag)
    intact = match_cost <= s.max_cost
    value = 1 if not (found or wrong) else (3 if len(found) == len(placed) and intact else 2)
    return {"score": value, "found": found, "wrong_type": wrong, "missing": missing, "match_cost": round(match_cost, 4),
            "intact": bool(intact), "type_checked": name_event is not None,
            "events": [(round(j0 * FRAME_S, 2), round((j1 + 1) * FRAME_S, 2)) for j0, j1, _ in events]}
