"""Generation speed of a trained audio LLM: audio tokens/s and real-time factor, batch 1 and batched,
with and without the codec's decode, and peak GPU memory.

    python bench/editor_llm_speed.py --llm DIR --data TOKEN_RELEASE [--device cuda] [--batch 64] --out FILE

Prompts are the token release's validation/test edit and clone examples (editor/llm/data.py). Each
request may generate up to 2 x its source length + 50 tokens and stops at <|eos|>; RTF = wall time /
seconds of audio generated (41.67 tokens per second). The codec decode (tokens -> frames -> 16 kHz)
uses a synthetic voiced reference clip: its cost does not depend on the voice."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.codec import Codec  # noqa: E402
from editor.llm import chat  # noqa: E402
from editor.llm.data import load_examples  # noqa: E402
from editor.llm.generate import Layout, generate  # noqa: E402
from editor.llm.model import count_params, load  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RATE = 41.6667


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def voiced(seconds=3.0, f0=140.0, sr=16000):
    t = np.arange(int(sr * seconds)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def run(model, vocab, prompts, limits, dev, layout, batch, codec=None, ref=None, cuda_graphs=False) -> dict:
    n_tok, t0 = 0, time.perf_counter()
    decode_s = 0.0
    for i in range(0, len(prompts), batch):
        outs = generate(model, vocab, prompts[i:i + batch], limits[i:i + batch], seeds=list(range(i, i + batch))[:len(prompts[i:i + batch])],
                        temperature=0.7, layout=layout, cuda_graphs=cuda_graphs)
        _sync(dev)
        n_tok += sum(len(o) for o in outs)
        if codec is not None:
            t1 = time.perf_counter()
            toks = [codec.tokenizer.deinterleave(o) for o in outs if len(o)]
            codec.decode(toks, [ref] * len(toks), batch_size=max(1, len(toks)))
            _sync(dev)
            decode_s += time.perf_counter() - t1
    wall = time.perf_counter() - t0
    audio_s = n_tok / RATE
    return {"requests": len(prompts), "batch": batch, "tokens": n_tok, "audio_s": round(audio_s, 2),
            "wall_s": round(wall, 3), "decode_s": round(decode_s, 3),
            "tokens_per_s": round(n_tok / (wall - decode_s), 1),
            "rtf_llm": round((wall - decode_s) / audio_s, 4), "rtf_with_decode": round(wall / audio_s, 4),
            "x_real_time_with_decode": round(audio_s / wall, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--single", type=int, default=8, help="requests timed one at a time")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    model, vocab = load(a.llm)
    model = model.to(dev).eval()
    if dev.type == "cuda":
        model = model.to(torch.bfloat16)
    codec = Codec.load(REPO / "editor/artifacts/tokenizer-v3", REPO / "editor/artifacts/decoder-v3", a.device)
    layout = Layout.of(codec.tokenizer)
    exs = [e for split in ("test", "validation") for v in load_examples(a.data, split).values() for e in v]
    if not exs:
        raise SystemExit(f"{a.data}: no test or validation examples")
    exs = (exs * (a.batch // len(exs) + 1))[: max(a.batch, a.single)]
    prompts = [chat.build_prompt(e, vocab) for e in exs]
    limits = [2 * len(e["source_tokens"]) + 50 for e in exs]
    ref = codec.analyze(voiced())
    run(model, vocab, prompts[:2], limits[:2], dev, layout, 1)  # warm-up
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    res = {"llm": a.llm, "parameters": count_params(model), "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
           "batch1": run(model, vocab, prompts[:a.single], limits[:a.single], dev, layout, 1, codec, ref),
           "batched": run(model, vocab, prompts[:a.batch], limits[:a.batch], dev, layout, a.batch, codec, ref),
           "command": " ".join(sys.argv)}
    if dev.type == "cuda":  # the same with each decode step as a captured CUDA graph
        try:
            run(model, vocab, prompts[:2], limits[:2], dev, layout, 1, cuda_graphs=True)  # capture
            res["batch1_cuda_graphs"] = run(model, vocab, prompts[:a.single], limits[:a.single], dev, layout, 1,
                                            codec, ref, cuda_graphs=True)
            run(model, vocab, prompts[:a.batch], limits[:a.batch], dev, layout, a.batch, cuda_graphs=True)
            res["batched_cuda_graphs"] = run(model, vocab, prompts[:a.batch], limits[:a.batch], dev, layout,
                                             a.batch, codec, ref, cuda_graphs=True)
        except Exception as e:  # record why, keep the eager figures
            res["cuda_graphs_error"] = f"{type(e).__name__}: {str(e)[:500]}"
    if dev.type == "cuda":
        res["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
