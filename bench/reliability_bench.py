"""Reliability: real runs with injected faults, counting requests, faults and samples lost.

    .venv/bin/python bench/reliability_bench.py | tee bench/results/reliability.log

Every run is `python run.py` as a cron job runs it (tts=http, 3 emotions x 4 English speakers =
12 triplets, one shard per sample). All runs talk to one scripted TTS server on a fixed port that
forwards to the real cloning server of tts/server.py unless told to fail, so every scenario plans
the same keys. Scenarios, each on its own output_dir, each rerun until it releases:

  server   down (closed port), then 500 after 6 requests, then no reply in time (slow) after 6
           more, then 500 on ~10 % of requests and on every try of one row, then healthy
  disk     output_dir on a tmpfs too small for the run (root), then grown (space freed)
  driver   the driver and everything it started killed with SIGKILL after 2 shards
  worker   the clone worker killed with SIGKILL after the first shard

Lost = planned keys missing from a scenario's final release (goal 0). The final releases must also
hold the same samples byte for byte. Needs root for the tmpfs; the voice bank is cached in
LMS_CACHE_DIR (default /tmp/lms-bench/cache)."""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.scripted_tts import ScriptedTtsServer  # noqa: E402

PLAN = ["pipeline=emotion_triplets", "emotions=[happy,sad,angry]", "languages=[en]", "texts_per_tag=1",
        "margin.enabled=false", "splits.enabled=false", "quality.wer.enabled=false",
        "quality.prompt_similarity.enabled=false", "ray.progress=false", "writer.max_samples_per_shard=1"]
HTTP = ["tts=http", "tts.timeout_s=2", "tts.backoff_s=0.2", "tts.unavailable_window=4"]
TRIES = 3  # tts.retries=2 (default) + the first
PLANNED = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Processes started by pid, directly or not (Ray's raylet, workers): read from /proc."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Runs:
    """run.py invocations of one scenario, with a log line each."""

    def __init__(self, name: str, out: Path, extra: list[str]):
        self.name, self.dir, self.args = name, out / "emotion_triplets", [*PLAN, f"output_dir={out}", *extra]
        self.n = 0

    def popen(self):
        self.n += 1
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen([sys.executable, "run.py", *self.args], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)

    def finish(self, proc, what: str, timeout=600) -> int:
        t = time.time()
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            err = f"error: no exit within {timeout} s (killed)"
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        self.error = errors[-1] if errors else None
        tb = "Traceback" in err
        print(f"  {self.name} run {self.n} ({what}): exit {proc.returncode} after {time.time() - t:.0f} s"
              f"{', traceback!' if tb else ''}" + (f"\n      {errors[-1][:220]}" if errors else ""), flush=True)
        return proc.returncode

    def run(self, what: str) -> int:
        return self.finish(self.popen(), what)

    def shards(self) -> int:
        return len(list(self.dir.glob("releases/*.partial/progress/*.json")))

    def wait_for_shards(self, proc, n: int):
        while self.shards() < n:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name}: the run ended before {n} shards")
            time.sleep(0.3)


def kill_tree(proc):
    pids = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()


def final_release(d: Path) -> dict:
    """key -> (src.flac, tgt.flac) of the released shards, and the release's run counts."""
    from core.reader import Release
    samples = {s.key: (s.members["src.flac"], s.members["tgt.flac"])
               for s in Release(d / "shards").samples(members=["src.flac", "tgt.flac"], decode=False)}
    run = json.loads((d / "run.json").read_text())
    return samples, run


def scenario_server(work: Path, server: ScriptedTtsServer, url: str, faults: dict) -> Runs:
    runs = Runs("server", work / "server", [*HTTP, f"tts.url={url}"])
    rc = runs.run("server down: closed port")
    assert rc != 0 and "connection refused" in runs.error
    faults["server down (runs)"] += 1
    rows = int(re.search(r"(\d+) requests in a row failed", runs.error).group(1))
    # each failed row of the window: TRIES refused tries (rows in flight beyond it are not counted)
    faults["refused connections while down"] = rows * TRIES
    server.start()
    server.policy = lambda n, req: "ok" if n < 6 else "500"
    rc = runs.run("500 after 6 requests")
    assert rc != 0
    base = sum(server.counts.values())
    server.policy = lambda n, req: "ok" if n < base + 6 else "slow"
    rc = runs.run("no reply in time after 6 requests")
    assert rc != 0
    rng, doomed = random.Random(0), []

    def sporadic(n, req):  # every try of the first request seen fails; others fail 10 % of the time
        this = (req["prompt_audio"], req["text"])
        doomed[:] = doomed or [this]
        return "500" if this == doomed[0] or rng.random() < 0.1 else "ok"
    server.policy = sporadic
    rc = runs.run("500 on ~10 % of requests and on one row")
    assert rc == 0
    sporadic_rejects = json.loads((runs.dir / "run.json").read_text())["counts"]["rejected"]
    print(f"      released with {sporadic_rejects} tts_unavailable rejects; the next run retries them", flush=True)
    server.policy = lambda n, req: "ok"
    assert runs.run("healthy: retries the rejects") == 0
    return runs


def scenario_disk(work: Path, url: str, faults: dict) -> Runs:
    disk = work / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(disk)], check=True)
    try:
        runs = Runs("disk", disk, [*HTTP, f"tts.url={url}"])
        assert runs.run("output_dir on a 700 KB tmpfs") != 0
        faults["disk full"] += 1
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        assert runs.run("space freed") == 0
        keep = work / "disk-release"  # copy out before the tmpfs goes
        subprocess.run(["cp", "-a", str(disk / "emotion_triplets"), str(keep)], check=True)
        runs.dir = keep
        return runs
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def scenario_driver(work: Path, url: str, faults: dict) -> Runs:
    runs = Runs("driver", work / "driver", [*HTTP, f"tts.url={url}"])
    proc = runs.popen()
    runs.wait_for_shards(proc, 2)
    kill_tree(proc)
    faults["killed driver"] += 1
    print(f"  driver run {runs.n}: killed with SIGKILL after {runs.shards()} shards", flush=True)
    assert runs.run("rerun after the kill") == 0
    return runs


def scenario_worker(work: Path, url: str, faults: dict) -> Runs:
    runs = Runs("worker", work / "worker", [*HTTP, f"tts.url={url}"])
    proc = runs.popen()
    runs.wait_for_shards(proc, 1)
    for pid in descendants(proc.pid):
        if "MapWorker(MapBatches(ClonePair" in cmdline(pid):
            os.kill(pid, signal.SIGKILL)
            faults["killed worker"] += 1
    assert faults["killed worker"], "no clone worker found to kill"
    assert runs.finish(proc, f"{faults['killed worker']} clone worker killed") == 0
    return runs


def main():
    from tts.server import make_server
    os.environ.setdefault("LMS_CACHE_DIR", "/tmp/lms-bench/cache")
    work = Path(tempfile.mkdtemp(prefix="lms-reliability-"))
    t0 = time.time()
    upstream = make_server("127.0.0.1", 0)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ScriptedTtsServer(port, f"http://127.0.0.1:{upstream.server_address[1]}")
    faults = {"server down (runs)": 0, "refused connections while down": 0, "killed driver": 0,
              "killed worker": 0, "disk full": 0}
    print(f"reliability bench: {PLANNED} planned triplets per scenario, work dir {work}", flush=True)
    scenarios = [scenario_server(work, server, url, faults)]
    try:
        scenarios += [scenario_disk(work, url, faults), scenario_driver(work, url, faults),
                      scenario_worker(work, url, faults)]
    finally:
        server.stop()
        upstream.shutdown()
    faults["HTTP 500 answers"] = server.counts["500"]
    faults["no reply in time (slow)"] = server.counts["slow"]

    releases = {r.name: final_release(r.dir) for r in scenarios}
    reference = releases["server"][0]
    print("\n| scenario | runs | kept | rejected | lost | same bytes as `server` |\n|---|---|---|---|---|---|")
    lost_total = 0
    for r in scenarios:
        samples, run = releases[r.name]
        lost = PLANNED - len(samples)
        lost_total += lost
        same = samples == reference
        print(f"| {r.name} | {r.n} | {run['counts']['kept']} | {run['counts']['rejected']} | {lost} | {same} |")
    requests = sum(server.counts.values())
    print(f"\nrequests tried: at least {requests + faults['refused connections while down']} "
          f"({server.counts['ok']} answered, {server.counts['500']} HTTP 500, {server.counts['slow']} left "
          f"without reply, at least {faults['refused connections while down']} refused while the server was down)")
    print("faults injected: " + ", ".join(f"{k} {v}" for k, v in faults.items()))
    print(f"samples planned {PLANNED * len(scenarios)}, released {sum(len(s) for s, _ in releases.values())}, "
          f"lost {lost_total}; wall {time.time() - t0:.0f} s")
    sys.exit(1 if lost_total else 0)


if __name__ == "__main__":
    main()
