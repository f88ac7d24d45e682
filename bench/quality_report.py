"""Quality of emotion/style triplets: speaker similarity, separability, acoustic margins, WER.

    LMS_CACHE_DIR=/tmp/lms-bench/cache .venv/bin/python run.py pipeline=style_triplets output_dir=/tmp/q \
        languages=[en] texts_per_tag=1 margin.enabled=false splits.enabled=false       # raw generation, no selection
    LMS_CACHE_DIR=/tmp/lms-bench/cache .venv/bin/python run.py output_dir=/tmp/q \
        texts_per_tag=1 margin.enabled=false splits.enabled=false
    .venv/bin/python bench/quality_report.py /tmp/q/emotion_triplets /tmp/q/style_triplets --out docs

Writes docs/quality.md and confusion-matrix PNGs."""
import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def pct(a):
    a = np.asarray(a)
    return f"median {np.median(a):.3f} (p10 {np.percentile(a, 10):.3f}, p90 {np.percentile(a, 90):.3f}, n={len(a)})"


def speaker_similarity(samples):
    from resemblyzer import VoiceEncoder, preprocess_wav
    enc = VoiceEncoder("cpu", verbose=False)
    e = {(s["key"], r): enc.embed_utterance(preprocess_wav(s[r], source_sr=16000)) for s in samples for r in ("src", "tgt")}
    same = [float(e[(s["key"], "src")] @ e[(s["key"], "tgt")]) for s in samples]
    cross_neutral = [float(e[(a["key"], "src")] @ e[(b["key"], "src")]) for a in samples for b in samples
                     if a["json"]["speaker"] != b["json"]["speaker"] and a["json"]["language"] == b["json"]["language"]
                     and a["json"]["edit_info"] == b["json"]["edit_info"]]
    cross_pair = [float(e[(a["key"], "src")] @ e[(b["key"], "tgt")]) for a in samples for b in samples
                  if a["json"]["speaker"] != b["json"]["speaker"] and a["json"]["language"] == b["json"]["language"]
                  and a["json"]["edit_info"] == b["json"]["edit_info"]]
    return same, cross_neutral, cross_pair


def confusion(samples, tags, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from scorers.features import pair_features
    train = {s for s in {x["json"]["speaker"] for x in samples} if s.endswith("1")}
    X = np.array([pair_features(s["json"]["acoustics"]) for s in samples])
    y = np.array([tags.index(s["json"]["edit_info"]) for s in samples])
    tr = np.array([s["json"]["speaker"] in train for s in samples])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X[tr], y[tr])
    pred = clf.predict(X[~tr])
    cm = confusion_matrix(y[~tr], pred, labels=range(len(tags)))
    fig, ax = plt.subplots(figsize=(0.35 * len(tags) + 2, 0.35 * len(tags) + 1.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(tags)), tags, rotation=90, fontsize=7)
    ax.set_yticks(range(len(tags)), tags, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(tags)):
        for j in range(len(tags)):
            if cm[i, j]:
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=6)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return float((pred == y[~tr]).mean()), sorted(train), int(tr.sum()), int((~tr).sum())


def margins_table(samples, tags):
    keys = [("f0_median_st", "ΔF0 st"), ("f0_range_st", "ΔF0 range st"), ("energy_db", "Δlevel dB"),
            ("tilt_db_oct", "Δtilt dB/oct"), ("ap_low", "Δaperiodicity"), ("voiced_ratio", "Δvoiced")]
    rows = ["| tag | n | " + " | ".join(k[1] for k in keys) + " | rate ratio |", "|---" * (len(keys) + 3) + "|"]
    for t in tags:
        ss = [s["json"]["acoustics"] for s in samples if s["json"]["edit_info"] == t]
        if not ss:
            continue
        cells = []
        for k, _ in keys:
            d = [a["tgt"][k] - a["src"][k] for a in ss
                 if a["tgt"].get(k) is not None and a["src"].get(k) is not None
                 and np.isfinite(a["tgt"][k]) and np.isfinite(a["src"][k])]
            cells.append(f"{np.median(d):+.2f}" if d else "n/a")
        rate = np.median([a["tgt"]["rate_syl_s"] / a["src"]["rate_syl_s"] for a in ss])
        rows.append(f"| {t} | {len(ss)} | " + " | ".join(cells) + f" | {rate:.2f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("emotion_dir")
    ap.add_argument("style_dir", nargs="?")
    ap.add_argument("--out", default="docs")
    a = ap.parse_args()
    from conftest import read_samples

    from core.tags import EMOTIONS, STYLES
    from scorers.asr import wer_of
    out = Path(a.out)
    md = ["# Quality of emotion and style triplets", "",
          "Emotions and styles here are prosodic renderings by the embedded engine (a proxy for acted speech). "
          "Produced by:", "", "```", *(__doc__.strip().splitlines()[1:5]), "```", ""]
    emo = read_samples(Path(a.emotion_dir))
    same, cross_n, cross_p = speaker_similarity(emo)
    md += ["## Same speaker (resemblyzer cosine similarity, emotion triplets)", "",
           f"- neutral vs emotional clip of one speaker: {pct(same)}",
           f"- neutral clips of two different speakers (same language, same tag's text): {pct(cross_n)}",
           f"- neutral clip of one speaker vs emotional clip of another: {pct(cross_p)}", ""]
    en = [s for s in emo if s["json"]["language"] == "en"]
    w_src = [wer_of(s["src"], 16000, s["json"]["text"]) for s in en]
    w_tgt = {}
    for s in en:
        w_tgt.setdefault(s["json"]["edit_info"], []).append(wer_of(s["tgt"], 16000, s["json"]["text"]))
    md += ["## Intelligibility (pocketsphinx, English)", "",
           f"- neutral clips: mean WER {np.mean(w_src):.3f} (n={len(w_src)})",
           f"- emotional clips: mean WER {np.mean([w for v in w_tgt.values() for w in v]):.3f}; per tag: " +
           ", ".join(f"{t} {np.mean(v):.2f}" for t, v in w_tgt.items()), ""]
    acc, train, ntr, nte = confusion(emo, list(EMOTIONS), out / "confusion_emotions.png")
    md += ["## Emotions are separable on held-out speakers", "",
           f"Logistic regression on src→tgt acoustic deltas (scorers/features.py), trained on speakers {train} "
           f"({ntr} pairs), tested on the others ({nte} pairs): accuracy **{acc:.2f}** (chance {1 / 14:.2f}).", "",
           "![emotion confusion](confusion_emotions.png)", "", "Median acoustic change per emotion:", "",
           margins_table(emo, EMOTIONS), ""]
    if a.style_dir:
        sty = read_samples(Path(a.style_dir))
        acc, train, ntr, nte = confusion(sty, list(STYLES), out / "confusion_styles.png")
        en = [s for s in sty if s["json"]["language"] == "en"]
        ws = [wer_of(s["tgt"], 16000, s["json"]["text"]) for s in en]
        md += ["## Styles are separable on held-out speakers", "",
               f"Same classifier, speakers {train} for training ({ntr} pairs), others for testing ({nte} pairs): "
               f"accuracy **{acc:.2f}** (chance {1 / 32:.2f}). English styled clips: mean WER {np.mean(ws):.3f}.", "",
               "![style confusion](confusion_styles.png)", "", "Median acoustic change per style:", "",
               margins_table(sty, STYLES), ""]
    (out / "quality.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
