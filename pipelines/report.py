"""Per-run report: report.md with PNG plots, written into the release next to run.json.

Samples and audio per tag, language and speaker; margin and quality histograms; drops by reason;
each stage's CPU time, throughput and share of the run."""
import json
from pathlib import Path

import pandas as pd


def _hist(values, path: Path, title: str, bins=20, rng=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(values, bins=bins, range=rng, color="#4a7ab5")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _barh(counts: pd.Series, path: Path, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(counts) + 1))
    ax.barh(list(map(str, counts.index)), counts.values, color="#b5654a")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def audio_span(hours: float) -> str:
    """An amount of audio in the unit that keeps it readable: a 3 s edit is not "0.0 min"."""
    s = hours * 3600
    return f"{s:.1f} s" if s < 60 else f"{s / 60:.1f} min" if s < 3600 else f"{hours:.2f} h"


def write_report(release: Path, info: dict, manifest: list[dict], rejects: list[dict]) -> Path:
    m, r = pd.DataFrame(manifest), pd.DataFrame(rejects)
    md = [f"# {info['pipeline']} run report", "",
          f"{info['counts']['kept']} kept, {info['counts']['rejected']} rejected, "
          f"{audio_span(info['audio_hours'])} of audio, {info['wall_s']:.0f} s wall, "
          f"{info['counts'].get('reused_from_previous', 0)} reused from the previous release.", ""]
    if len(m):
        m["audio_s"] = [sum(json.loads(d).values()) if isinstance(d, str) else 0 for d in m.get("durations", [])]
        for col in ("edit_info", "language", "speaker", "split"):
            if col in m and m[col].notna().any():
                g = m.groupby(m[col].astype(str)).agg(samples=("key", "size"), audio_min=("audio_s", "sum"))
                g["audio_min"] = (g["audio_min"] / 60).round(2)
                md += [f"## By {col}", "", _table(g.reset_index()), ""]
        if "margin" in m and m["margin"].notna().any():
            _hist(m["margin"].dropna(), release / "report_margin.png", "margin score (kept)", bins=18, rng=(1, 10))
            md += ["## Margin", "", "![margin](report_margin.png)", ""]
        q = pd.json_normalize([json.loads(x) for x in m["quality"]]) if "quality" in m else pd.DataFrame()
        for col in q.columns:
            _hist(q[col].dropna(), release / f"report_{col}.png", col)
            md += [f"## {col}", "", f"![{col}](report_{col}.png)", ""]
        if "speaker_sim" in m and m["speaker_sim"].notna().any():
            _hist(m["speaker_sim"].dropna(), release / "report_speaker_sim.png", "speaker similarity src-tgt")
            md += ["## Speaker similarity of pairs", "", "![speaker_sim](report_speaker_sim.png)", ""]
    if len(r):
        reasons = (r["stage"] + ":" + r["reason"]).value_counts()
        _barh(reasons, release / "report_drops.png", "drops by reason")
        md += ["## Drops by reason", "", _table(reasons.rename_axis("reason").reset_index(name="count")), "",
               "![drops](report_drops.png)", ""]
    cpu = info.get("stage_cpu_s") or {}
    if cpu:
        total = sum(cpu.values()) or 1.0
        kept = max(info["counts"]["kept"], 1)
        rows = pd.DataFrame([{"stage": k, "cpu_s": round(v, 1), "share": f"{100 * v / total:.0f} %",
                              "samples_per_cpu_s": round(kept / v, 2) if v else None} for k, v in cpu.items()])
        md += ["## Stages", "", _table(rows), "",
               f"Whole run: {info['throughput_samples_per_s']} samples/s over {info['wall_s']:.0f} s wall.", ""]
    path = release / "report.md"
    path.write_text("\n".join(md))
    return path
