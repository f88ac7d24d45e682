"""Where one decode step's GPU time goes at a given batch: the compiled step (not graph-captured, so
the profiler sees each kernel) of the shipped editor LLM, top kernels by CUDA time.

    python bench/decode_step_profile.py OUT_DIR [batch ...]
    STEP_AB=1 python bench/decode_step_profile.py OUT_DIR [batch ...]

STEP_AB=1: no profiles; each shape's captured step timed with the decode attention packed and with
transformers' per-head copy (editor/llm/decode_attention.py), in decode_step_ab.json.
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.artifacts import SHIPPED_LLM, in_repo  # noqa: E402
from editor.llm.generate import Layout, SampleConfig, _Decoder, cache_len  # noqa: E402
from editor.llm.model import load  # noqa: E402


def replay_ms(model, vocab, B, P, T, dev) -> tuple:
    """(decoder, ms per graph replay) of a fresh decoder of this shape."""
    dec = _Decoder(model, vocab, B, cache_len(P + T), SampleConfig(), Layout(), dev, True)
    prompts = [np.full(P, vocab.audio_offset + 7, np.int64)] * B
    with torch.no_grad():
        dec.start(prompts, [T] * B, list(range(B)), [0.7] * B, [0] * B)
        dec.capture()
        dec.start(prompts, [T] * B, list(range(B)), [0.7] * B, [0] * B)
        for _ in range(20):
            dec.step()
        torch.cuda.synchronize(); t0 = time.perf_counter()
        for _ in range(100):
            dec.step()
        torch.cuda.synchronize()
    return dec, (time.perf_counter() - t0) * 10


def step_ab(model, vocab, batches, dev, out):
    from editor.llm import decode_attention
    threshold, rows = decode_attention.PACK_MIN_BLOCKS, []
    for B in batches:
        for P, T in ((160, 300), (700, 1400)):
            r = {"batch": B, "prompt": P, "cache": cache_len(P + T)}
            for name, t in (("packed_ms", 0), ("per_head_copy_ms", 1 << 30)):
                decode_attention.PACK_MIN_BLOCKS = t
                torch._dynamo.reset()          # the threshold is read while tracing
                r[name] = round(replay_ms(model, vocab, B, P, T, dev)[1], 4)
            print(r, flush=True)
            rows.append(r)
            (out / "decode_step_ab.json").write_text(json.dumps({"gpu": torch.cuda.get_device_name(0), "rows": rows}, indent=1))
    decode_attention.PACK_MIN_BLOCKS = threshold


def main():
    out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in sys.argv[2:]] or [1, 64]
    model, vocab = load(in_repo(SHIPPED_LLM), dtype="bfloat16")
    model = model.cuda().eval()
    dev = torch.device("cuda")
    if os.environ.get("STEP_AB") == "1":
        return step_ab(model, vocab, batches, dev, out)
    lines = []
    for B in batches:
        for P, T in ((160, 300), (700, 1400)):      # a 3 s edit, a 15 s edit
            L = cache_len(P + T)
            dec, graph_ms = replay_ms(model, vocab, B, P, T, dev)
            with torch.no_grad():
                fn = torch.compile(dec._step)
                for _ in range(3):
                    fn()
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                    for _ in range(10):
                        fn()
                    torch.cuda.synchronize()
            head = f"== batch {B}, prompt {P}, cache {L}: graph replay {graph_ms:.3f} ms/step"
            print(head, flush=True)
            table = prof.key_averages().table(sort_by="self_device_time_total", row_limit=15)
            print(table, flush=True)
            lines += [head, table]
    (out / "decode_step_profile.txt").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
