"""From cells (one per clip) to the seed's tables: accuracy per category and iteration, per language
and averaged; per label; generalisation; paralinguistic; and PNG plots of accuracy by iteration.

Accuracy follows the seed's rule: per label, the accuracy of each speaker averaged over speakers,
then the mean over labels; "average" is the mean of the languages' numbers. Failed cells count as
wrong (judge) or 1 (paralinguistic) and are counted in their own column."""
from collections import defaultdict
from pathlib import Path

import numpy as np

JUDGED = ("emotion", "style")


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def seed_accuracy(cells: list[dict]) -> float | None:
    by_label = defaultdict(lambda: defaultdict(list))
    for c in cells:
        by_label[c["label"]][c["speaker"]].append(bool(c["correct"]))
    return _mean([_mean([_mean(v) for v in spk.values()]) for spk in by_label.values()])


def _row_key(c):
    return c["run"], c["source"], c["mode"]


def summarize(cells: list[dict]) -> dict:
    """{"judged": [{run, source, mode, category, language, iter, accuracy, n, failed, similarity, wer}],
        "labels": [... per label, languages pooled ...], "paralinguistic": [{run, column, language, score, ...}]}"""
    judged, labels, para = defaultdict(list), defaultdict(list), defaultdict(list)
    for c in cells:
        if c["category"] in JUDGED:
            judged[(*_row_key(c), c["category"], c["language"], c["iter"])].append(c)
            labels[(*_row_key(c), c["category"], c["label"], c["iter"])].append(c)
        else:
            para[(c["run"], c["mode"], c["language"])].append(c)
    out = {"judged": [], "labels": [], "paralinguistic": []}
    for (run, source, mode, cat, lang, it), cs in sorted(judged.items()):
        out["judged"].append({"run": run, "source": source, "mode": mode, "category": cat, "language": lang, "iter": it,
                              "accuracy": seed_accuracy(cs), "n": len(cs), "failed": sum("failed" in c for c in cs),
                              "neutral": _mean([c.get("predicted") == "neutral" for c in cs]),
                              "similarity": _mean([c.get("similarity") for c in cs]),
                              "wer": _mean([c.get("wer") for c in cs])})
    for (run, source, mode, cat, label, it), cs in sorted(labels.items()):
        out["labels"].append({"run": run, "source": source, "mode": mode, "category": cat, "label": label, "iter": it,
                              "accuracy": seed_accuracy(cs), "n": len(cs)})
    for (run, col, lang), cs in sorted(para.items()):
        out["paralinguistic"].append({"run": run, "column": col, "language": lang, "score": _mean([c["score"] for c in cs]),
                                      "n": len(cs), "failed": sum("failed" in c for c in cs),
                                      "found": _mean([len(c.get("found", [])) / max(1, len(c.get("found", [])) + len(c.get("missing", [1])))
                                                      for c in cs]),
                                      "wer": _mean([c.get("wer") for c in cs])})
    return out


def _fmt(x, pct=False):
    if x is None:
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x:.2f}"


def _rows_with_average(rows: list[dict], key) -> dict:
    """{(row key..., language or 'average', iter): row} with the languages' mean as 'average'."""
    out = {}
    for r in rows:
        out[(*key(r), r["language"], r["iter"])] = r
    groups = defaultdict(list)
    for r in rows:
        groups[(*key(r), r["iter"])].append(r)
    for (*k, it), rs in groups.items():
        if len(rs) > 1:
            out[(*k, "average", it)] = {"accuracy": _mean([r["accuracy"] for r in rs]), "n": sum(r["n"] for r in rs),
                                        "failed": sum(r["failed"] for r in rs), "neutral": _mean([r["neutral"] for r in rs]),
                                        "similarity": _mean([r["similarity"] for r in rs]), "wer": _mean([r["wer"] for r in rs])}
    return out


def markdown(summary: dict, n_iter: int, header: str = "") -> str:
    lines = [header] if header else []
    its = list(range(n_iter + 1))
    for cat in JUDGED:
        rows = [r for r in summary["judged"] if r["category"] == cat]
        if not rows:
            continue
        table = _rows_with_average(rows, lambda r: (r["run"], r["source"], r["mode"]))
        keys = sorted({k[:4] for k in table}, key=lambda k: (k[0] != "editor", k[1] != "own", k[2], k[3] == "average", k[3]))
        lines += [f"\n### {cat.capitalize()} accuracy (%), judge per clip\n",
                  "| editor | source | mode | language | " + " | ".join(f"Iter{k}" for k in its)
                  + f" | heard as neutral (Iter{n_iter}) | similarity to Iter0 (Iter{n_iter}) | WER en (Iter{n_iter}) | clips | failed |",
                  "|" + "---|" * (len(its) + 9)]
        for k in keys:
            cells = [table.get((*k, it)) for it in its]
            last = next((c for c in reversed(cells) if c), None)
            lines.append(f"| {' | '.join(k)} | " + " | ".join(_fmt(c and c["accuracy"], True) for c in cells)
                         + f" | {_fmt(last and last['neutral'], True)} | {_fmt(last and last['similarity'])} | {_fmt(last and last['wer'])} | "
                           f"{sum(c['n'] for c in cells if c)} | {sum(c['failed'] for c in cells if c)} |")
        lab = [r for r in summary["labels"] if r["category"] == cat and r["source"] == "own"]
        if lab:
            lines += [f"\n#### {cat.capitalize()} accuracy per label (%), both languages, source own\n",
                      "| editor | mode | label | " + " | ".join(f"Iter{k}" for k in its) + " |", "|" + "---|" * (len(its) + 3)]
            by = defaultdict(dict)
            for r in lab:
                by[(r["run"], r["mode"], r["label"])][r["iter"]] = r["accuracy"]
            for (run, mode, label), v in sorted(by.items()):
                lines.append(f"| {run} | {mode} | {label} | " + " | ".join(_fmt(v.get(it), True) for it in its) + " |")
    para = summary["paralinguistic"]
    if para:
        cols = sorted({(r["run"], r["column"]) for r in para}, key=lambda c: (c[0] != "editor", c[1]))
        langs = sorted({r["language"] for r in para})
        idx = {(r["run"], r["column"], r["language"]): r for r in para}
        lines += ["\n### Paralinguistic score (1-3, mean), events found (share)\n",
                  "| language | " + " | ".join(f"{run} {col}" for run, col in cols) + " |", "|" + "---|" * (len(cols) + 1)]
        for lang in [*langs, "average"] if len(langs) > 1 else langs:
            vals = []
            for run, col in cols:
                rs = [idx[(run, col, l)] for l in langs if (run, col, l) in idx] if lang == "average" else \
                    [idx[(run, col, lang)]] if (run, col, lang) in idx else []
                vals.append(f"{_fmt(_mean([r['score'] for r in rs]))} ({_fmt(_mean([r['found'] for r in rs]))})" if rs else "-")
            lines.append(f"| {lang} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def plots(summary: dict, n_iter: int, out_dir: Path) -> list[Path]:
    """accuracy_<category>.png: accuracy (mean of languages) by iteration, one line per editor/source/mode."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = []
    for cat in JUDGED:
        rows = [r for r in summary["judged"] if r["category"] == cat]
        if not rows:
            continue
        table = _rows_with_average(rows, lambda r: (r["run"], r["source"], r["mode"]))
        langs = {r["language"] for r in rows}
        which = "average" if len(langs) > 1 else next(iter(langs))
        fig, ax = plt.subplots(figsize=(6, 4))
        for k in sorted({k[:3] for k in table}):
            xs = [it for it in range(n_iter + 1) if table.get((*k, which, it)) and table[(*k, which, it)]["accuracy"] is not None]
            ax.plot(xs, [100 * table[(*k, which, it)]["accuracy"] for it in xs], marker="o", label=" / ".join(k))
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{cat} accuracy (%), {which}")
        ax.set_xticks(range(n_iter + 1))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = Path(out_dir) / f"accuracy_{cat}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out.append(p)
    return out
