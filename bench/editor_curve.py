"""Plot a training curve (train and held-out frame loss; phone loss where trained) from a training_log.jsonl.

    python bench/editor_curve.py editor/artifacts/decoder-v10/training_log.jsonl docs/editor_curve.png
    python bench/editor_curve.py editor/artifacts/tokenizer-v10/training_log.jsonl docs/tokenizer_curve.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def frame_loss(row: dict, split: str) -> float:
    """mel + ½ log-F0 + ⅕ voicing: the frame reconstruction, without the phone term of v3's runs."""
    return row[f"{split}_mel"] + 0.5 * row[f"{split}_lf0"] + 0.2 * row[f"{split}_vuv"]


def main(log_path: str, png: str) -> None:
    with open(log_path) as f:
        rows = [json.loads(line) for line in f]
    steps = [r["step"] for r in rows]
    phones = "train_phone" in rows[0]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [frame_loss(r, "train") for r in rows], label="frames, train (training speakers)")
    if "val_mel" in rows[0]:
        ax.plot(steps, [frame_loss(r, "val") for r in rows], label="frames, held-out speakers")
    ax.set_xlabel("step")
    ax.set_ylabel("frame loss (normalized L1 + aux)")
    ax.grid(alpha=0.3)
    if phones:   # the phone head's cross-entropy on its own axis
        ax2 = ax.twinx()
        ax2.plot(steps, [r["train_phone"] for r in rows], "--", color="tab:green", label="phones, train")
        if "val_phone" in rows[0]:
            ax2.plot(steps, [r["val_phone"] for r in rows], "--", color="tab:red", label="phones, held-out")
        ax2.set_ylabel("phone cross-entropy (nats)")
    handles = [h for a in fig.axes for h in a.get_lines()]
    fig.axes[-1].legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:3])
