"""Tokenizer stage throughput: audio hours tokenized per CPU-hour and per wall (GPU) hour.

Runs the stage of pipeline=tokenize (stages/tokenize_audio.py) in this process, without Ray, over the
audio members of a release, the way one Ray actor runs it:

    python bench/tokenize_throughput.py --data outputs/emotion_triplets --device cpu --out bench/results/tokenize_cpu.json
    python bench/tokenize_throughput.py --data REL --device cuda --out bench/results/tokenize_h200.json

CPU-hours count this process's CPU time (all threads); the feature analysis (F0, mel) runs on the CPU
whatever the device, the encoder on the device."""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.tokenize import SHIPPED, release_rows  # noqa: E402
from stages.tokenize_audio import TokenizeAudio  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a Ray actor of 1 CPU uses 1)")
    ap.add_argument("--max-samples", type=int, default=200)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    rows = release_rows(a.data)[0][: a.max_samples]
    stage = TokenizeAudio(tokenizer=str(SHIPPED), device=a.device, max_duration_s=30.0)
    stage.setup()
    stage.process(json.loads(json.dumps(rows[0])))  # warm-up: kernels, caches
    cpu0, wall0 = time.process_time(), time.perf_counter()
    audio_s = tokens = 0
    for row in rows:
        row = stage.process(row)
        audio_s += sum(row["meta"]["seconds"].values())
        tokens += sum(row["meta"]["token_counts"].values())
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    res = {"data": a.data, "device": a.device, "gpu": torch.cuda.get_device_name() if a.device.startswith("cuda") else None,
           "cpu": platform.processor() or platform.machine(), "torch_threads": a.threads, "samples": len(rows),
           "audio_hours": round(audio_s / 3600, 4), "tokens": tokens, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "audio_hours_per_cpu_hour": round(audio_s / cpu, 1), "audio_hours_per_wall_hour": round(audio_s / wall, 1),
           "command": " ".join(sys.argv)}
    print(json.dumps(res, indent=1))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
