"""Serving the editor on a tiny random LLM with the shipped codec: the command line (python -m editor)
and the HTTP API on real Ray Serve at 127.0.0.1 (16 concurrent clients, malformed requests, the server
still up after them). One server for the module."""
import base64
import io
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, make_cfg, voiced
from editor.llm.editor import SR, Editor
from editor.serve import cli

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ed(llm_dir):
    """The model the CLI and the server load, called directly: what they must answer."""
    return Editor.load(llm_dir, device="cpu")


def write(path, x, sr=SR):
    sf.write(path, x, sr, subtype="FLOAT")     # float: the CLI and server read exactly what `ed` gets
    return str(path)


# ---- command line ------------------------------------------------------------------------------
def test_cli_clone_writes_16k_wav_as_the_editor(tmp_path, llm_dir, ed, capsys):
    prompt = voiced(0.6)
    out = tmp_path / "clone.wav"
    rc = cli.main(["clone", "--prompt", write(tmp_path / "p.wav", prompt), "--prompt-text", "hello there",
                   "--text", "good morning", "-o", str(out), "--llm", str(llm_dir), "--device", "cpu", "--seed", "3"])
    assert rc == 0
    y, sr = sf.read(out, dtype="float32")
    assert sr == SR and len(y) > 0.5 * SR
    want = ed.clone(prompt, "hello there", "good morning", seed=3)
    np.testing.assert_allclose(y, want, atol=1e-4)          # 16-bit WAV of the same audio
    log = capsys.readouterr().out
    assert "loaded" in log and "RTF" in log and "generation" in log


def test_cli_edit_writes_every_iteration(tmp_path, llm_dir, capsys):
    src = write(tmp_path / "in.wav", voiced(0.5, sr=22050), sr=22050)      # resampled on reading
    out = tmp_path / "edited.wav"
    rc = cli.main(["edit", "--input", src, "--text", "hello", "--edit-type", "emotion", "--edit-info", "happy",
                   "--n-iter", "2", "-o", str(out), "--llm", str(llm_dir), "--device", "cpu"])
    assert rc == 0
    clips = [sf.read(tmp_path / f"edited_iter{k}.wav", dtype="float32") for k in (1, 2)]
    assert all(sr == SR and len(y) > 0.5 * SR for y, sr in clips)
    np.testing.assert_array_equal(sf.read(out, dtype="float32")[0], clips[1][0])    # -o is the last iteration
    assert "timing:" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["--input", "MISSING"], "MISSING: no such audio file"),
    (["--input", "GARBAGE"], "cannot decode audio"),
    (["--edit-type", "joy"], "unknown edit_type 'joy'; valid: emotion, style"),
    (["--edit-info", "joy"], "unknown edit_info 'joy' for emotion; valid: happy"),
    (["--n-iter", "0"], "--n-iter 0"),
    (["-o", "out.mp3"], "must end in .wav"),
])
def test_cli_bad_input_is_a_named_error(tmp_path, llm_dir, capsys, args, needle):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio")
    argv = {"--input": write(tmp_path / "in.wav", voiced(0.5)), "--text": "hello", "--edit-type": "emotion",
            "--edit-info": "happy", "-o": str(tmp_path / "o.wav"), "--llm": str(llm_dir), "--device": "cpu"}
    argv.update(zip(args[::2], args[1::2]))
    argv["--input"] = {"MISSING": str(tmp_path / "MISSING"), "GARBAGE": str(garbage)}.get(argv["--input"], argv["--input"])
    assert cli.main(["edit", *[a for kv in argv.items() for a in kv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err


def test_cli_entry_point_exit_status(tmp_path):
    """python -m editor as a user runs it: a missing file fails fast, one line, status 2."""
    r = subprocess.run([sys.executable, "-m", "editor", "edit", "--input", str(tmp_path / "nope.wav"), "--text", "hi",
                        "--edit-type", "emotion", "--edit-info", "happy", "-o", str(tmp_path / "o.wav")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "error: --input:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.wav").exists()


# ---- HTTP API ----------------------------------------------------------------------------------
def b64(x, sr=SR) -> str:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    return base64.b64encode(buf.getvalue()).decode()


def unb64(s: str) -> np.ndarray:
    y, sr = sf.read(io.BytesIO(base64.b64decode(s)), dtype="float32")
    assert sr == SR
    return y


def call(url, body=None, method=None):
    """(status, JSON answer); body: a dict (sent as JSON) or raw bytes."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def server(llm_dir, ray_local):
    from ray import serve

    from pipelines import serve as serve_pipeline
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = make_cfg(["pipeline=serve", f"pipeline.llm={llm_dir}", f"pipeline.port={port}", "pipeline.blocking=false",
                    "pipeline.batch_wait_timeout_s=0.5", "pipeline.limits.max_audio_s=3",
                    "pipeline.limits.max_body_mb=1"])
    url = serve_pipeline.run(cfg)["url"]
    assert url == f"http://127.0.0.1:{port}"
    yield url
    serve.shutdown()


def test_health(server):
    status, body = call(server + "/health")
    assert status == 200 and body["status"] == "ok" and body["device"] == "cpu"


def test_sixteen_concurrent_clients_each_get_their_own_answer(server, ed):
    kinds = [("emotion", "happy"), ("style", "whisper"), ("speed", "faster"), ("denoise", None)]
    edits = [dict(wav=voiced(0.4 + 0.03 * i, seed=i), text="" if kinds[i % 4][0] == "denoise" else "hello there",
                  edit_type=kinds[i % 4][0], edit_info=kinds[i % 4][1], seed=i) for i in range(12)]
    clones = [dict(prompt_wav=voiced(0.5, seed=20 + i), prompt_text="hello there", text=t, seed=i)
              for i, t in enumerate(["hi", "good morning", "see you later today", "yes"])]
    jobs = [("/edit", {"audio": b64(r["wav"]), **{k: r[k] for k in ("text", "edit_type", "edit_info", "seed")}})
            for r in edits]
    jobs += [("/clone", {"prompt_audio": b64(r["prompt_wav"]), "prompt_text": r["prompt_text"], "text": r["text"],
                         "seed": r["seed"]}) for r in clones]
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(call, server + path, body) for path, body in jobs]
        want = [o[0] for o in ed.edit_many(edits)] + ed.clone_many(clones)     # meanwhile, on this side
        answers = [f.result() for f in futures]
    assert [s for s, _ in answers] == [200] * 16, [a for s, a in answers if s != 200]
    got = [unb64(a["iterations"][0]["audio"] if "iterations" in a else a["audio"]) for _, a in answers]
    # The tokens of a request do not depend on its batch-mates, so lengths match exactly; the
    # vocoder's noise is drawn per batch, so the audio is compared by correlation: each answer is
    # by far the closest to its own request's.
    assert [len(g) for g in got] == [len(w) for w in want]
    for i, g in enumerate(got):
        corr = [np.corrcoef(g[:n], w[:n])[0, 1] for w in want for n in [min(len(g), len(w))]]
        assert int(np.argmax(corr)) == i and corr[i] > 0.2, (i, np.round(corr, 2))
    assert max(a["batch_size"] for _, a in answers) > 1          # requests were batched


BAD_AUDIO = base64.b64encode(b"RIFF....WAVEnot really").decode()


@pytest.mark.parametrize("path, body, status, field, needle", [
    ("/edit", b"{not json", 400, "body", "not valid JSON"),
    ("/edit", b"[1, 2]", 400, "body", "JSON object"),
    ("/edit", b"[" * 100_000, 400, "body", "nested too deeply"),
    ("/edit", {"audio": "!!not base64!!", "text": "hi", "edit_type": "emotion", "edit_info": "sad"}, 400, "audio",
     "not valid base64"),
    ("/edit", {"audio": BAD_AUDIO, "text": "hi", "edit_type": "emotion", "edit_info": "sad"}, 400, "audio",
     "cannot decode audio"),
    ("/edit", {"audio": "AUDIO", "text": "hi", "edit_type": "joy"}, 400, "edit_type", "valid: emotion, style"),
    ("/edit", {"audio": "AUDIO", "text": "hi", "edit_type": "emotion", "edit_info": "joy"}, 400, "edit_info",
     "valid: happy"),
    ("/edit", {"audio": "LONG", "text": "hi", "edit_type": "emotion", "edit_info": "sad"}, 400, "audio",
     "longer than 3 s"),
    ("/edit", {"audio": "SHORT", "text": "hi", "edit_type": "emotion", "edit_info": "sad"}, 400, "audio", "too short"),
    ("/edit", {"text": "hi", "edit_type": "emotion", "edit_info": "sad"}, 400, "audio", "missing"),
    ("/edit", {"audio": "AUDIO", "edit_type": "emotion", "edit_info": "sad"}, 400, "text", "empty"),
    ("/edit", {"audio": "AUDIO", "text": "hi", "edit_type": "emotion", "edit_info": "sad", "n_iter": 9}, 400,
     "n_iter", "[1, 5]"),
    ("/edit", {"audio": "AUDIO", "text": "hi", "edit-type": "emotion"}, 400, "edit-type", "unknown field"),
    ("/edit", {"audio": "AUDIO", "text": "hi", "edit_type": "vad", "temperature": "hot"}, 400, "temperature", "number"),
    ("/edit", {"audio": "x" * 1_100_000}, 413, "body", "limit 1 MB"),
    ("/clone", {"prompt_audio": "AUDIO", "text": "hi"}, 400, "prompt_text", "empty"),
])
def test_bad_request_is_a_named_4xx(server, path, body, status, field, needle):
    if isinstance(body, dict):
        clips = {"AUDIO": voiced(0.5), "LONG": voiced(3.5), "SHORT": voiced(0.1)}
        body = {k: b64(clips[v]) if isinstance(v, str) and v in clips else v for k, v in body.items()}
    got, answer = call(server + path, body)
    assert (got, answer.get("field")) == (status, field) and needle in answer["error"], answer


def test_wrong_route_or_method(server):
    assert call(server + "/nothing", b"{}")[0] == 404
    status, answer = call(server + "/edit")
    assert status == 405 and "POST" in answer["error"]


def test_still_answers_after_bad_requests(server, ed):
    assert call(server + "/health")[1]["status"] == "ok"
    x = voiced(0.5, seed=5)
    status, answer = call(server + "/edit", {"audio": b64(x), "text": "hello", "edit_type": "emotion",
                                             "edit_info": "sad", "n_iter": 2, "seed": 5})
    assert status == 200 and len(answer["iterations"]) == 2 and answer["batch_size"] == 1
    want = ed.edit(x, "hello", "emotion", "sad", n_iter=2, seed=5)       # alone in its batch: the same audio
    for it, w in zip(answer["iterations"], want):
        np.testing.assert_allclose(unb64(it["audio"]), w, atol=1e-4)
        assert it["duration_s"] == pytest.approx(len(w) / SR, abs=1e-3)


def test_pipeline_checks_before_starting_ray(tmp_path):
    from pipelines import serve as serve_pipeline
    with pytest.raises(ValueError, match="pipeline.llm=.*not an artifact directory"):
        serve_pipeline.run(make_cfg(["pipeline=serve", f"pipeline.llm={tmp_path}"]))
    with pytest.raises(ValueError, match="gpus_per_replica"):
        serve_pipeline.run(make_cfg(["pipeline=serve", "pipeline.device=cuda"]))
    with pytest.raises(ValueError, match="max_prompt_s"):
        serve_pipeline.run(make_cfg(["pipeline=serve", "pipeline.limits.max_prompt_s=60"]))
