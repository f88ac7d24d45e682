"""Training-step throughput of an LLM preset on packed rows (GPU): tokens/s, MFU, peak memory.

    python bench/llm_throughput.py [preset] [row_len] [rows] [steps] [compile: 0|1] [attn: sdpa|flex]
Random audio examples of 2-12 s (clone-sized), packed, bf16 autocast. Attention over the packed rows:
  sdpa    the block-diagonal 4-D mask (what the trainer's CPU path uses)
  flex    transformers' flex_attention; the examples' boundaries come from the position ids (a BlockMask)
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.llm import chat, packing  # noqa: E402
from editor.llm.model import build_model, count_params, flops_per_token, load_preset, PRESETS  # noqa: E402
from editor.llm.vocab import load_vocab  # noqa: E402

PEAK_BF16 = {"H200": 989e12, "H100": 989e12}


def main(preset="small", row_len=4096, rows=16, steps=20, compiled=0, attn="sdpa"):
    row_len, rows, steps, compiled = int(row_len), int(rows), int(steps), bool(int(compiled))
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    v, rng = load_vocab(), np.random.default_rng(0)
    exs = []
    while sum(len(e["input_ids"]) for e in exs) < row_len * rows * 0.95:
        n = int(rng.uniform(2, 12) * 41.67)
        exs.append(chat.build_example({"system": "clone", "target_text": "The library opens at eight.",
                                       "source_tokens": rng.integers(0, 5120, n), "target_tokens": rng.integers(0, 5120, n),
                                       "speaker": {"name": "en_m1", "prompt_text": "The bus stops at the corner."}}, v))
    bins = packing.pack([len(e["input_ids"]) for e in exs], row_len)[:rows]
    batch = {k: t.to(dev) for k, t in packing.collate([[exs[i] for i in b] for b in bins], row_len, v.pad,
                                                     mask=attn == "sdpa").items()}
    lens = np.array([len(exs[i]["input_ids"]) for b in bins for i in b])
    context = float((lens ** 2).sum() / lens.sum())
    try:
        cfg = load_preset(preset)
    except ImportError:  # a bare GPU machine without omegaconf: the preset is plain YAML
        import yaml
        cfg = yaml.safe_load((PRESETS / f"{preset}.yaml").read_text())
    model = build_model(cfg, v).to(dev).train()
    if attn == "flex":
        model.set_attn_implementation("flex_attention")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev == "cuda")
    fwd = torch.compile(model) if compiled else model
    tokens = int(lens.sum())
    for step in range(steps + 3):
        if step == 3:
            torch.cuda.synchronize() if dev == "cuda" else None
            t0 = time.time()
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = fwd(**batch, use_cache=False).loss   # no cache: transformers reads packing from position ids
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize() if dev == "cuda" else None
    dt = (time.time() - t0) / steps
    fpt = flops_per_token(model, context)
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    peak = next((p for k, p in PEAK_BF16.items() if k in name), None)
    print(f"{preset}{' compiled' if compiled else ''} attn={attn} on {name}: {count_params(model) / 1e6:.1f} M params, {rows}x{row_len} rows, {tokens} real tokens, "
          f"context {context:.0f}, {dt * 1e3:.0f} ms/step, {tokens / dt:,.0f} tok/s, "
          f"{fpt * tokens / dt / 1e12:.1f} TFLOP/s" + (f", MFU {fpt * tokens / dt / peak:.1%}" if peak else "")
          + (f", peak mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if dev == "cuda" else "")
          + f", loss {loss.item():.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
