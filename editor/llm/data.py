"""Token releases -> the audio LLM's chat examples, and a resumable mixture stream over them.

Every sample of a token release gives its edit example (core.sample.llm_example) and, when it carries a
voice prompt, the clone example it yields (core.sample.clone_example; shared prompts and targets give
one). Examples are plain dicts, the input of editor/llm/chat.py:

    {"task", "key", "system": "edit"|"clone", "instruction", "text", "target_text", "language",
     "speaker_id", "edit_info", "source_tokens", "target_tokens", "speaker": {"name", "prompt_text"} (clone)}

Token releases are small (83 bytes per second of audio), so a split is read into memory once."""
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from core.reader import Release
from core.sample import clone_example, llm_example

TASKS = ("emotion_edit", "style_edit", "speed_edit", "denoise", "silence_trim", "paralinguistic_edit", "clone")


def _example(sample) -> dict:
    ex = llm_example(sample)
    out = {"task": sample.task, "key": sample.key, "system": ex["system"], "instruction": ex["instruction"],
           "text": ex["text"], "target_text": ex["target_text"], "language": ex["language"],
           "speaker_id": sample.json["speaker"], "edit_info": sample.json.get("edit_info"),
           "source_tokens": np.asarray(sample.members[ex["source"]], dtype=np.int64),
           "target_tokens": np.asarray(sample.members[ex["target"]], dtype=np.int64)}
    if ex["system"] == "clone":
        out["speaker"] = {"name": ex["speaker"]["name"], "prompt_text": ex["speaker"]["prompt_text"]}
    return out


def token_release(data) -> Release:
    """The token releases in `data` (anything core/reader.py reads; a list is joined) as one Release."""
    if isinstance(data, Release):
        return data
    if isinstance(data, (list, tuple)):
        data = ",".join(map(str, data))
    rel = Release(data)
    versions = rel.manifest.get("tokenizer_version")
    if versions is None:
        raise ValueError(f"data={data}: not a token release (run `python run.py pipeline=tokenize data=...` first)")
    if versions.isna().any():
        # a plain release beside token releases: its rows have no tokenizer version
        plain = sorted({str(Path(s).parent) for s in rel.manifest["shard_path"][versions.isna()]})
        raise ValueError(f"data={data}: {', '.join(plain)} is not a token release "
                         "(run `python run.py pipeline=tokenize data=...` first)")
    return rel


def load_examples(data, split: str | None, tasks=TASKS) -> dict[str, list[dict]]:
    """task -> examples of one split (None: every split) of the token releases in `data` (a Release or
    what token_release takes). Only tasks in `tasks`."""
    rel = token_release(data)
    out: dict[str, list[dict]] = defaultdict(list)
    clones = set()
    rows = rel.manifest if split is None else rel.manifest[rel.manifest["split"] == split]
    for key in rows["key"]:
        s = rel.sample(key)
        if llm_example(s) is None:
            continue
        if s.task in tasks:
            out[s.task].append(_example(s))
        c = clone_example(s) if "clone" in tasks else None
        if c is not None and c.key not in clones:
            clones.add(c.key)
            out["clone"].append(_example(c))
    return dict(out)


def codec(data) -> dict:
    """The codec tokenizer of the token releases in `data` (the reader refuses a mix): its version,
    token rate and, where the releases record it, the digest of its weights."""
    man = token_release(data).manifest
    out = {"tokenizer_version": str(man["tokenizer_version"].dropna().iloc[0]),
           "tokens_per_second": float(man["tokens_per_second"].dropna().iloc[0])}
    digests = man["tokenizer_digest"].dropna() if "tokenizer_digest" in man else ()
    if len(digests):
        out["tokenizer_digest"] = str(digests.iloc[0])
    return out


def check_weights(weights: dict) -> None:
    """Mixture weights name known tasks and are finite numbers >= 0 (0 leaves a task out)."""
    unknown = set(weights) - set(TASKS)
    if unknown:
        raise ValueError(f"mixture weights for unknown tasks {sorted(unknown)}; tasks are {', '.join(TASKS)}")
    for t, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ValueError(f"pipeline.train.mixture.{t}={w!r}: a weight is a finite number >= 0 (0 leaves the task out)")


def weighted(examples: dict[str, list[dict]], weights: dict) -> dict[str, list[dict]]:
    """Only the tasks the mixture draws from (weight > 0)."""
    return {t: v for t, v in examples.items() if weights.get(t, 0) > 0}


def digest(examples: dict[str, list[dict]]) -> str:
    """What the examples are, in the order a Mixture indexes them: a resumed run's data positions only
    mean the same examples if this is unchanged (a rewritten or reordered release changes it)."""
    h = hashlib.sha1()
    for task in sorted(examples):
        h.update(task.encode())
        for e in examples[task]:      # keys survive a re-tokenization with another codec; the ids do not
            h.update(b"\0" + e["key"].encode() + np.asarray(e["source_tokens"], np.int64).tobytes()
                     + b"|" + np.asarray(e["target_tokens"], np.int64).tobytes())
    return h.hexdigest()[:16]


class Mixture:
    """An endless stream of examples: each draw picks a task with probability proportional to its
    weight (tasks without examples drop out), then that task's next example in a per-pass shuffle.
    Its whole position is `state()`, so a resumed run draws exactly what the killed one would have."""

    def __init__(self, examples: dict[str, list[dict]], weights: dict[str, float], seed: int):
        check_weights(weights)
        self.tasks = [t for t in TASKS if examples.get(t) and weights.get(t, 0) > 0]
        if not self.tasks:
            raise ValueError(f"no examples for any weighted task (have {sorted(k for k, v in examples.items() if v)}, "
                             f"weights {weights})")
        self.examples = examples
        p = np.array([weights[t] for t in self.tasks], dtype=np.float64)
        self.p = p / p.sum()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.cursor = {t: 0 for t in self.tasks}
        self.passes = {t: 0 for t in self.tasks}
        self._orders = {}

    def _order(self, task: str) -> np.ndarray:
        key = (task, self.passes[task])
        if self._orders.get(task, (None,))[0] != key:
            perm = np.random.default_rng([self.seed, TASKS.index(task), self.passes[task]]).permutation(
                len(self.examples[task]))
            self._orders[task] = (key, perm)
        return self._orders[task][1]

    def next_ref(self) -> tuple[str, int]:
        """(task, index into examples[task]) of the next example."""
        task = self.tasks[int(self.rng.choice(len(self.tasks), p=self.p))]
        order = self._order(task)
        i = int(order[self.cursor[task]])
        self.cursor[task] += 1
        if self.cursor[task] == len(order):
            self.cursor[task], self.passes[task] = 0, self.passes[task] + 1
        return task, i

    def next(self) -> dict:
        task, i = self.next_ref()
        return self.examples[task][i]

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "cursor": dict(self.cursor), "passes": dict(self.passes)}

    def load_state(self, st: dict) -> None:
        self.rng.bit_generator.state = st["rng"]
        self.cursor.update(st["cursor"])
        self.passes.update(st["passes"])


def length_ratios(exs: list[dict]) -> dict[str, float]:
    """Per tag (a string edit_info: the emotion, style and speed tags): the median answer length over
    source length. For speed edits it is the tempo the model was taught for each tag; the Editor
    holds a speed edit's answer near it (editor.llm.editor.speed_ratios)."""
    by_tag: dict[str, list[float]] = defaultdict(list)
    for e in exs:
        if isinstance(e.get("edit_info"), str) and len(e["source_tokens"]):
            by_tag[e["edit_info"]].append(len(e["target_tokens"]) / len(e["source_tokens"]))
    return {t: round(float(np.median(r)), 4) for t, r in sorted(by_tag.items())}


def summary(examples: dict[str, list[dict]], tokens_per_second: float) -> dict:
    """Per task: examples, hours of target audio, speakers, distinct texts, the source audio's length
    (training.json; the Editor splits longer edits into pieces the model has seen, see
    editor.llm.editor.piece_seconds) and, for tagged edits, the answer's length ratio per tag."""
    out = {}
    for task, exs in examples.items():
        src_s = np.array([len(e["source_tokens"]) for e in exs], dtype=np.float64) / tokens_per_second
        out[task] = {"examples": len(exs),
                     "target_hours": round(sum(len(e["target_tokens"]) for e in exs) / tokens_per_second / 3600, 4),
                     "speakers": sorted({e["speaker_id"] for e in exs}),
                     "texts": len({e["target_text"] for e in exs}),  # what the answers say
                     "source_seconds": {q: round(float(np.percentile(src_s, v)), 2) if len(src_s) else None
                                        for q, v in (("p50", 50), ("p90", 90), ("max", 100))}}
        ratios = length_ratios(exs) if task != "clone" else {}
        if ratios:
            out[task]["length_ratio"] = ratios
    return out
