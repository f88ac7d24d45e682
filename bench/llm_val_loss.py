"""Validation loss of several editor LLMs on the same examples, per task: the trainer's own number
(`best_val_loss` in training.json) is over its own data's validation split, so two models trained on
different data are not compared by it. Here every model reads the same token releases' split, packed
once, with the trainer's loss (mean over the answer tokens).

  python bench/llm_val_loss.py --llm editor/artifacts/editor-llm-v12 DIR2 --data outputs_v5/emotion_triplets_tokens,... \
      [--split validation] [--batches 2] [--rows 8] --out result.json

--batches bounds the cost on a CPU: at most that many packed batches of --rows x --max-len tokens per
task, a random subset of the task's examples (fixed by --seed) when they need more. The models must
speak the data's codec and share one vocabulary (so they read the very same subset)."""
import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from editor.llm import data as llm_data, model as llm_model  # noqa: E402
from editor.llm.batches import eval_batches  # noqa: E402
from editor.llm.editor import codec_version_of  # noqa: E402
from editor.llm.train import check_init_codec, evaluate, loss_tokens  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llm", nargs="+", required=True, help="editor LLM directories")
    ap.add_argument("--data", required=True, help="token releases, comma-separated")
    ap.add_argument("--split", default="validation")
    ap.add_argument("--batches", type=int, default=2, help="packed batches per task at most")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    rel = llm_data.token_release(a.data.split(","))
    codec = llm_data.codec(rel)
    vocabs = {}
    for d in a.llm:
        if not (Path(d) / "llm_vocab.json").is_file():
            raise SystemExit(f"--llm {d}: not an editor LLM directory (no llm_vocab.json)")
        # a model of another codec reads these audio ids as other sounds: its loss here means nothing
        if codec_version_of(d) is None:
            raise SystemExit(f"--llm {d}: records no codec (no training.json or codec.json tokenizer_version)")
        try:
            check_init_codec(d, codec["tokenizer_version"], codec.get("tokenizer_digest"), name="--llm")
        except ValueError as e:
            raise SystemExit(str(e)) from None
        vocabs[d] = json.loads((Path(d) / "llm_vocab.json").read_text())["version"]
    if len(set(vocabs.values())) > 1:  # the packed subset follows the sequences' lengths, so the vocab's
        raise SystemExit(f"--llm: the models' vocabularies differ ({vocabs}): they would not read the same examples")
    examples = llm_data.load_examples(rel, a.split)
    if not any(examples.values()):
        raise SystemExit(f"--data {a.data}: no {a.split}-split examples")
    out = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
           "split": a.split, "codec": codec.get("tokenizer_version"), "models": {}}
    packed = None   # one vocabulary, so every model reads the batches packed for the first
    for d in a.llm:
        model, vocab = llm_model.load(d)
        model.eval()
        if packed is None:
            packed = {t: eval_batches(exs, vocab, a.rows, a.max_len, a.batches, a.seed) for t, exs in sorted(examples.items())}
        t0, per_task, exact = time.time(), {}, {}
        with torch.inference_mode():      # local: a caller's autograd stays as it was
            for task, exs in sorted(examples.items()):
                batches = packed[task]
                if batches:
                    exact[task] = evaluate(model, batches, "cpu", nullcontext)
                    per_task[task] = {"loss": round(exact[task], 4), "answer_tokens": sum(map(loss_tokens, batches)),
                                      "examples_in_split": len(exs)}
        n_all = sum(v["answer_tokens"] for v in per_task.values())
        mean = sum(exact[t] * v["answer_tokens"] for t, v in per_task.items()) / max(n_all, 1)
        out["models"][d] = {"tasks": per_task, "all": round(mean, 4), "seconds": round(time.time() - t0, 1)}
        print(d, json.dumps(out["models"][d]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
