"""Generation speed of a trained audio LLM: audio tokens/s and real-time factor, batch 1 and batched,
with and without the codec's decode, and peak GPU memory.

    python bench/editor_llm_speed.py --llm DIR --data TOKEN_RELEASE [--device cuda] [--batch 64 256 512] --out FILE

Prompts are the token release's validation/test edit and clone examples (editor/llm/data.py). Each
request may generate up to 2 x its source length + 50 tokens and stops at <|eos|>; RTF = wall time /
seconds of audio generated (41.67 tokens per second). The codec decode (tokens -> frames -> 16 kHz)
uses a synthetic voiced reference clip: its cost does not depend on the voice.

Batch 1 runs eagerly and, on CUDA, with the compiled step captured as a CUDA graph
(editor/llm/generate.py); the batched runs use the graph when it captured, once with the model's own stopping and once
at fixed length (every request generates its source's length, <|eos|> ignored: the steady state,
independent of how well the model has learned to stop). On CUDA a stream of 4 batches also goes
through the Editor's batch loop, with the codec decode after each batch and overlapping the next
(`stream_fixed_length`). The codec decode is also timed alone.

`--codec TOKENIZER DECODER` names the codec the LLM was trained with (default: the shipped one);
`--codec none` times the LLM alone (the layout is the codecs' common 2 + 3 ids per block).
`--guidance W` also times guided decoding (the Editor's negative prompt, one partner row per request)
against the same emotion and style edit requests (the edits guidance ships for) unguided, at batch 1
and batched at fixed length: what a guided edit costs on this device. It runs first (CUDA graphs on
CUDA), so a run cut short by its time limit still has it."""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor.artifacts import SHIPPED_DECODER, SHIPPED_TOKENIZER  # noqa: E402
from editor.codec import Codec, synthesize  # noqa: E402
from editor.llm import chat  # noqa: E402
from editor.llm.data import load_examples  # noqa: E402
from editor.llm.editor import Editor, negative_prompt  # noqa: E402
from editor.llm.generate import Layout, SampleConfig, generate  # noqa: E402
from editor.llm.model import count_params, load  # noqa: E402
from editor.vocoder import DEFAULT_VOCODER  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RATE = 41.6667


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def voiced(seconds=3.0, f0=140.0, sr=16000):
    t = np.arange(int(sr * seconds)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    return (0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def run(model, vocab, prompts, limits, dev, layout, batch, codec=None, ref=None, cuda_graphs=False,
        cfg: SampleConfig | None = None, negatives=None, guidance=1.0) -> dict:
    """negatives: a negative prompt per request (guided decoding: each adds a partner row)."""
    n_tok, t0 = 0, time.perf_counter()
    decode_s, stats = 0.0, {}
    for i in range(0, len(prompts), batch):
        outs = generate(model, vocab, prompts[i:i + batch], limits[i:i + batch], seeds=list(range(i, i + batch))[:len(prompts[i:i + batch])],
                        temperature=0.7, layout=layout, cuda_graphs=cuda_graphs, cfg=cfg, stats=stats,
                        negatives=None if negatives is None else negatives[i:i + batch], guidance=guidance)
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
    return {"requests": len(prompts), "batch": batch, "mode": stats.get("graph_mode"), "tokens": n_tok,
            "audio_s": round(audio_s, 2), "wall_s": round(wall, 3), "decode_s": round(decode_s, 3),
            "tokens_per_s": round(n_tok / (wall - decode_s), 1),
            "rtf_llm": round((wall - decode_s) / audio_s, 4), "rtf_with_decode": round(wall / audio_s, 4),
            "x_real_time_llm": round(audio_s / (wall - decode_s), 1),
            "x_real_time_with_decode": round(audio_s / wall, 1)}


def stream(ed, prompts, limits, refs, batch, overlap: bool) -> dict:
    """Many requests through the Editor's batch loop (the path of pipeline=edit and of a server), at
    fixed length: with overlap, each batch's audio is decoded on the codec's thread and CUDA stream
    while the LLM generates the next batch; without, after it, in the same thread."""
    ed.batch_size, ed.sample = batch, SampleConfig(ignore_eos=True)
    pool = ed._decode_pool
    if not overlap:
        ed._decode_pool = None
    try:
        t0 = time.perf_counter()
        sink = ed._sink()
        ids = ed._generate(prompts, limits, list(range(len(prompts))), [0.7] * len(prompts), refs=refs, sink=sink)
        audio = sink.collect()
        _sync(ed.codec.device)
        wall = time.perf_counter() - t0
    finally:
        ed._decode_pool = pool
    n_tok = sum(len(i) for i in ids)
    assert len(audio) == len(prompts) and all(len(a) for a in audio.values())
    return {"requests": len(prompts), "batch": batch, "overlap": overlap, "tokens": n_tok,
            "audio_s": round(n_tok / RATE, 2), "wall_s": round(wall, 3),
            "x_real_time_with_decode": round(n_tok / RATE / wall, 1)}


def codec_profile(codec, dev, ref, seconds=(2.0, 8.0), batches=(1, 64)) -> list[dict]:
    """The codec decode alone (random ids of a given length): decoder frames, then the vocoder."""
    rng, rows = np.random.default_rng(0), []
    for sec in seconds:
        n = int(sec * RATE) // 5 * 5
        for b in batches:
            toks = [codec.tokenizer.deinterleave(np.concatenate(
                [np.concatenate([rng.integers(0, 1024, 2), rng.integers(1024, 5120, 3)]) for _ in range(n // 5)]))
                for _ in range(b)]
            codec.decode(toks[:1], [ref])  # warm-up at this length
            _sync(dev)
            t0 = time.perf_counter()
            frames = codec.decode_frames(toks, [ref] * b, batch_size=b)
            _sync(dev)
            t1 = time.perf_counter()
            synthesize(frames, DEFAULT_VOCODER, dev)
            _sync(dev)
            t2 = time.perf_counter()
            rows.append({"clip_s": sec, "batch": b, "decoder_s": round(t1 - t0, 4), "vocoder_s": round(t2 - t1, 4),
                         "rtf": round((t2 - t0) / (sec * b), 5)})
    return rows


def greedy_agreement(model, vocab, prompts, limits, layout) -> dict:
    """Greedy tokens of the compiled graph against the eager loop: the share that match position by
    position, and the mean length of the common prefix. bf16 kernels fused differently round
    differently, and a near-tie decided the other way changes the rest of the answer; a wrong
    capture (stale state) would instead diverge within the first steps of every answer."""
    a = generate(model, vocab, prompts, limits, temperature=0, layout=layout, cuda_graphs=False)
    b = generate(model, vocab, prompts, limits, temperature=0, layout=layout, cuda_graphs=True)
    same = sum(int((x[:min(len(x), len(y))] == y[:min(len(x), len(y))]).sum()) for x, y in zip(a, b))
    prefix = [int(np.argmin(np.append(x[:len(y)] == y[:len(x)], False))) for x, y in zip(a, b)]
    return {"match": round(same / max(1, sum(max(len(x), len(y)) for x, y in zip(a, b))), 4),
            "common_prefix_mean": round(float(np.mean(prefix)), 1), "answer_len_mean": round(float(np.mean([len(x) for x in a])), 1)}


def guided_section(model, vocab, exs, dev, layout, batches, single, w, g) -> dict:
    """The same emotion and style edits decoded unguided and guided (w), at batch 1 and batched at fixed length."""
    edits = [e for e in exs if e["task"] in ("emotion_edit", "style_edit")]
    if not edits:
        return {"error": "no emotion or style edit examples to guide"}
    most = max(max(batches), single)
    edits = (edits * (most // len(edits) + 1))[:most]
    prompts = [chat.build_prompt(e, vocab) for e in edits]
    negs = [negative_prompt(vocab, e["task"].removesuffix("_edit"), e["text"], e["source_tokens"]) for e in edits]
    fixed = [len(e["source_tokens"]) // 5 * 5 + 5 for e in edits]
    res = {"weight": w, "batch1": {}, "fixed_length": {}}
    fl = SampleConfig(ignore_eos=True)
    for name, kw in (("unguided", {}), ("guided", {"negatives": negs, "guidance": w})):
        run(model, vocab, prompts[:single], fixed[:single], dev, layout, 1, cuda_graphs=g, cfg=fl, **kw)  # capture
        res["batch1"][name] = run(model, vocab, prompts[:single], fixed[:single], dev, layout, 1, cuda_graphs=g, cfg=fl, **kw)
        for b in batches:
            run(model, vocab, prompts[:b], fixed[:b], dev, layout, b, cuda_graphs=g, cfg=fl, **kw)
            res["fixed_length"].setdefault(str(b), {})[name] = run(model, vocab, prompts[:b], fixed[:b], dev, layout, b,
                                                                   cuda_graphs=g, cfg=fl, **kw)
    for b, r in [("1", res["batch1"])] + list(res["fixed_length"].items()):
        r["guided_over_unguided_time"] = round(r["guided"]["wall_s"] / r["unguided"]["wall_s"], 3)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 256, 512])
    ap.add_argument("--stream-batch", type=int, nargs="*", default=[256, 512],
                    help="CUDA: batch sizes of the 4-batch request stream through the Editor")
    ap.add_argument("--single", type=int, default=8, help="requests timed one at a time")
    ap.add_argument("--codec", nargs="+", default=[str(SHIPPED_TOKENIZER), str(SHIPPED_DECODER)],
                    metavar="DIR", help="TOKENIZER DECODER, or none: the LLM alone")
    ap.add_argument("--guidance", type=float, default=0.0, help="W > 1: also time guided decoding at this weight")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    if a.codec != ["none"] and len(a.codec) != 2:
        ap.error(f"--codec: TOKENIZER DECODER or none, got {a.codec}")
    if a.guidance and not 1 < a.guidance <= 10:
        ap.error(f"--guidance: a weight above 1 and at most 10, got {a.guidance}")
    dev = torch.device(a.device)
    model, vocab = load(a.llm)
    model = model.to(dev).eval()
    if dev.type == "cuda":
        model = model.to(torch.bfloat16)
    codec = None if a.codec == ["none"] else Codec.load(a.codec[0], a.codec[1], a.device)
    layout = Layout() if codec is None else Layout.of(codec.tokenizer)
    exs = [e for split in ("test", "validation") for v in load_examples(a.data, split).values() for e in v]
    if not exs:
        raise SystemExit(f"{a.data}: no test or validation examples")
    every = exs        # the guided section picks its emotion and style edits from all of them
    most = max(max(a.batch), a.single)
    exs = (exs * (most // len(exs) + 1))[:most]
    prompts = [chat.build_prompt(e, vocab) for e in exs]
    limits = [2 * len(e["source_tokens"]) + 50 for e in exs]
    fixed = [len(e["source_tokens"]) // 5 * 5 + 5 for e in exs]   # fixed-length runs: the source's length
    ref = None if codec is None else codec.analyze(voiced())
    run(model, vocab, prompts[:2], limits[:2], dev, layout, 1)  # warm-up
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    res = {"llm": a.llm, "parameters": count_params(model), "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
           "torch": torch.__version__, "command": " ".join(sys.argv), "batch1": {}, "batched": {}, "fixed_length": {}}
    def save():   # after every section: a run cut short by its time limit keeps what it measured
        if a.out:
            Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    if a.guidance:   # first: it is what --guidance asks, and a call's time limit may cut the rest
        res["guided"] = guided_section(model, vocab, every, dev, layout, a.batch, a.single, a.guidance,
                                       dev.type == "cuda")
        save()
    modes = ["eager"] + (["compiled"] if dev.type == "cuda" else [])
    best = "eager"
    for mode in modes:
        g = mode == "compiled"
        try:
            # every timed request once untimed first: each (batch, cache length) compiles and captures
            # its step on first use (about 2 s); the timed run is the steady state a server reaches
            run(model, vocab, prompts[:a.single], limits[:a.single], dev, layout, 1, cuda_graphs=g)
            res["batch1"][mode] = run(model, vocab, prompts[:a.single], limits[:a.single], dev, layout, 1, codec, ref, cuda_graphs=g)
            if g:
                res["batch1"][mode]["greedy_vs_eager"] = greedy_agreement(model, vocab, prompts[:4], limits[:4], layout)
            if res["batch1"][mode]["mode"] == mode:
                best = mode
        except Exception as e:  # record why, keep the other figures
            res["batch1"][mode] = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
        save()
    g = best == "compiled"
    for b in a.batch:
        run(model, vocab, prompts[:b], limits[:b], dev, layout, b, cuda_graphs=g)   # capture this shape
        res["batched"][str(b)] = run(model, vocab, prompts[:b], limits[:b], dev, layout, b, codec, ref, cuda_graphs=g)
        run(model, vocab, prompts[:b], fixed[:b], dev, layout, b, cuda_graphs=g, cfg=SampleConfig(ignore_eos=True))
        res["fixed_length"][str(b)] = run(model, vocab, prompts[:b], fixed[:b], dev, layout, b, codec, ref, cuda_graphs=g,
                                          cfg=SampleConfig(ignore_eos=True))
        save()
    if dev.type == "cuda" and codec is not None:     # a stream of 4 batches: decode of batch k overlapping generation of k+1
        ed = Editor(model, vocab, codec)
        ed.cuda_graphs = g
        res["stream_fixed_length"] = {}
        for b in a.stream_batch:
            n = 4 * b
            sp = (prompts * (n // len(prompts) + 1))[:n]
            sf = (fixed * (n // len(fixed) + 1))[:n]
            stream(ed, sp[:2 * b], sf[:2 * b], [ref] * 2 * b, b, True)      # warm-up: shapes, the codec thread
            for overlap in (False, True):
                res["stream_fixed_length"][f"{b}_{'overlap' if overlap else 'after'}"] = stream(
                    ed, sp, sf, [ref] * n, b, overlap)
                save()
    if codec is not None:
        res["codec_decode"] = codec_profile(codec, dev, ref, batches=(1, min(64, max(a.batch))))
    if dev.type == "cuda":
        res["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    print(json.dumps(res, indent=1))
    save()


if __name__ == "__main__":
    main()
