"""Codec speed in audio seconds per wall second: tokenization and decoding, one clip and batched.

    python bench/editor_speed.py --tokenizer DIR --decoder DIR --audio DIR_OR_SHARDS [--device cuda] \
        [--speakers en_f2,zh_m2] [--batch 32] [--out bench/editor_speed_<device>.json]

--audio is a folder of 16 kHz .flac/.wav clips, or shards (anything `data=` takes), from which the first
--batch distinct clips of --speakers (the held-out ones by default) are drawn. --save-audio DIR
writes the clips used as DIR/NN.flac, a folder small enough to carry to the GPU machine, where
`--audio DIR` then times the same clips.

Tokenization = analysis (dio F0 + log-mel, CPU; batched runs use a process pool over all cores) +
quantization (on --device). Decoding = decoder network (on --device) + the --vocoder (on --device;
the codec's default unless named).
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
from editor.codec import Codec, synthesize
from editor.evaluate import heldout_clips
from editor.vocoder import DEFAULT_VOCODER, VOCODERS


def load_clips(path: str, n: int, speakers: str) -> list[np.ndarray]:
    import soundfile as sf
    p = Path(path)
    files = sorted(p.glob("*.flac")) + sorted(p.glob("*.wav")) if p.is_dir() else []
    if not files:
        try:
            return [x for x, _ in heldout_clips(path, set(speakers.split(",")), n)]
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"--audio {path}: no .flac/.wav files and no usable shards ({e})")
    clips = []
    for f in files[:n]:
        x, sr = sf.read(str(f), dtype="float32", always_2d=True)
        if sr != features.SAMPLE_RATE:
            raise SystemExit(f"{f}: {sr} Hz, the codec wants {features.SAMPLE_RATE}")
        clips.append(x.mean(1))
    return clips


def save_clips(clips: list[np.ndarray], folder: Path) -> None:
    import soundfile as sf
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(clips):
        tmp = folder / f".{i:02d}.flac.part"     # renamed when whole: no half-written clip is ever listed
        sf.write(str(tmp), x, features.SAMPLE_RATE, format="FLAC")
        tmp.rename(folder / f"{i:02d}.flac")


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
    ap.add_argument("--audio", required=True, help="folder of 16 kHz .flac/.wav clips, or shards")
    ap.add_argument("--speakers", default="en_f2,zh_m2", help="whose clips to take from shards")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vocoder", default=DEFAULT_VOCODER, choices=sorted(VOCODERS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=None)
    ap.add_argument("--save-audio", default=None, help="write the clips used here as NN.flac")
    a = ap.parse_args()
    dev = torch.device(a.device)
    codec = Codec.load(a.tokenizer, a.decoder, dev)
    clips = load_clips(a.audio, a.batch, a.speakers)
    if a.save_audio:
        save_clips(clips, Path(a.save_audio))
    audio_s = sum(len(c) for c in clips) / features.SAMPLE_RATE
    block = codec.tokenizer.block
    # warm-up: kernels, allocator, process pool
    fr0 = codec.analyze(clips[0])
    codec.decode(codec.encode_frames([fr0]), [fr0])

    r = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
         "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "clips": len(clips),
         "audio_s": round(audio_s, 2), "vocoder": a.vocoder, "command": " ".join(["python", *sys.argv])}
    # one clip at a time
    t_an = t_q = t_net = t_voc = 0.0
    for x in clips:
        fr, t = timed(lambda x=x: features.analyze(x, block), dev)
        t_an += t
        tok, t = timed(lambda fr=fr: codec.encode_frames([fr]), dev)
        t_q += t
        pred, t = timed(lambda fr=fr, tok=tok: codec.decode_frames(tok, [fr]), dev)
        t_net += t
        _, t = timed(lambda pred=pred: synthesize(pred, a.vocoder, dev), dev)
        t_voc += t
    r["single"] = {"analysis_s": t_an, "quantize_s": t_q, "decoder_net_s": t_net, "vocoder_s": t_voc,
                   "tokenize_x_realtime": audio_s / (t_an + t_q), "decode_x_realtime": audio_s / (t_net + t_voc)}
    # the whole batch at once
    # spawn: the parent holds CUDA, which must not be forked; the warm-up pass starts every worker
    with ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        list(pool.map(features.analyze, clips, [block] * len(clips)))
        frames, t_an = timed(lambda: list(pool.map(features.analyze, clips, [block] * len(clips))), dev)
    tokens, t_q = timed(lambda: codec.encode_frames(frames), dev)
    preds, t_net = timed(lambda: codec.decode_frames(tokens, frames, batch_size=len(frames)), dev)
    _, t_voc = timed(lambda: synthesize(preds, a.vocoder, dev), dev)
    r["batched"] = {"analysis_s": t_an, "quantize_s": t_q, "decoder_net_s": t_net, "vocoder_s": t_voc,
                    "tokenize_x_realtime": audio_s / (t_an + t_q), "decode_x_realtime": audio_s / (t_net + t_voc)}
    for k in ("single", "batched"):
        r[k] = {n: round(v, 3) for n, v in r[k].items()}
    print(json.dumps(r, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
