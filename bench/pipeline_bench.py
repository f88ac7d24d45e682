"""Per-stage cost of any pipeline, read from the run.json of a real run on a local Ray.

    .venv/bin/python bench/pipeline_bench.py pipeline=speed_triplets source.texts_per_speaker=4 --out bench/RESULTS.md

Runs `run.py` with the given overrides twice (the first warms the voice bank cache and is not
reported) and reports samples/s and audio seconds produced per CPU-second for each stage and for
the whole run."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--out")]
    out = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--out=")), None)
    pipeline = next(a.split("=", 1)[1] for a in args if a.startswith("pipeline="))
    env = {**os.environ, "LMS_CACHE_DIR": os.environ.get("LMS_CACHE_DIR", "/tmp/lms-bench/cache")}
    work = tempfile.mkdtemp(prefix="lms-bench-")
    base = [sys.executable, "run.py", "ray.progress=false", *args]
    subprocess.run(base + [f"output_dir={work}/warm", "limit=1"], cwd=REPO, env=env, check=True, capture_output=True)
    t = time.time()
    subprocess.run(base + [f"output_dir={work}/run"], cwd=REPO, env=env, check=True, capture_output=True)
    wall = time.time() - t
    run = json.loads(Path(work, "run", pipeline, "run.json").read_text())
    kept, audio_s = run["counts"]["kept"], run["audio_hours"] * 3600
    cpu = run["stage_cpu_s"]
    lines = [f"### {pipeline}: {kept} samples, {audio_s:.0f} s of audio (src+tgt), {os.cpu_count()} cores", "",
             f"Command: `.venv/bin/python bench/pipeline_bench.py {' '.join(args)}`", "",
             "| stage | CPU-s | samples per CPU-s | audio s per CPU-s |", "|---|---|---|---|"]
    for name, sec in cpu.items():
        lines.append(f"| {name} | {sec:.1f} | {kept / sec if sec else float('inf'):.2f} | "
                     f"{audio_s / sec if sec else float('inf'):.1f} |")
    total = sum(cpu.values())
    lines += [f"| **all stages** | {total:.1f} | {kept / total:.2f} | {audio_s / total:.1f} |", "",
              f"Whole run on a local Ray: {run['wall_s']:.1f} s in the pipeline ({wall:.1f} s for the command, Ray "
              f"start-up included): {kept / run['wall_s']:.2f} samples/s, "
              f"{audio_s / run['wall_s']:.1f} audio s per wall second.", ""]
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
