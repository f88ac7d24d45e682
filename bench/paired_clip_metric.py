"""One per-clip number of two editors' bench/editor_llm_eval.py runs, paired over the same edits (every
task, every seed): the mean of b - a with a 95 % bootstrap interval over the edits. Margins have their
own comparison per task and iteration (bench/paired_margins.py); this one is for any other number a
clip carries: the word error rate and speaker similarity (every task), the share of silence removed
(trims), the speed error, ...

    python bench/paired_clip_metric.py --a A_seed0.json,A_seed1.json --b B_seed0.json,B_seed1.json \
        --metric wer [--language en] [--better lower|higher] [--out JSON]

The i-th file of --a pairs with the i-th of --b (runs that differ only in what paired_margins.py
compares); edits pair by task and sample key, and the bootstrap resamples samples with all their seeds."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_margins import COMPARED, command_without  # noqa: E402


LOWER_IS_BETTER = ("wer", "speed_error")


def clips(run: dict, metric: str, language: str | None, path: str) -> dict:
    if not isinstance(run.get("per_clip"), dict):
        raise ValueError(f"{path}: no per_clip results (not a bench/editor_llm_eval.py run?)")
    out = {}
    for task, cs in run["per_clip"].items():
        for c in cs:
            v = c.get(metric)
            if v is None or (language is not None and c.get("language") != language):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{path}: {task} {c.get('key')}: {metric}={v!r} is not one number per clip")
            out[(task, c["key"])] = v
    return out


def compare(a_files: list[str], b_files: list[str], metric: str, language: str | None = None,
            boots: int = 4000, seed: int = 0, better: str | None = None) -> dict:
    better = better or ("lower" if metric in LOWER_IS_BETTER else "higher")
    if better not in ("lower", "higher"):
        raise ValueError(f"better={better!r}: lower or higher")
    if len(a_files) != len(b_files):
        raise ValueError(f"--a has {len(a_files)} runs, --b {len(b_files)}: pair them one to one")
    a_vals, b_vals, keys, tasks, only = [], [], [], {}, {"a_only": 0, "b_only": 0}
    for fa, fb in zip(a_files, b_files):
        ra, rb = json.loads(Path(fa).read_text()), json.loads(Path(fb).read_text())
        if command_without(ra["command"], COMPARED) != command_without(rb["command"], COMPARED):
            raise ValueError(f"{fa} and {fb} differ in more than the compared setting:\n  {ra['command']}\n  {rb['command']}")
        a, b = clips(ra, metric, language, fa), clips(rb, metric, language, fb)
        only["a_only"] += len(a.keys() - b.keys())     # edits of one run only: left out, and counted
        only["b_only"] += len(b.keys() - a.keys())
        for k in sorted(a.keys() & b.keys()):
            a_vals.append(a[k])
            b_vals.append(b[k])
            keys.append(k)
            tasks[k[0]] = tasks.get(k[0], 0) + 1
    if not a_vals:
        raise ValueError(f"no edit with {metric!r}{' in ' + language if language else ''} is in both --a and --b")
    a_arr, b_arr = np.array(a_vals, float), np.array(b_vals, float)
    d = b_arr - a_arr
    # resample samples, not (sample, seed) pairs: a sample's seeds share its text and voice
    groups = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    groups = list(groups.values())
    rng = np.random.default_rng(seed)
    means = [d[np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])].mean()
             for _ in range(boots)]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"metric": metric, "language": language, "pairs": len(d), "samples": len(groups), "per_task": tasks, **only, "better": better,
            "a_mean": round(float(a_arr.mean()), 4), "b_mean": round(float(b_arr.mean()), 4),
            "a_median": round(float(np.median(a_arr)), 4), "b_median": round(float(np.median(b_arr)), 4),
            "b_minus_a": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "b_better_share": round(float(np.mean(d < 0) if better == "lower" else np.mean(d > 0)), 3)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--metric", default="wer", help="a per-clip field: wer, speaker_sim, ...")
    ap.add_argument("--language", default=None, help="only edits of this language (en for WER)")
    ap.add_argument("--better", choices=("lower", "higher"), default=None,
                    help=f"which way is better (default: lower for {', '.join(LOWER_IS_BETTER)}, else higher)")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    res = {"a": a.a.split(","), "b": a.b.split(","),
           **compare(a.a.split(","), a.b.split(","), a.metric, a.language, better=a.better)}
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
