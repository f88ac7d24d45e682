"""Preference pairs: the one table the preference trainers read (reward model, DPO, PPO's prompts).

Both raters write it: the machine rater of `pipeline=preference_pairs` and the people's 5-point
ratings exported from the labeling page. One row per pair; the prompt is a chat example of
editor/llm/data.py without its answer, the answers are codec audio ids, so any vocab can rebuild the
token sequences (chat.build_example) and nothing needs decoding:

    pair_id         str    unique in the table
    prompt_key      str    the chat example's key (every pair of one prompt shares it)
    task            str    one of data.TASKS
    split           str    train | validation (held-out pair accuracy) | test
    example         str    JSON of the chat example: system, instruction, text, target_text, language,
                           speaker (clone only), source_tokens (list of codec ids)
    chosen          list   codec audio ids [0, 5120) of the preferred answer
    rejected        list   codec audio ids of the other answer
    chosen_score    float  the rater's score of each answer (machine: 1-10, people: 1-5)
    rejected_score  float
    margin          float  chosen_score - rejected_score (> the rater's threshold)
    rater           str    "machine:<scorer version>" or "people:<annotators>"

Written as `pairs.parquet`; a reader takes the file, a release directory or a pipeline directory
(its latest release)."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from editor.llm.data import TASKS
from editor.llm.vocab import AUDIO_SIZE

COLUMNS = ("pair_id", "prompt_key", "task", "split", "example", "chosen", "rejected",
           "chosen_score", "rejected_score", "margin", "rater")
OPTIONAL = ("tokenizer_version",)   # the codec tokenizer the answers' ids are of: trainers refuse another
FILE = "pairs.parquet"
SPLITS = ("train", "validation", "test")
EXAMPLE_FIELDS = ("system", "instruction", "text", "target_text", "language", "speaker", "source_tokens")


def example_json(ex: dict) -> str:
    """A chat example (data.py) as the `example` column: its prompt side only."""
    out = {k: ex.get(k) for k in EXAMPLE_FIELDS if k != "speaker" or ex.get("speaker") is not None}
    if out.get("speaker"):
        out["speaker"] = {"name": ex["speaker"]["name"], "prompt_text": ex["speaker"]["prompt_text"]}
    out["source_tokens"] = [int(t) for t in np.asarray(ex["source_tokens"]).reshape(-1)]
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


def _ids(value, what: str) -> np.ndarray:
    a = np.asarray(list(value) if value is not None else [], dtype=np.int64)
    if a.size == 0:
        raise ValueError(f"{what}: empty answer")
    if a.min() < 0 or a.max() >= AUDIO_SIZE:
        raise ValueError(f"{what}: codec id {int(a[(a < 0) | (a >= AUDIO_SIZE)][0])} out of range [0, {AUDIO_SIZE})")
    return a


def pairs_file(path) -> Path:
    """The pairs.parquet of a file, a release directory or a pipeline directory (its latest)."""
    p = Path(path)
    for cand in (p, p / FILE, p / "latest" / FILE):
        if cand.is_file():
            return cand
    raise ValueError(f"pairs={path}: no {FILE} there (run `python run.py pipeline=preference_pairs` "
                     "or export the labeling page's ratings)")


def write_pairs(rows: list[dict], path) -> Path:
    """Validate rows and write them as a parquet file, atomically (a reader never sees half of it)."""
    import pandas as pd
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    for i, r in enumerate(rows):
        missing = [c for c in COLUMNS if c not in r]
        if missing:
            raise ValueError(f"pair row {i}: missing columns {missing}")
        _check_row(r, f"pair row {i} ({r['pair_id']})")
    ids = [r["pair_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("pair_id values are not unique")
    cols = list(COLUMNS) + [c for c in OPTIONAL if any(r.get(c) is not None for r in rows)]
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    for c in ("chosen", "rejected"):
        df[c] = [[int(t) for t in np.asarray(v).reshape(-1)] for v in df[c]]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def _check_row(r: dict, what: str) -> dict:
    """The row's example parsed, once the row is a pair a trainer can learn from."""
    if r["task"] not in TASKS:
        raise ValueError(f"{what}: unknown task {r['task']!r}; tasks are {', '.join(TASKS)}")
    if r["split"] not in SPLITS:
        raise ValueError(f"{what}: split {r['split']!r}; splits are {', '.join(SPLITS)}")
    chosen, rejected = _ids(r["chosen"], f"{what} chosen"), _ids(r["rejected"], f"{what} rejected")
    if np.array_equal(chosen, rejected):
        raise ValueError(f"{what}: the chosen and rejected answers are the same (no preference to learn)")
    if not r["chosen_score"] > r["rejected_score"]:
        raise ValueError(f"{what}: chosen_score {r['chosen_score']} is not above rejected_score {r['rejected_score']}")
    try:
        ex = json.loads(r["example"]) if isinstance(r["example"], str) else dict(r["example"])
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{what}: example is not a JSON object ({e})") from None
    if ex.get("system") not in ("edit", "clone"):
        raise ValueError(f"{what}: example.system must be edit or clone, got {ex.get('system')!r}")
    if "source_tokens" not in ex:
        raise ValueError(f"{what}: example has no source_tokens")
    return ex


def read_pairs(paths, split: str | None = None) -> list[dict]:
    """Rows of one or more pairs tables (one split, or all), each with `example` parsed to a chat
    example dict (source_tokens an array) and chosen/rejected as int64 arrays."""
    import pandas as pd
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out, seen, sides = [], {}, {}
    for p in paths:
        f = pairs_file(p)
        df = pd.read_parquet(f)
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{f}: not a pairs table (missing columns {missing})")
        for r in df.to_dict("records"):
            what = f"{f} pair {r['pair_id']}"
            ex = _check_row(r, what)
            if r["pair_id"] in seen:
                raise ValueError(f"{what}: pair_id also in {seen[r['pair_id']]} (a table given twice weighs its pairs twice)")
            seen[r["pair_id"]] = f
            other = sides.setdefault(r["prompt_key"], r["split"])
            if other != r["split"]:
                raise ValueError(f"{what}: prompt {r['prompt_key']!r} is in both the {other} and the {r['split']} split "
                                 "(a held-out prompt must never be trained on)")
            if split is not None and r["split"] != split:
                continue
            ex["source_tokens"] = np.asarray(ex["source_tokens"], dtype=np.int64)
            ex.update(task=r["task"], key=r["prompt_key"])
            out.append({**r, "example": ex, "chosen": _ids(r["chosen"], what), "rejected": _ids(r["rejected"], what)})
    return out


def digest(rows: list[dict]) -> str:
    """What a list of pairs is, in its order: a trainer's checkpoint resumes only on the same pairs."""
    h = hashlib.sha1()
    for r in rows:
        h.update(f"\0{r['pair_id']}\0{r['split']}\0".encode())
        h.update(np.asarray(r["chosen"], dtype=np.int64).tobytes() + b"|" + np.asarray(r["rejected"], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def answered(pair: dict) -> tuple[dict, dict]:
    """(chosen, rejected) as chat examples with their target_tokens: chat.build_example's input."""
    ex = pair["example"]
    return {**ex, "target_tokens": pair["chosen"]}, {**ex, "target_tokens": pair["rejected"]}


def release_codec(root) -> str | None:
    """The codec tokenizer of a preference_pairs release's answers (its run.json), or None."""
    run = Path(root) / "run.json"
    return (json.loads(run.read_text()).get("llm") or {}).get("codec") if run.is_file() else None
