"""Runs survive a failing TTS server and a full disk: real HTTP servers on 127.0.0.1 that are down
(a closed port), answer 500 or answer too late, and a real 300 KB tmpfs as output_dir."""
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench.scripted_tts import ScriptedTtsServer
from conftest import RAW, REPO, read_samples, run_pipeline
from stages.clone_pair import ClonePair
from tts.backends import TtsUnavailable

TINY = ["pipeline=emotion_triplets", "emotions=[happy]", "languages=[en]", "texts_per_tag=1", *RAW,
        "ray.progress=false"]
# fast retries, and a timeout no healthy clone reaches even on a loaded 2-core machine (two test workers):
# only the injected faults fail a request
FAST_HTTP = ["tts=http", "tts.timeout_s=60", "tts.retries=2", "tts.backoff_s=0.05"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def faulty(tts_server):
    started = []

    def start(policy, port=None, slow_s=3.0):
        started.append(ScriptedTtsServer(port or _free_port(), tts_server, slow_s))
        started[-1].policy = policy
        return started[-1].start()

    yield start
    for s in started:
        s.stop()


def _clone_row(tmp_path) -> dict:
    prompt = tmp_path / "prompt.wav"
    t = np.arange(16000) / 16000
    sf.write(prompt, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    clip = {"path": str(prompt), "text": "A prompt."}
    return {"key": "k0", "members": {}, "reject": None,
            "meta": {"prompt_src": clip, "prompt_tgt": clip, "text": "Hello there.", "language": "en",
                     "instruction": "Say it happily.", "seed": 0}}


def _clone_stage(url: str) -> ClonePair:
    stage = ClonePair(sample_rate=16000, tts={"kind": "http", "url": url, "timeout_s": 0.5, "retries": 2,
                                             "backoff_s": 0.05})
    stage.setup()
    return stage


@pytest.mark.parametrize("fault,status", [("down", "connection refused"), ("500", "HTTP 500: "),
                                          ("slow", "no reply within tts.timeout_s=0.5 s")])
def test_unavailable_server_makes_a_tts_unavailable_reject(fault, status, faulty, tmp_path):
    if fault == "down":
        url, server = f"http://127.0.0.1:{_free_port()}", None
    else:
        server = faulty(lambda n, request: fault)
        url = server.url
    [row] = _clone_stage(url).process_rows([_clone_row(tmp_path)])
    assert row["reject"]["reason"] == "tts_unavailable" and row["reject"]["stage"] == "clone_pair"
    assert f"TTS server at {url} unavailable after 3 tries (last: {status}" in row["reject"]["detail"]
    if server:
        assert server.requests == 3  # retried, then given up


def test_unavailable_error_crosses_processes_intact():
    e = pickle.loads(pickle.dumps(TtsUnavailable("http://h:1", 3, "HTTP 500: boom")))
    assert (e.url, e.tries, e.last) == ("http://h:1", 3, "HTTP 500: boom") and "HTTP 500: boom" in str(e)


def test_sporadic_failures_are_rejects_that_a_later_run_retries(faulty, tmp_path, cache_dir, ray_local):
    """One row's requests all get a 500 (the 3rd to 5th request; one actor keeps plan order): that row
    is a tts_unavailable reject with the status, the others are kept; the next run retries it."""
    server = faulty(lambda n, request: "500" if 2 <= n <= 4 else "ok")
    args = [*TINY, *FAST_HTTP, f"tts.url={server.url}", f"output_dir={tmp_path}", "ray.max_actors=1"]
    info, _ = run_pipeline(args)
    d = tmp_path / "emotion_triplets"
    rej = pd.read_parquet(d / "rejects.parquet")
    assert info["counts"]["kept"] == 3 and list(rej["reason"]) == ["tts_unavailable"]
    assert "(last: HTTP 500: " in rej["detail"][0] and "injected" in rej["detail"][0]
    server.policy = lambda n, request: "ok"
    info, _ = run_pipeline(args)
    assert info["counts"]["kept"] == 4 and info["counts"]["rejected"] == 0
    assert info["counts"]["reused_from_previous"] == 3
    assert len({s["key"] for s in read_samples(d)}) == 4


def _cli(*args, timeout=180):
    """`python run.py` as a cron job on a cluster runs it (a driver joining the test's running Ray: a third
    Ray started on a 2-core machine beside two test workers' can miss its start-up deadline); killed with
    everything it started if it overruns."""
    import ray
    if ray.is_initialized():
        args = (*args, f"ray.address={ray.get_runtime_context().gcs_address}")
    proc = subprocess.Popen([sys.executable, "run.py", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"run.py {' '.join(args)} did not exit within {timeout} s")
    return proc.returncode, out, err


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err[-3000:]
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_server_down_from_the_start_stops_the_run(tmp_path, cache_dir, ray_local):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(ValueError, match=rf"^TTS server at {url} unavailable after 3 tries "
                                         r"\(last: connection refused\); 4 requests in a row failed"):
        run_pipeline([*TINY, *FAST_HTTP, f"tts.url={url}", f"output_dir={tmp_path}"])
    assert not (tmp_path / "emotion_triplets" / "latest").exists()


def test_server_breaking_mid_run_stops_it_and_a_rerun_resumes(faulty, tmp_path, cache_dir, ray_local):
    """One actor keeps plan order: row 0 is made, every try of row 1 gets a 500, row 2 is made, then
    every answer is a 500. The run stops with rows 0 and 2 in finished shards; the rerun retries
    row 1 and makes the rest."""
    server = faulty(lambda n, request: "ok" if n < 2 or 5 <= n < 7 else "500")
    args = [*TINY, "emotions=[happy,sad]", *FAST_HTTP, f"tts.url={server.url}", "tts.unavailable_window=2",
            f"output_dir={tmp_path}", "ray.max_actors=1", "writer.max_samples_per_shard=1"]
    d = tmp_path / "emotion_triplets"
    rc, _, err = _cli(*args)
    errors = _error_lines(err)
    assert rc != 0 and len(errors) == 1, err[-3000:]
    assert errors[0].startswith(f"error: TTS server at {server.url} unavailable after 3 tries (last: HTTP 500: ")
    assert "2 requests in a row failed" in errors[0] and not (d / "latest").exists()
    assert len(list(d.glob("releases/*.partial/shards/*.tar"))) == 2  # finished shards kept

    server.policy = lambda n, request: "ok"
    info, _ = run_pipeline(args)
    assert info["counts"]["resumed_shards"] == 2 and info["counts"]["kept"] == 8
    assert info["counts"]["rejected"] == 0
    assert len({s["key"] for s in read_samples(d)}) == 8


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(disk)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def _files(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_full_disk_exits_promptly_and_resumes(small_disk, cache_dir, ray_local):
    """A one-sample release fits in 700 KB; an eight-sample run (~250 KB per sample with its prompt.flac)
    does not, and fails with rows still in flight on Ray (what used to hang the driver at exit)."""
    args = [*TINY, "emotions=[happy,sad]", f"output_dir={small_disk}", "writer.max_samples_per_shard=1"]
    d = small_disk / "emotion_triplets"
    run_pipeline([*args, "limit=1"])
    latest = os.readlink(d / "latest")
    before = _files(d / latest)

    rc, _, err = _cli(*args, timeout=300)     # a hang (the old failure) runs into it; a loaded machine does not
    errors = _error_lines(err)
    assert rc != 0 and len(errors) == 1 and errors[0].startswith(f"error: no space left on {small_disk}"), err
    assert os.readlink(d / "latest") == latest and _files(d / latest) == before
    assert not list(d.glob("releases/*.partial/shards/*.tmp")), "no half-written shard is left"

    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)  # space freed
    info, _ = run_pipeline(args)
    assert info["counts"]["resumed_shards"] == 1 and info["counts"]["kept"] == 8
    assert len({s["key"] for s in read_samples(d)}) == 8


def test_request_settings_do_not_change_sample_keys(tmp_path):
    """Raising tts.timeout_s after a stopped run must resume that run, so request settings stay out
    of the keys; what decides the audio (frame_period) stays in."""
    from conftest import make_cfg
    from pipelines.triplets import plan
    from tts.voice_bank import FolderVoiceBank
    d = tmp_path / "voices" / "alice"
    d.mkdir(parents=True)
    (d / "speaker.json").write_text('{"language": "en"}')
    for tag in ("neutral", "happy"):
        sf.write(d / f"{tag}.flac", np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), 16000)
        (d / f"{tag}.txt").write_text("A short prompt for this voice.")
    bank = FolderVoiceBank(str(tmp_path / "voices"), ["en"], 16000)

    def keys(*overrides):
        cfg = make_cfg(["voice_bank=folder", f"voice_bank.root={tmp_path / 'voices'}", "languages=[en]",
                        "tts=http", "tts.url=http://127.0.0.1:9", *RAW, *overrides])
        return [r["key"] for r in plan(cfg, "emotion", bank, ["happy"], ["en"])[0]]

    base = keys()
    assert base and keys("tts.timeout_s=600", "tts.retries=5", "tts.backoff_s=3", "tts.unavailable_window=2") == base
    assert set(keys("tts.frame_period=10.0")).isdisjoint(base)
