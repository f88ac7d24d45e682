"""Plot a decoder's training curve (train and held-out loss) from its training_log.jsonl.

    python bench/editor_curve.py editor/artifacts/decoder-v2/training_log.jsonl docs/editor_curve.png
    python bench/editor_curve.py editor/artifacts/tokenizer-v2/training_log.jsonl docs/tokenizer_curve.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(log_path: str, png: str) -> None:
    with open(log_path) as f:
        rows = [json.loads(line) for line in f]
    steps = [r["step"] for r in rows]
    plt.figure(figsize=(6, 3.5))
    plt.plot(steps, [r["train_total"] for r in rows], label="train (training speakers)")
    if "val_total" in rows[0]:
        plt.plot(steps, [r["val_total"] for r in rows], label="held-out speakers")
    plt.xlabel("step")
    plt.ylabel("loss (normalized L1 + aux)")
    plt.legend()
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(png, dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:3])
