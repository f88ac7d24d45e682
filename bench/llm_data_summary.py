"""The audio LLM's data of one factory output directory, as docs/llm.md tabulates it: per task, the training
split's examples, answer hours and distinct answer texts (what the trainer's training.json records), and the
held-out texts that are also training texts (a text spoken in the validation or test split of any pipeline
and in the training split of any pipeline).

    python bench/llm_data_summary.py outputs_v5 [--out JSON]

Reads OUT/*_tokens/latest (the examples, editor/llm/data.py) and the audio releases OUT/<pipeline>/latest
beside them (the texts and splits of every sample).
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.reader import Release                                # noqa: E402
from editor.llm import data as llm_data                        # noqa: E402

TOKENS_PER_SECOND = 41.67          # the codec's audio ids per second (16.7 linguistic + 25 semantic)


def training_summary(out: Path) -> dict:
    rel = llm_data.token_release(sorted(str(d) for d in out.glob("*_tokens")))
    summary = llm_data.summary(llm_data.load_examples(rel, "train"), TOKENS_PER_SECOND)
    rows = {t: {k: v[k] for k in ("examples", "target_hours", "texts")} for t, v in sorted(summary.items())}
    rows["all"] = {"examples": sum(v["examples"] for v in rows.values()),
                   "target_hours": round(sum(v["target_hours"] for v in rows.values()), 2)}
    return rows


def texts_across_splits(out: Path) -> dict:
    tasks_of = defaultdict(lambda: defaultdict(set))              # split -> text -> tasks speaking it
    for d in sorted(out.glob("*_tokens")):
        audio = out / d.name.removesuffix("_tokens") / "latest"
        for row in Release(str(audio)).select().itertuples():
            tasks_of[row.split][row.text].add(row.task)
    train = tasks_of["train"]
    report = {}
    for split in ("validation", "test"):
        held = tasks_of[split]
        per_task = defaultdict(lambda: [0, 0])
        for text, tasks in held.items():
            for task in tasks:
                per_task[task][0] += text in train
                per_task[task][1] += 1
        report[split] = {"texts": len(held), "also_training_texts": sum(t in train for t in held),
                         "per_task": {t: f"{a}/{n}" for t, (a, n) in sorted(per_task.items())}}
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="a factory output directory holding <pipeline>/ and <pipeline>_tokens/")
    ap.add_argument("--out", dest="json_out")
    a = ap.parse_args(argv)
    out = Path(a.out)
    report = {"command": " ".join(["python bench/llm_data_summary.py", *(argv or sys.argv[1:])]),
              "train": training_summary(out), "held_out_texts": texts_across_splits(out)}
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
