"""How many torch operations one codec decode call issues, and how that grows with the answers in it
(CPU profiler; the count does not depend on the device, and on a GPU each operation costs the host a
launch, so it is the call's host cost that a server's interpreter pays).

    python bench/codec_op_count.py CLIPS_DIR [llm_dir]

CLIPS_DIR as bench/serving_gpu.py's. The clips are encoded and decoded back (Editor._decode: the codec's
decoder, then the vocoder), 1, 4 and 16 answers per call, and the two parts counted alone at 16.
"""
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from editor.artifacts import SHIPPED_LLM, in_repo  # noqa: E402
from editor.codec import DEFAULT_VOCODER, synthesize  # noqa: E402
from editor.llm.editor import Editor  # noqa: E402
from long_edit import load_clips  # noqa: E402


# operations that, on a GPU, wait for the stream and read a value back to the host
HOST_READS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::_nested_tensor_from_mask",
              "aten::_nested_tensor_from_mask_left_aligned", "aten::unique_consecutive")


def ops(fn) -> tuple[int, list, dict]:
    """aten operations of one call of fn (after one call not counted), the most frequent ones, and the
    host reads among them."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts = [(e.count, e.key) for e in prof.key_averages() if e.key.startswith("aten::")]
    return sum(c for c, _ in counts), sorted(counts, reverse=True)[:5], {k: c for c, k in counts if k in HOST_READS}


def main():
    torch.set_num_threads(1)
    ed = Editor.load(sys.argv[2] if len(sys.argv) > 2 else in_repo(SHIPPED_LLM), device="cpu")
    clips = load_clips(Path(sys.argv[1]))
    frames = ed.codec.analyze_many([w for _, w, _ in clips])
    ids = ed._encode(frames)
    for n in (1, 4, 16):
        pick = [i % len(ids) for i in range(n)]
        total, top, reads = ops(lambda: ed._decode([ids[i] for i in pick], [frames[i] for i in pick]))
        print(f"{n} answers per call: {total} ops, {total / n:.0f} per answer; most frequent {top}; host reads {reads}", flush=True)
    pick = [i % len(ids) for i in range(16)]
    toks = [ed.codec.tokenizer.deinterleave(ids[i]) for i in pick]
    refs = [frames[i] for i in pick]
    total, _, reads = ops(lambda: ed.codec.decode_frames(toks, refs, 16))
    print("16 answers, the decoder alone:", total, "ops; host reads", reads, flush=True)
    fr = ed.codec.decode_frames(toks, refs, 16)
    total, _, reads = ops(lambda: synthesize(fr, DEFAULT_VOCODER, "cpu"))
    print(f"16 answers, the vocoder ({DEFAULT_VOCODER}) alone:", total, "ops; host reads", reads, flush=True)


if __name__ == "__main__":
    main()
