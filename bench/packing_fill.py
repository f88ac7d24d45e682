"""How full the trainer's packed rows are on real token releases, per pack_lookahead: the share of each
step's rows x max_len tokens that are examples rather than padding (padding is computed like any token,
so the trainer's tokens/s and MFU, which count example tokens only, scale with it).

    python bench/packing_fill.py DATA[,DATA...] [--rows 16] [--max-len 2048] [--steps 200]
        [--lookahead 1 2 4 8 16] [--out FILE.json]

DATA are token releases, as pipeline=train_editor takes them; the mixture is the trainer's default."""
import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from omegaconf import OmegaConf  # noqa: E402

from editor.llm import data as llm_data  # noqa: E402
from editor.llm.batches import Batches, lengths, too_long  # noqa: E402
from editor.llm.model import training_vocab  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lookahead", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--out")
    a = ap.parse_args()
    tc = OmegaConf.to_container(OmegaConf.load(REPO / "configs/pipeline/train_editor.yaml"))["train"]
    vocab = training_vocab()
    train = llm_data.weighted(llm_data.load_examples(llm_data.token_release(a.data.split(",")), "train"), tc["mixture"])
    train = too_long(train, vocab, a.max_len)
    # the lengths the stream hands out (the mixture weights the tasks), which set how well rows can fill
    mix, size = llm_data.Mixture(train, tc["mixture"], 0), {t: lengths(exs, vocab) for t, exs in train.items()}
    drawn = [int(size[t][i]) for t, i in (mix.next_ref() for _ in range(20000))]
    q = statistics.quantiles(drawn, n=10)
    stream = {"mean": round(statistics.mean(drawn), 1), "p10": q[0], "p50": q[4], "p90": q[8], "min": min(drawn)}
    print("example tokens as drawn:", json.dumps(stream))
    rows = []
    for look in sorted({min(k, a.rows) for k in a.lookahead}):   # the trainer caps it at rows too
        b = Batches(llm_data.Mixture(train, tc["mixture"], 0), vocab, a.rows, a.max_len, look)
        fills, examples = [], []
        for _ in range(a.steps):
            _, st = b.next()
            fills.append(st["tokens"] / (a.rows * a.max_len))
            examples.append(st["examples"])
        rows.append({"pack_lookahead": look, "fill_mean": round(statistics.mean(fills), 4),
                     "fill_min": round(min(fills), 4), "examples_per_step": round(statistics.mean(examples), 1)})
        print(json.dumps(rows[-1]))
    out = {"command": "python bench/packing_fill.py " + " ".join(sys.argv[1:]), "rows": a.rows, "max_len": a.max_len,
           "steps": a.steps, "training_examples": {t: len(v) for t, v in train.items()},
           "example_tokens_drawn": stream, "results": rows}
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
