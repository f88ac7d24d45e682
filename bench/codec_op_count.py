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
from editor.codec import DEFAULT_VOCODER, synthesize  # noqa: E402
from editor.llm.editor import Editor  # noqa: E402
from long_edit import load_clips  # noqa: E402


def ops(fn) -> tuple[int, list]:
    """aten operations of one call of fn (after one call not counted), and the most frequent ones."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts = [(e.count, e.key) for e in prof.key_averages() if e.key.startswith("aten::")]
    return sum(c for c, _ in counts), sorted(counts, reverse=True)[:5]


def main():
    torch.set_num_threads(1)
    ed = Editor.load(sys.argv[2] if len(sys.argv) > 2 else "editor/artifacts/editor-llm-v5", device="cpu")
    clips = load_clips(Path(sys.argv[1]))
    frames = ed.codec.analyze_many([w for _, w, _ in clips])
    ids = ed._encode(frames)
    for n in (1, 4, 16):
        pick = [i % len(ids) for i in range(n)]
        total, top = ops(lambda: ed._decode([ids[i] for i in pick], [frames[i] for i in pick]))
        print(f"{n} answers per call: {total} ops, {total / n:.0f} per answer; most frequent {top}", flush=True)
    pick = [i % len(ids) for i in range(16)]
    toks = [ed.codec.tokenizer.deinterleave(ids[i]) for i in pick]
    refs = [frames[i] for i in pick]
    print("16 answers, the decoder alone:", ops(lambda: ed.codec.decode_frames(toks, refs, 16))[0], "ops", flush=True)
    fr = ed.codec.decode_frames(toks, refs, 16)
    print(f"16 answers, the vocoder ({DEFAULT_VOCODER}) alone:", ops(lambda: synthesize(fr, DEFAULT_VOCODER, "cpu"))[0], "ops", flush=True)


if __name__ == "__main__":
    main()
