"""Codec speed in audio seconds per wall second: tokenization and decoding, one clip and batched.

    python bench/editor_speed.py --tokenizer DIR --decoder DIR --audio DIR_OR_SHARDS [--device cuda] \
        [--batch 32] [--out bench/editor_speed_<device>.json]

Tokenization = analysis (dio F0 + log-mel, CPU; batched runs use a process pool over all cores) +
quantization (on --device). Decoding = decoder network (on --device) + Griffin-Lim (on --device).
Components are timed separately so the table shows where the time goes.
"""
import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from editor import features
from editor.codec import Codec
from editor.vocoder import griffin_lim


def load_clips(path: str, n: int) -> list[np.ndarray]:
    import soundfile as sf
    p = Path(path)
    files = sorted(p.glob("*.flac")) + sorted(p.glob("*.wav")) if p.is_dir() else []
    if not files:
        raise SystemExit(f"--audio {path}: no .flac/.wav files")
    clips = []
    for f in files[:n]:
        x, sr = sf.read(str(f), dtype="float32", always_2d=True)
        if sr != features.SAMPLE_RATE:
            raise SystemExit(f"{f}: {sr} Hz, the codec wants {features.SAMPLE_RATE}")
        clips.append(x.mean(1))
    return clips


def _one_thread():
    torch.set_num_threads(1)  # one analysis per core: the pool is the parallelism


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--audio", required=True, help="folder of 16 kHz .flac/.wav clips")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    dev = torch.device(a.device)
    codec = Codec.load(a.tokenizer, a.decoder, dev)
    clips = load_clips(a.audio, a.batch)
    audio_s = sum(len(c) for c in clips) / features.SAMPLE_RATE
    block = codec.tokenizer.block
    # warm-up: kernels, allocator, process pool
    fr0 = codec.analyze(clips[0])
    codec.decode(codec.encode_frames([fr0]), [fr0])

    r = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
         "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "clips": len(clips),
         "audio_s": round(audio_s, 2), "command": " ".join(["python", *sys.argv])}
    # one clip at a time
    t_an = t_q = t_net = t_gl = 0.0
    for x in clips:
        fr, t = timed(lambda x=x: features.analyze(x, block), dev)
        t_an += t
        tok, t = timed(lambda fr=fr: codec.encode_frames([fr]), dev)
        t_q += t
        pred, t = timed(lambda fr=fr, tok=tok: codec.decode_frames(tok, [fr]), dev)
        t_net += t
        _, t = timed(lambda pred=pred: griffin_lim([pred[0].mel], dev), dev)
        t_gl += t
    r["single"] = {"analysis_s": t_an, "quantize_s": t_q, "decoder_net_s": t_net, "griffin_lim_s": t_gl,
                   "tokenize_x_realtime": audio_s / (t_an + t_q), "decode_x_realtime": audio_s / (t_net + t_gl)}
    # the whole batch at once
    # spawn: the parent holds CUDA, which must not be forked; the warm-up pass starts every worker
    with ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        list(pool.map(features.analyze, clips, [block] * len(clips)))
        frames, t_an = timed(lambda: list(pool.map(features.analyze, clips, [block] * len(clips))), dev)
    tokens, t_q = timed(lambda: codec.encode_frames(frames), dev)
    preds, t_net = timed(lambda: codec.decode_frames(tokens, frames, batch_size=len(frames)), dev)
    _, t_gl = timed(lambda: griffin_lim([p.mel for p in preds], dev), dev)
    r["batched"] = {"analysis_s": t_an, "quantize_s": t_q, "decoder_net_s": t_net, "griffin_lim_s": t_gl,
                    "tokenize_x_realtime": audio_s / (t_an + t_q), "decode_x_realtime": audio_s / (t_net + t_gl)}
    for k in ("single", "batched"):
        r[k] = {n: round(v, 3) for n, v in r[k].items()}
    print(json.dumps(r, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
