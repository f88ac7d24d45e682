"""The continuous decoder on a GPU against generate(), both with captured CUDA graphs:

    python bench/continuous_gpu_check.py [OUT_JSON]

The shipped LLM (editor-llm-v12, bf16 on CUDA) on 48 synthetic edit prompts (random source ids of 20 to
250 tokens, as the codec gives 0.5 to 6 s of speech), greedy and sampled, through generate() in one
batch and through a ContinuousDecoder of 32 rows (sizes 8, 16, 32; rows taken again). Says whether every
step was captured, and how many answers are the same tokens (bf16 rounds two batch shapes otherwise,
so near-ties may go another way and the answer then follows its own course), and their lengths; for a
baseline, how many generate() itself gives the same in batches of 16 as in one batch of 48.
bench/results/serving/continuous/gpu_check.json is the run before the baseline was added.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.artifacts import SHIPPED_LLM, in_repo  # noqa: E402
from editor.llm import chat, model as llm_model  # noqa: E402
from editor.llm.continuous import ContinuousDecoder, Request  # noqa: E402
from editor.llm.generate import Layout, generate  # noqa: E402
from editor.llm.vocab import AUDIO_SIZE  # noqa: E402


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model, vocab = llm_model.load(in_repo(SHIPPED_LLM), dtype="bfloat16" if dev == "cuda" else "float32")
    model = model.to(dev).eval()
    rng = np.random.default_rng(0)
    prompts = [chat.build_prompt({"system": "edit", "instruction": "Make the following audio more happy.",
                                  "source_tokens": rng.integers(0, AUDIO_SIZE, n), "target_text": "hello there"}, vocab)
               for n in rng.integers(20, 250, 48)]
    limits = [int(min(2 * len(p), 400)) for p in prompts]
    res = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"}
    for temp in (0.0, 0.7):
        t0 = time.perf_counter()
        stats = {}
        want = generate(model, vocab, prompts, limits, seeds=list(range(48)), temperature=temp, layout=Layout(), stats=stats)
        t1 = time.perf_counter()
        dec = ContinuousDecoder(model, vocab, rows=32, cache_len=1024, layout=Layout())
        t2 = time.perf_counter()
        got = [f.result(300) for f in dec.submit_many([Request(p, n, s, temp) for s, (p, n) in enumerate(zip(prompts, limits))])]
        t3 = time.perf_counter()
        dec.close()
        # the baseline of a batch-shape change alone: generate() again, in batches of 16
        t4 = time.perf_counter()
        by16 = [a for k in range(0, 48, 16) for a in generate(model, vocab, prompts[k:k + 16], limits[k:k + 16],
                                                               seeds=list(range(k, k + 16)), temperature=temp, layout=Layout())]
        t5 = time.perf_counter()
        same = [bool(np.array_equal(a, b)) for a, b in zip(got, want)]
        same16 = [bool(np.array_equal(a, b)) for a, b in zip(by16, want)]
        res[f"temperature_{temp}"] = {
            "generate_graph_mode": stats["graph_mode"], "continuous_graph_mode": dec.mode,
            "continuous_sizes_captured": sorted(dec.graphs), "same_tokens": f"{sum(same)} of {len(same)}",
            "generate_in_16s_same_tokens": f"{sum(same16)} of {len(same16)}", "generate_in_16s_s": round(t5 - t4, 2),
            "lengths_generate": [len(a) for a in want], "lengths_continuous": [len(a) for a in got],
            "generate_s": round(t1 - t0, 2), "continuous_capture_s": round(t2 - t1, 2), "continuous_s": round(t3 - t2, 2)}
        print(temp, {k: v for k, v in res[f"temperature_{temp}"].items() if not k.startswith("lengths")}, flush=True)
    if out:
        out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
