"""Throughput on one and on two local Ray nodes (1 CPU each): scaling efficiency.

    .venv/bin/python bench/cluster_bench.py --emotions 4 --out bench/RESULTS.md

Each configuration is a real cluster (`ray start --head`, then `ray start --address=...` for the
second node) and the pipeline runs through it with ray.address=...; the voice bank is warmed
first so both measure the triplet stages only."""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(pattern):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), sig)
            except ProcessLookupError:
                pass
        time.sleep(2)


def run_on(nodes: int, work: str, overrides: list[str]) -> dict:
    import tempfile
    p, temp = port(), tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: unix socket paths are limited
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={p}", "--include-dashboard=false", f"--temp-dir={temp}",
                        *common], check=True, env=ENV, capture_output=True)
        for _ in range(nodes - 1):
            subprocess.run([RAY, "start", f"--address=127.0.0.1:{p}", *common], check=True, env=ENV,
                           capture_output=True)
        out = f"{work}/out-{nodes}"
        t = time.time()
        subprocess.run([sys.executable, "run.py", f"ray.address=127.0.0.1:{p}", f"output_dir={out}", *overrides],
                       cwd=REPO, check=True, env=ENV, capture_output=True)
        wall = time.time() - t
        run = json.loads(Path(out, "emotion_triplets", "run.json").read_text())
        return {"nodes": nodes, "wall_s": wall, "kept": run["counts"]["kept"], "stage_wall_s": run["wall_s"]}
    finally:
        stop(f"{temp}|127.0.0.1:{p}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--emotions", type=int, default=4)
    ap.add_argument("--out", default=None)
    ap.add_argument("--workdir", default="/tmp/lms-cluster-bench")
    a = ap.parse_args()
    from core.tags import EMOTIONS
    ENV.setdefault("LMS_CACHE_DIR", f"{a.workdir}/cache")
    ov = ["languages=[en,zh]", f"emotions=[{','.join(EMOTIONS[: a.emotions])}]", "texts_per_tag=1",
          "margin.enabled=false", "quality.wer.enabled=false", "splits.enabled=false", "ray.progress=false"]
    subprocess.run([sys.executable, "run.py", f"output_dir={a.workdir}/warm", *ov, "limit=1"], cwd=REPO, check=True,
                   env=ENV, capture_output=True)  # renders the voice bank once
    r1, r2 = run_on(1, a.workdir, ov), run_on(2, a.workdir, ov)
    t1, t2 = r1["kept"] / r1["stage_wall_s"], r2["kept"] / r2["stage_wall_s"]
    text = "\n".join([
        f"### Ray cluster scaling: {r1['kept']} emotion triplets, nodes of 1 CPU each on one 2-core machine", "",
        f"Command: `.venv/bin/python bench/cluster_bench.py --emotions {a.emotions}`", "",
        "| nodes | pipeline wall s (run.json) | command wall s | triplets/s |", "|---|---|---|---|",
        f"| 1 | {r1['stage_wall_s']:.1f} | {r1['wall_s']:.1f} | {t1:.2f} |",
        f"| 2 | {r2['stage_wall_s']:.1f} | {r2['wall_s']:.1f} | {t2:.2f} |", "",
        f"Scaling efficiency 2 nodes vs 1: {100 * t2 / (2 * t1):.0f} % (speed-up {t2 / t1:.2f}x).", ""])
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
