"""Two codecs' margin ceilings on the same edits, paired: runs of bench/margin_ceiling.py over the same
--data, --split, --per-task and --seed, each naming its codecs.

    python bench/paired_ceilings.py --a v3 --b v10 --runs ceiling_seed0.json:ceiling_v10_seed0.json,... [--out JSON]

--a and --b pick a codec by a part of its TOKENIZER:DECODER name; each run is one seed, given as the file
that holds codec a and the file that holds codec b (the same file twice when one run measured both). Per
task: each side's median ceiling over every edit of every run, and the median and mean of b - a per edit
with a 95 % bootstrap interval of the median (edits resampled 4,000 times, seeded). Only the ceiling is
compared: the data's own margin and the round trip of the source are the same clips for both.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_margins import command_without  # noqa: E402

TASKS = ("emotion_edit", "style_edit")


def _codec(run: dict, part: str, path: str) -> dict:
    names = [k for k in run["codecs"] if part in k]
    if len(names) != 1:
        raise SystemExit(f"{path}: codec '{part}' matches {names or 'none'} of {list(run['codecs'])}")
    return run["codecs"][names[0]]


def _picks(run: dict) -> str:
    """A run's command without its codecs and output path: what must be equal for the edits to pair."""
    return " ".join(command_without(run["command"], ("--codec", "--out")))


def compare(a: str, b: str, runs: list[tuple[str, str]], boots: int = 4000) -> dict:
    xs, ys = {t: [] for t in TASKS}, {t: [] for t in TASKS}
    for fa, fb in runs:
        ra, rb = json.loads(Path(fa).read_text()), json.loads(Path(fb).read_text())
        if _picks(ra) != _picks(rb):
            raise SystemExit(f"{fa} and {fb} measured different edits:\n  {_picks(ra)}\n  {_picks(rb)}")
        ca, cb = _codec(ra, a, fa), _codec(rb, b, fb)
        for t in TASKS:
            if ca[t]["per_clip"]["data"] != cb[t]["per_clip"]["data"]:
                raise SystemExit(f"{fa} and {fb}: the data's own {t} margins differ, so the edits do not pair")
            xs[t] += ca[t]["per_clip"]["ceiling"]
            ys[t] += cb[t]["per_clip"]["ceiling"]
    rng, out = np.random.default_rng(0), {"a": a, "b": b, "runs": [list(r) for r in runs]}
    for t in TASKS:
        x, y = np.array(xs[t]), np.array(ys[t])
        d = y - x
        med = [float(np.median(d[rng.integers(0, len(d), len(d))])) for _ in range(boots)]
        out[t] = {"n": len(d), "a_median": round(float(np.median(x)), 2), "b_median": round(float(np.median(y)), 2),
                  "a_share_ge_6": round(float((x >= 6).mean()), 2), "b_share_ge_6": round(float((y >= 6).mean()), 2),
                  "diff_median": round(float(np.median(d)), 2), "diff_mean": round(float(d.mean()), 2),
                  "diff_median_95ci": [round(float(v), 2) for v in np.percentile(med, [2.5, 97.5])]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="part of codec a's TOKENIZER:DECODER name")
    ap.add_argument("--b", required=True, help="part of codec b's TOKENIZER:DECODER name")
    ap.add_argument("--runs", required=True, help="comma-separated FILE_A:FILE_B, one per seed")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    runs = []
    for r in args.runs.split(","):
        if r.count(":") != 1:
            raise SystemExit(f"--runs: '{r}' is not FILE_A:FILE_B")
        runs.append(tuple(r.split(":")))
    res = compare(args.a, args.b, runs)
    print(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
