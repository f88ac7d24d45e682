"""Evaluation of a margin scorer on held-out pairs: Spearman, MAE, keep/drop accuracy, scatter plot."""
from pathlib import Path

import numpy as np


def metrics(pred: np.ndarray, label: np.ndarray, threshold: float = 6.0) -> dict:
    from scipy.stats import spearmanr
    return {"n": int(len(label)), "spearman": float(spearmanr(pred, label).statistic),
            "mae": float(np.mean(np.abs(pred - label))),
            "keep_drop_accuracy": float(np.mean((pred >= threshold) == (label >= threshold))),
            "threshold": threshold}


def scatter(pred, label, kinds, path: Path, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    rng = np.random.default_rng(0)
    for kind in sorted(set(kinds)):
        m = np.array([k == kind for k in kinds])
        ax.scatter(label[m] + rng.uniform(-0.15, 0.15, m.sum()), pred[m], s=10, alpha=0.6, label=kind)
    ax.plot([1, 10], [1, 10], "k--", lw=0.8)
    ax.axhline(6, color="r", lw=0.6)
    ax.axvline(6, color="r", lw=0.6)
    ax.set_xlabel("label (jittered)")
    ax.set_ylabel("predicted margin")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
