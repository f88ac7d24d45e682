"""Two editors' margins on the same edits, paired: runs of bench/editor_llm_eval.py that differ in one
setting (int8 against float, another codec analysis, ...) over the same samples and seeds.

    python bench/paired_margins.py --a A_seed0.json,A_seed1.json --b B_seed0.json,B_seed1.json [--out JSON]

The i-th file of --a pairs with the i-th of --b (same --split, --per-task, --seed). Edits pair by sample
key, so --data may list other releases beside the shared ones (a guided run of emotion and style only
against a run of every task): each release's samples are picked and edited task by task, the same
whatever else is listed, and a task with no shared key is left out. Per task and
iteration: the mean and median margin of each side, the share >= 6, and the mean of b - a over every
(sample, seed) with a 95 % bootstrap interval (samples resampled 4,000 times with all their seeds,
seeded). Paired runs must have the same command but for --data, --quantize, --f0-decimation,
--tokenizer, --decoder, --llm, the decoding options (--temperature, --top-p, --duration-window,
--guidance, --guided-iterations) and --out.
"""
import argparse
import json
from pathlib import Path

import numpy as np


COMPARED = ("--data", "--quantize", "--f0-decimation", "--tokenizer", "--decoder", "--llm", "--out", "--temperature",
            "--top-p", "--duration-window", "--guidance", "--guided-iterations")


def command_without(command: str, options) -> list[str]:
    """A run's command without the given options and their values (`--opt value` or `--opt=value`)."""
    words, out, skip = command.split(), [], False
    for w in words:
        if skip:
            skip = False
        elif w in options:
            skip = True
        elif not w.startswith(tuple(o + "=" for o in options)):
            out.append(w)
    return out


def paired(a_files: list[str], b_files: list[str]) -> dict:
    if len(a_files) != len(b_files):
        raise ValueError(f"--a has {len(a_files)} files, --b {len(b_files)}: pair them one to one")
    runs = [(json.loads(Path(x).read_text()), json.loads(Path(y).read_text())) for x, y in zip(a_files, b_files)]
    for (ra, rb), x, y in zip(runs, a_files, b_files):
        if command_without(ra["command"], COMPARED) != command_without(rb["command"], COMPARED):
            raise ValueError(f"{x} and {y} differ in more than the compared setting:\n  {ra['command']}\n  {rb['command']}")
    rng, out = np.random.default_rng(0), {}
    for task in ("emotion_edit", "style_edit"):
        for it in (0, 1):
            a, b, keys = [], [], []
            for ra, rb in runs:
                clips_b = {c["key"]: c for c in rb["per_clip"].get(task, [])}
                for c in ra["per_clip"].get(task, []):
                    if c["key"] in clips_b:
                        a.append(c["margin"][it])
                        b.append(clips_b[c["key"]]["margin"][it])
                        keys.append(c["key"])
            if not a:
                continue
            a, b, keys = np.array(a), np.array(b), np.array(keys)
            # resample samples, not (sample, seed) pairs: a sample's seeds share its text and voice
            by_key = [np.flatnonzero(keys == k) for k in np.unique(keys)]
            boot = []
            for _ in range(4000):
                idx = np.concatenate([by_key[i] for i in rng.integers(len(by_key), size=len(by_key))])
                boot.append((b[idx] - a[idx]).mean())
            out[f"{task} iteration {it + 1}"] = {
                "pairs": len(a), "samples": len(by_key), "a_mean": round(a.mean(), 2), "b_mean": round(b.mean(), 2),
                "a_median": round(float(np.median(a)), 2), "b_median": round(float(np.median(b)), 2),
                "a_share_ge_6": round(float((a >= 6).mean()), 2), "b_share_ge_6": round(float((b >= 6).mean()), 2),
                "b_minus_a": round(float((b - a).mean()), 2),
                "ci95": [round(float(v), 2) for v in np.percentile(boot, [2.5, 97.5])]}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    report = {"a": a.a.split(","), "b": a.b.split(","), "paired": paired(a.a.split(","), a.b.split(","))}
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    for k, v in report["paired"].items():
        print(f"{k:28s} {json.dumps(v)}")


if __name__ == "__main__":
    main()
