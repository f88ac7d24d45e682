"""Runs that survive: a real two-node Ray cluster, killed workers, a killed driver, the lock,
incremental refresh and releases. Pipelines run as users run them: `python run.py` subprocesses."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from conftest import RAW, REPO, read_samples

SMALL = ["languages=[en]", "texts_per_tag=1", *RAW, "ray.progress=false"]


def _env():
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _run(*args, timeout=600):
    r = subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True,
                       env=_env(), timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _popen(*args):
    return subprocess.Popen([sys.executable, "run.py", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env(), start_new_session=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_matching(pattern: str, sig=signal.SIGKILL):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    for pid in out:
        if int(pid) != os.getpid():
            try:
                os.kill(int(pid), sig)
            except ProcessLookupError:
                pass
    return out


@contextmanager
def two_node_cluster(tmp_path):
    """`ray start --head` and a second `ray start --address=...` node on this machine. Stopped by
    killing the processes of this cluster only (`ray stop` would also stop other Ray sessions)."""
    import tempfile
    # a short path: Ray's unix sockets live under it and socket paths are limited to ~107 bytes
    port, temp = _free_port(), tempfile.mkdtemp(prefix="rc", dir="/tmp")
    ray = str(Path(sys.executable).parent / "ray")
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        f"--temp-dir={temp}", *common], check=True, env=_env(), capture_output=True, timeout=120)
        subprocess.run([ray, "start", f"--address=127.0.0.1:{port}", *common], check=True, env=_env(),
                       capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        _kill_matching(f"{temp}|127.0.0.1:{port}", signal.SIGTERM)
        time.sleep(2)
        _kill_matching(f"{temp}|127.0.0.1:{port}")


def test_pipeline_on_a_two_node_cluster(tmp_path, cache_dir):
    with two_node_cluster(tmp_path) as address:
        out = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{address}'); "
                              "print(len([n for n in ray.nodes() if n['Alive']]))"],
                             capture_output=True, text=True, env=_env(), timeout=120).stdout
        assert out.strip().endswith("2")
        _run("pipeline=emotion_triplets", f"ray.address={address}", f"output_dir={tmp_path / 'o'}",
             "emotions=[happy]", *SMALL)
    samples = read_samples(tmp_path / "o" / "emotion_triplets")
    assert len(samples) == 4 and len({s["key"] for s in samples}) == 4


def _wait_for(pred, proc, timeout=300):
    t = time.time()
    while not pred():
        if proc.poll() is not None:
            pytest.fail(f"run ended early: {proc.stdout.read()[-2000:]}")
        if time.time() - t > timeout:
            proc.kill()
            pytest.fail("timed out waiting")
        time.sleep(0.05)    # a run on a warm voice-bank cache writes its shards within seconds


def test_killed_worker_loses_nothing(tmp_path, cache_dir):
    args = ["pipeline=emotion_triplets", f"output_dir={tmp_path}", "emotions=[happy,sad,angry]",
            "writer.max_samples_per_shard=2", *SMALL]
    proc = _popen(*args)
    progress = lambda: list((tmp_path / "emotion_triplets" / "releases").glob("*.partial/progress/*.json"))
    _wait_for(lambda: progress(), proc)
    killed = _kill_matching(r"MapWorker\(MapBatches\(ClonePair")
    assert killed, "no worker to kill"
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    keys = [s["key"] for s in read_samples(tmp_path / "emotion_triplets")]
    assert len(keys) == 12 and len(set(keys)) == 12


def test_killed_driver_resumes_to_the_same_output(tmp_path, cache_dir):
    args = ["pipeline=emotion_triplets", "emotions=[happy,sad,angry]", "writer.max_samples_per_shard=2", *SMALL]
    proc = _popen(*args, f"output_dir={tmp_path / 'a'}")
    progress = lambda: list((tmp_path / "a" / "emotion_triplets" / "releases").glob("*.partial/progress/*.json"))
    _wait_for(lambda: len(progress()) >= 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    assert not (tmp_path / "a" / "emotion_triplets" / "latest").exists(), "nothing released by the killed run"
    _run(*args, f"output_dir={tmp_path / 'a'}")
    run = json.loads((tmp_path / "a" / "emotion_triplets" / "run.json").read_text())
    assert run["counts"]["resumed_shards"] >= 2
    _run(*args, f"output_dir={tmp_path / 'b'}", "ray.enabled=false")  # uninterrupted, in one process
    a = read_samples(tmp_path / "a" / "emotion_triplets")
    b = read_samples(tmp_path / "b" / "emotion_triplets")
    assert [s["key"] for s in a] == [s["key"] for s in b] and len(a) == 12
    assert all(x["raw_src"] == y["raw_src"] and x["raw_tgt"] == y["raw_tgt"] for x, y in zip(a, b))


def test_second_run_on_the_same_output_is_refused(tmp_path, cache_dir):
    from core.releases import PipelineDir
    held = PipelineDir(tmp_path, "emotion_triplets")
    held.lock()
    try:
        r = subprocess.run([sys.executable, "run.py", f"output_dir={tmp_path}", "emotions=[happy]", *SMALL],
                           cwd=REPO, capture_output=True, text=True, env=_env(), timeout=300)
        assert r.returncode != 0 and "is locked by a running job (pid" in r.stderr, r.stderr[-2000:]
    finally:
        held.unlock()


def test_refresh_makes_only_new_samples_and_prunes_releases(tmp_path, cache_dir):
    # in one process: what is reused and pruned is the runner's, on Ray or not (a cron job without a cluster)
    base = ["pipeline=emotion_triplets", f"output_dir={tmp_path}", "release.keep=1", *SMALL, "ray.enabled=false"]
    _run(*base, "emotions=[happy]")
    first = {s["key"]: s for s in read_samples(tmp_path / "emotion_triplets")}
    _run(*base, "emotions=[happy,sad]")
    d = tmp_path / "emotion_triplets"
    run = json.loads((d / "run.json").read_text())
    assert run["counts"]["reused_from_previous"] == 4 and run["counts"]["kept"] == 8
    assert run["stage_cpu_s"] and sum(1 for _ in d.glob("releases/*")) == 1
    second = {s["key"]: s for s in read_samples(d)}
    assert set(first) < set(second)
    assert all(second[k]["raw_tgt"] == first[k]["raw_tgt"] for k in first)
    assert (d / "latest").is_symlink() and pd.read_parquet(d / "manifest.parquet")["key"].nunique() == 8


def test_a_thousand_requests_with_broken_ones(tmp_path, cache_dir, ray_local):
    """~5 % broken requests (corrupt, missing or empty audio, absurdly short clips, empty text,
    unknown language): each one lands in rejects with its reason, every good one is written."""
    import numpy as np
    import soundfile as sf

    from conftest import run_pipeline
    from tts.engine import LocalEngine
    from tts.voicing import Voicing
    eng = LocalEngine(16000)
    good = []
    for i, text in enumerate(["Good morning, the train leaves at nine.", "Thank you for the lovely flowers.",
                              "See you soon at the station.", "Please open the door for me."]):
        p = tmp_path / f"good{i}.wav"
        sf.write(p, eng.render(text, "en", Voicing(f0_shift_st=i)), 16000)
        good.append((str(p), text))
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....garbage" * 50)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "blip.wav", np.zeros(400, np.float32), 16000)  # 25 ms: an absurd length
    rows, broken = [], {}
    for i in range(1000):
        kind = ["corrupt", "missing", "empty_audio", "blip", "empty_text", "language"][i // 20 % 6] if i % 20 == 7 else None
        path, text = good[i % len(good)]
        row = {"audio_path": path, "text": text, "speaker": f"spk{i % 10}", "language": "en"}
        if kind == "corrupt":
            row["audio_path"] = str(tmp_path / "corrupt.wav")
        elif kind == "missing":
            row["audio_path"] = str(tmp_path / "nope.wav")
        elif kind == "empty_audio":
            row["audio_path"] = str(tmp_path / "empty.wav")
        elif kind == "blip":
            row["audio_path"] = str(tmp_path / "blip.wav")
        elif kind == "empty_text":
            row["text"] = "  "
        elif kind == "language":
            row["language"] = "klingon"
        row["text"] = row["text"] + f" ({i})" if kind != "empty_text" else row["text"]
        rows.append(row)
        if kind:
            broken[i] = kind
    manifest = tmp_path / "requests.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    info, _ = run_pipeline(["pipeline=speed_triplets", "source=manifest", f"source.path={manifest}",
                            "pipeline.factors_per_source=1", f"output_dir={tmp_path / 'out'}", "languages=[en]",
                            *RAW, "ray.progress=false"])
    d = tmp_path / "out" / "speed_triplets"
    m, rej = pd.read_parquet(d / "manifest.parquet"), pd.read_parquet(d / "rejects.parquet")
    assert len(broken) == 50
    assert len(m) == 950 and m["key"].is_unique
    assert len(rej) == 50 and set(rej["reason"]) <= {"bad_input", "empty_text", "unknown_language", "too_short"}
    details = " ".join(rej["detail"])
    for what in ("cannot decode", "no such audio file", "empty file", "too short", "no transcript", "klingon"):
        assert what in details, what


def test_two_releases_in_one_second_are_both_kept(tmp_path):
    """A rerun that reuses every sample can publish within the second of the previous one: it gets
    its own release directory and `latest` points at it; the first release stays whole."""
    from core.releases import PipelineDir
    out = PipelineDir(tmp_path, "preference_pairs")
    finals = []
    for n in range(3):
        partial = out.partial("abcdef123456")
        (partial / "run.json").write_text(str(n))
        finals.append(out.publish(partial, "20261203-024347-abcdef", keep=5))
    assert [f.name for f in finals] == ["20261203-024347-abcdef", "20261203-024347-abcdef-2", "20261203-024347-abcdef-3"]
    assert [(f / "run.json").read_text() for f in finals] == ["0", "1", "2"]
    assert out.latest() == finals[-1].resolve()


def test_a_release_moved_into_place_before_a_crash_becomes_latest_at_the_next_run(tmp_path, monkeypatch):
    """Killed between moving its release into place and switching `latest`: nothing finished is lost,
    the next run on that output (taking the lock) makes it `latest`."""
    from core.releases import LINKING, PipelineDir
    out = PipelineDir(tmp_path, "emotion_triplets")
    first = out.publish(out.partial("aaaaaa000000"), "20261207-090000-aaaaaa", keep=5)
    partial = out.partial("bbbbbb000000")
    (partial / "run.json").write_text("second")
    monkeypatch.setattr(PipelineDir, "_link", lambda self, final: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        out.publish(partial, "20261207-091000-bbbbbb", keep=5)
    monkeypatch.undo()
    second = tmp_path / "emotion_triplets" / "releases" / "20261207-091000-bbbbbb"
    assert out.latest() == first.resolve() and (second / LINKING).is_file()
    again = PipelineDir(tmp_path, "emotion_triplets")
    again.lock()
    try:
        assert again.latest() == second.resolve() and not (second / LINKING).exists()
        assert (tmp_path / "emotion_triplets" / "run.json").read_text() == "second"
    finally:
        again.unlock()


def test_a_rerun_of_another_plan_salvages_the_killed_runs_finished_samples(tmp_path, cache_dir):
    """A cron job killed mid-run, rerun with another shard size and killed again, then rerun after its
    config grew: the finished samples of both killed runs are taken over by key instead of made again,
    their work dirs go when the new release is published, and the release holds the keys and audio an
    uninterrupted run of the new plan writes."""
    base = [*SMALL, "pipeline=emotion_triplets", f"output_dir={tmp_path / 'a'}"]
    d = tmp_path / "a" / "emotion_triplets"
    records = lambda: list((d / "releases").glob("*.partial/progress/*.json"))
    finished = lambda: {m["key"] for p in records() for m in json.loads(p.read_text())["manifest"]}
    for shard_size, wanted in ((2, 2), (3, 1)):      # the second run is another plan, of the same samples
        before = {p.name for p in (d / "releases").glob("*.partial")}
        proc = _popen(*base, "emotions=[happy,sad,angry]", f"writer.max_samples_per_shard={shard_size}")
        _wait_for(lambda: sum(p.parent.parent.name not in before for p in records()) >= wanted, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(list((d / "releases").glob("*.partial"))) == 2
    salvageable = finished()
    _run(*base, "emotions=[happy,sad,angry,fear]", "writer.max_samples_per_shard=2")
    run = json.loads((d / "run.json").read_text())
    assert run["counts"]["salvaged_from_killed_run"] == len(salvageable) >= 4
    assert not list((d / "releases").glob("*.partial")), "a killed run's dir outlived the release"
    assert not (d / "latest" / "plan.json").exists()
    _run(*SMALL, "pipeline=emotion_triplets", "emotions=[happy,sad,angry,fear]", "writer.max_samples_per_shard=2",
         f"output_dir={tmp_path / 'b'}", "ray.enabled=false")
    a, b = read_samples(d), read_samples(tmp_path / "b" / "emotion_triplets")
    assert [s["key"] for s in a] == [s["key"] for s in b] and len(a) == 16
    assert all(x["raw_src"] == y["raw_src"] and x["raw_tgt"] == y["raw_tgt"] for x, y in zip(a, b))
