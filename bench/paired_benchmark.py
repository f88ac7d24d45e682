"""Two editors on the editing benchmark, clip by clip: runs of `pipeline=edit_benchmark` over the same set
(the same n, seed and languages give the same prompts, speakers and per-request seeds), e.g. an SFT editor
and the same editor after DPO.

    python bench/paired_benchmark.py --a A/results.json --b B/results.json [--mode feedback] [--out JSON]

Cells pair by (source, mode, prompt id, iteration) within the editor's own run ("editor"); the two runs
must have been judged by the same judge, and a prompt id must name the same speaker and label in both
(else they are not runs of one set: an error). Per judged category (emotion, style) and iteration: the
judge's accuracy of each side and b - a in points, and for English clips the pocketsphinx WER of each
side and b - a, with 95 % bootstrap intervals that resample speakers (all of a drawn speaker's prompts
together, 4,000 draws, seeded): a speaker's prompts share a voice, so they are not independent, and
the benchmark holds few speakers, so the intervals are wide (none under 3 speakers). Accuracy here is the share of the paired prompts; the
benchmark's tables follow the seed's rule (per speaker, then per label, then languages), so their cells
read a few points apart from these. One prompt moves a share by 100 / prompts points: two editors differ
only where the interval leaves 0.
"""
import argparse
import json
from pathlib import Path

import numpy as np


def cells(path: Path, mode: str) -> dict:
    """(category, iteration) -> {prompt id: cell} of the editor's own chains in `mode`; "judge" -> the
    judge that scored them."""
    res = json.loads(Path(path).read_text())
    out = {"judge": res.get("judge")}
    for c in res["cells"]:
        if c.get("run") == "editor" and c.get("source") == "own" and c.get("mode") == mode:
            out.setdefault((c["category"], int(c["iter"])), {})[c["id"]] = c
    return out


def interval(diffs: np.ndarray, groups: list, rng: np.random.Generator, draws: int = 4000) -> list[float]:
    """The 95 % interval of the mean difference, resampling whole groups (speakers) with replacement;
    None under 3 groups, where resampling says nothing of the spread."""
    by = {}
    for d, g in zip(diffs, groups):
        by.setdefault(g, []).append(d)
    if len(by) < 3:
        return None
    clusters = [np.asarray(v) for v in by.values()]
    sums, counts = np.array([c.sum() for c in clusters]), np.array([len(c) for c in clusters])
    pick = rng.integers(0, len(clusters), size=(draws, len(clusters)))
    means = sums[pick].sum(1) / counts[pick].sum(1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def compare(a: dict, b: dict, seed: int = 0) -> dict:
    if a.get("judge") != b.get("judge"):
        raise SystemExit(f"the runs were judged by different judges ({a.get('judge')} and {b.get('judge')}): "
                         "their verdicts do not pair")
    rng = np.random.default_rng(seed)
    rows = {}
    for key in sorted(k for k in set(a) & set(b) if k != "judge"):
        ids = sorted(set(a[key]) & set(b[key]))
        if not ids:
            continue
        other = [i for i in ids if (a[key][i]["speaker"], a[key][i]["label"]) != (b[key][i]["speaker"], b[key][i]["label"])]
        if other:
            raise SystemExit(f"prompt {other[0]} is {a[key][other[0]]['speaker']}/{a[key][other[0]]['label']} in one run "
                             f"and {b[key][other[0]]['speaker']}/{b[key][other[0]]['label']} in the other: not runs of "
                             "the same benchmark set (same n, seed and languages)")
        spk = [a[key][i]["speaker"] for i in ids]
        row = {"prompts": len(ids)}
        acc_a = np.array([float(a[key][i]["correct"]) for i in ids])
        acc_b = np.array([float(b[key][i]["correct"]) for i in ids])
        row["accuracy_a"], row["accuracy_b"] = round(100 * acc_a.mean(), 1), round(100 * acc_b.mean(), 1)
        row["accuracy_b_minus_a"] = round(100 * (acc_b - acc_a).mean(), 1)
        row["speakers"] = len(set(spk))
        ci = interval(acc_b - acc_a, spk, rng)
        row["accuracy_ci"] = [round(100 * x, 1) for x in ci] if ci else None
        worded = [i for i in ids if a[key][i].get("wer") is not None and b[key][i].get("wer") is not None]
        if worded:
            wa = np.array([a[key][i]["wer"] for i in worded])
            wb = np.array([b[key][i]["wer"] for i in worded])
            row.update(wer_clips=len(worded), wer_a=round(float(wa.mean()), 3), wer_b=round(float(wb.mean()), 3),
                       wer_b_minus_a=round(float((wb - wa).mean()), 3),
                       wer_ci=interval(wb - wa, [a[key][i]["speaker"] for i in worded], rng))
        rows[f"{key[0]}_iter{key[1]}"] = row
    if not rows:
        raise SystemExit("the two runs share no cell: not runs of the same benchmark set")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True), ap.add_argument("--b", required=True)
    ap.add_argument("--mode", default="feedback", choices=["feedback", "prompt_fixed"])
    ap.add_argument("--out")
    args = ap.parse_args()
    res = {"a": args.a, "b": args.b, "mode": args.mode,
           "rows": compare(cells(Path(args.a), args.mode), cells(Path(args.b), args.mode))}
    span = lambda ci, f: f"{ci[0]:{f}}..{ci[1]:{f}}" if ci else "too few speakers for an interval"  # noqa: E731
    for name, r in res["rows"].items():
        line = (f"{name:22s} n={r['prompts']:3d}  accuracy {r['accuracy_a']:5.1f} -> {r['accuracy_b']:5.1f} "
                f"({r['accuracy_b_minus_a']:+.1f}, {span(r['accuracy_ci'], '+.1f')})")
        if "wer_a" in r:
            line += (f"  WER {r['wer_a']:.2f} -> {r['wer_b']:.2f} ({r['wer_b_minus_a']:+.3f}, "
                     f"{span(r['wer_ci'], '+.3f')})")
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
