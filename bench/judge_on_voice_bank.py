"""The judge on a generated voice bank's prompt clips: voices, texts and rendering (direct, ~10 s,
no clone) it never trained on. Prints accuracy per task the way docs/judge.md reports it.

    .venv/bin/python bench/judge_on_voice_bank.py .cache/voice_bank/gen-40f88ae8ba [--judge DIR]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scorers.judge import LocalJudge  # noqa: E402
from scorers.judge.fit import evaluate  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bank", type=Path, help="a voice bank dir: <speaker>/<tag>.flac")
    ap.add_argument("--judge", default="scorers/artifacts/judge-v2")
    a = ap.parse_args()
    if not a.bank.is_dir():
        sys.exit(f"error: {a.bank}: not a directory")
    judge = LocalJudge.load(a.judge)
    speakers = sorted(d for d in a.bank.iterdir() if d.is_dir())
    for task, classes in judge.tasks.items():
        probs, labels, who = [], [], []
        for d in speakers:
            for i, c in enumerate(classes):
                if (d / f"{c}.flac").is_file():
                    p = judge.classify(d / f"{c}.flac", task)
                    probs.append([p[k] for k in classes])
                    labels.append(i)
                    who.append(d.name)
        if not probs:
            sys.exit(f"error: {a.bank}: no clips of {task} classes")
        ev = evaluate(np.array(probs), labels, who, classes)
        per = ", ".join(f"{k} {v:.2f}" for k, v in ev["per_class_mean_over_speakers"].items())
        print(f"{task}: n={ev['n']} clips of {len(set(who))} speakers, accuracy {ev['accuracy']:.3f}, tagged classes "
              f"(mean over speakers, then classes) {ev['tagged_accuracy_mean_over_classes']:.3f}; per class: {per}")


if __name__ == "__main__":
    main()
