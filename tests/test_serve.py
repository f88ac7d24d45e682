"""Serving the editor on a tiny random LLM with the shipped codec: the command line (python -m editor)
and the HTTP API on real Ray Serve at 127.0.0.1 (16 concurrent clients, malformed requests, the server
still up after them). One server for the module."""
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
from core.http_body import encode_multipart, parse_multipart
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
                   "--text", "good morning", "-o", str(out), "--llm", str(llm_dir), "--device", "cpu", "--seed", "4"])
    assert rc == 0
    y, sr = sf.read(out, dtype="float32")
    assert sr == SR and len(y) > 0.5 * SR
    want = ed.clone(prompt, "hello there", "good morning", seed=4)
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
    # --guidance: the same request decoded against a plain copy of its source gives other audio
    rc = cli.main(["edit", "--input", src, "--text", "hello", "--edit-type", "emotion", "--edit-info", "happy",
                   "-o", str(tmp_path / "guided.wav"), "--llm", str(llm_dir), "--device", "cpu", "--guidance", "3"])
    assert rc == 0 and not np.array_equal(sf.read(tmp_path / "guided.wav", dtype="float32")[0], clips[0][0])


@pytest.mark.parametrize("args, needle", [
    (["--input", "MISSING"], "MISSING: no such audio file"),
    (["--input", "GARBAGE"], "cannot decode audio"),
    (["--edit-type", "joy"], "unknown edit_type 'joy'; valid: emotion, style"),
    (["--edit-info", "joy"], "unknown edit_info 'joy' for emotion; valid: happy"),
    (["--n-iter", "0"], "--n-iter 0"),
    (["-o", "out.mp3"], "must end in .wav"),
    (["--f0-decimation", "13"], "f0_decimation=13"),
    (["--guidance", "-1"], "--guidance -1.0: must be a number >= 0"),
    (["--guidance", "inf"], "--guidance inf: must be a number >= 0"),
    (["--text", " "], "--text: empty"),
    (["--temperature", "-1"], "--temperature: must be a number >= 0"),
    (["--input", "SHORT"], "short.wav: too short (0.250 s; at least 0.3 s needed)"),
    (["--edit-info", "NONE"], "--edit-info: required for emotion edits; valid: happy"),
    (["--threads", "0"], "--threads 0: must be at least 1"),
    (["-o", "FILE/o.wav"], "cannot make its folder"),
    (["-o", "DIR.wav"], "is a directory"),
    (["--edit-type", "paralinguistic", "--edit-info", "hello [Laughter]", "--input", "LONG"], "limit 30 s"),
    (["--text", "hi \udcff"], "--text: not valid Unicode"),
])
def test_cli_bad_input_is_a_named_error(tmp_path, capsys, args, needle):
    """Each names the option at fault, and comes before the model loads: --llm names no model here."""
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio")
    argv = {"--input": write(tmp_path / "in.wav", voiced(0.5)), "--text": "hello", "--edit-type": "emotion",
            "--edit-info": "happy", "-o": str(tmp_path / "o.wav"), "--llm": str(tmp_path / "no_llm"), "--device": "cpu"}
    argv.update(zip(args[::2], args[1::2]))
    argv["--input"] = {"MISSING": str(tmp_path / "MISSING"), "GARBAGE": str(garbage),
                       "SHORT": write(tmp_path / "short.wav", voiced(0.25)),
                       "LONG": write(tmp_path / "long.wav", np.tile(voiced(1.0), 31))}.get(argv["--input"], argv["--input"])
    (tmp_path / "FILE").write_text("a file, not a folder")
    (tmp_path / "DIR.wav").mkdir()
    argv["-o"] = str(tmp_path / argv["-o"]) if argv["-o"] in ("FILE/o.wav", "DIR.wav") else argv["-o"]
    argv = {k: v for k, v in argv.items() if v != "NONE"}
    assert cli.main(["edit", *[a for kv in argv.items() for a in kv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err and "no_llm" not in err


def test_cli_clone_checks_its_texts_before_the_model_loads(tmp_path, capsys):
    argv = ["clone", "--prompt", write(tmp_path / "p.wav", voiced(0.8)), "--prompt-text", "", "--text", "hi",
            "-o", str(tmp_path / "o.wav"), "--llm", str(tmp_path / "no_llm")]
    assert cli.main(argv) == 2 and "error: --prompt-text: empty" in capsys.readouterr().err


def test_cli_entry_point_exit_status(tmp_path):
    """python -m editor as a user runs it: a missing file fails fast, one line, status 2."""
    r = subprocess.run([sys.executable, "-m", "editor", "edit", "--input", str(tmp_path / "nope.wav"), "--text", "hi",
                        "--edit-type", "emotion", "--edit-info", "happy", "-o", str(tmp_path / "o.wav")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "error: --input:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.wav").exists()


# ---- HTTP API ----------------------------------------------------------------------------------
def wav(x, sr=SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def unwav(data: bytes) -> np.ndarray:
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == SR
    return y


def call(url, form=None, method=None, body=None, ctype=None):
    """(status, headers, answer): the answer's WAV bytes, its parts {name: bytes} when multipart, or its
    JSON. form: (name, value) pairs sent as multipart (bytes values are file parts); or a raw body."""
    if form is not None:
        ctype, body = encode_multipart(list(form.items()) if isinstance(form, dict) else form)
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype} if ctype else {})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            status, headers, data = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())
    kind = headers.get("Content-Type", "")
    if kind.startswith("multipart/form-data"):
        return status, headers, parse_multipart(kind, data)[1]
    return status, headers, data if kind == "audio/wav" else json.loads(data)


@pytest.fixture(scope="module")
def server(llm_dir, ray_local):
    from ray import serve

    from pipelines import serve as serve_pipeline
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = make_cfg(["pipeline=serve", f"pipeline.llm={llm_dir}", f"pipeline.port={port}", "pipeline.blocking=false",
                    "pipeline.batch_wait_timeout_s=0.5", "pipeline.limits.max_audio_s=3",
                    "pipeline.analysis_processes=true",      # the GPU servers' choice, in a real replica
                    "pipeline.continuous_rows=8",            # as on CUDA: every batch's rows in one decode
                    "pipeline.limits.max_body_mb=1"])
    url = serve_pipeline.run(cfg)["url"]
    assert url == f"http://127.0.0.1:{port}"
    yield url
    serve.shutdown()


def test_health(server):
    status, _, body = call(server + "/health")
    assert status == 200 and body["status"] == "ok" and body["device"] == "cpu"
    assert body["guidance"] == {} and body["guided_iterations"] is None     # the test LLM has no inference.json
    assert body["continuous_rows"] == 8
    assert body["vocoder_graphs"] is False       # CUDA only


def test_sixteen_concurrent_clients_each_get_their_own_answer(server, ed):
    kinds = [("emotion", "happy"), ("style", "whisper"), ("speed", "faster"), ("denoise", None)]
    edits = [dict(wav=voiced(0.4 + 0.03 * i, seed=i), text="" if kinds[i % 4][0] == "denoise" else "hello there",
                  edit_type=kinds[i % 4][0], edit_info=kinds[i % 4][1], seed=i) for i in range(12)]
    clones = [dict(prompt_wav=voiced(0.5, seed=20 + i), prompt_text="hello there", text=t, seed=i)
              for i, t in enumerate(["hi", "good morning", "see you later today", "yes"])]
    jobs = [("/edit", {"audio": wav(r["wav"]), "seed": str(r["seed"]), "edit_type": r["edit_type"],
                       **({"text": r["text"]} if r["text"] else {}),
                       **({"edit_info": r["edit_info"]} if r["edit_info"] else {})}) for r in edits]
    jobs += [("/clone", {"prompt_audio": wav(r["prompt_wav"]), "prompt_text": r["prompt_text"], "text": r["text"],
                         "seed": str(r["seed"])}) for r in clones]
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(call, server + path, form) for path, form in jobs]
        want = [o[0] for o in ed.edit_many(edits)] + ed.clone_many(clones)     # meanwhile, on this side
        answers = [f.result() for f in futures]
    assert [s for s, _, _ in answers] == [200] * 16, [a for s, _, a in answers if s != 200]
    got = [unwav(a) for _, _, a in answers]
    # The server batches these otherwise than edit_many did here. No batch-mate's data leaks into an
    # answer, but another batch shape rounds floats otherwise: about 1e-3 of the waveform, and now and
    # then a sampled token of this random, nearly flat model, after which the answer goes its own way.
    # So: same lengths, and each answer is by far the closest to its own request's (others' are near 0).
    # (An answer this model ends at once is empty on both sides: it has nothing to correlate.)
    assert [len(g) for g in got] == [len(w) for w in want]
    live = [i for i, w in enumerate(want) if len(w)]
    assert len(live) >= 12
    for i in live:
        corr = {j: np.corrcoef(got[i][:n], want[j][:n])[0, 1] for j in live for n in [min(len(got[i]), len(want[j]))]}
        runner_up = max(c for j, c in corr.items() if j != i)
        assert max(corr, key=corr.get) == i and corr[i] > 0.1 and corr[i] > 2 * runner_up, (i, corr)
    assert max(int(h["X-Batch-Size"]) for _, h, _ in answers) > 1          # requests were batched


SAD = {"audio": "AUDIO", "text": "hi", "edit_type": "emotion", "edit_info": "sad"}


@pytest.mark.parametrize("path, form, status, field, needle", [
    ("/edit", b'{"audio": "UklGRg=="}', 415, "body", "must be multipart/form-data"),
    ("/edit", {**SAD, "audio": b"RIFF....WAVEnot really"}, 400, "audio", "cannot decode audio (Error in WAV file"),
    ("/edit", {**SAD, "audio": "a text part"}, 400, "audio", "must be a file part"),
    ("/edit", {**SAD, "text": b"hi"}, 400, "text", "must be a text part"),
    ("/edit", [("audio", "AUDIO"), ("audio", "AUDIO")], 400, "body", "given more than once"),
    ("/edit", {**SAD, "edit_type": "joy"}, 400, "edit_type", "valid: emotion, style"),
    ("/edit", {**SAD, "edit_info": "joy"}, 400, "edit_info", "valid: happy"),
    ("/edit", {**SAD, "audio": "LONG"}, 400, "audio", "longer than 3 s"),
    ("/edit", {**SAD, "audio": "SHORT"}, 400, "audio", "too short"),
    ("/edit", {k: v for k, v in SAD.items() if k != "audio"}, 400, "audio", "missing"),
    ("/edit", {k: v for k, v in SAD.items() if k != "text"}, 400, "text", "empty"),
    ("/edit", {**SAD, "n_iter": "9"}, 400, "n_iter", "[1, 5]"),
    ("/edit", {**SAD, "n_iter": "1.5"}, 400, "n_iter", "integer"),
    ("/edit", {**SAD, "prompt_fixed": "maybe"}, 400, "prompt_fixed", "false, true"),
    ("/edit", {**SAD, "iterations": "some"}, 400, "iterations", "last, all"),
    ("/edit", {**SAD, "edit-type": "emotion"}, 400, "edit-type", "unknown field"),
    ("/edit", {**SAD, "temperature": "hot"}, 400, "temperature", "number"),
    ("/edit", {**SAD, "temperature": "nan"}, 400, "temperature", "number"),
    ("/edit", {**SAD, "audio": b"x" * 1_100_000}, 413, "body", "limit 1 MB"),
    ("/clone", {"prompt_audio": "AUDIO", "text": "hi"}, 400, "prompt_text", "empty"),
    ("/clone", {"prompt_audio": "AUDIO", "prompt_text": "a", "text": "x" * 500}, 400, "text", "clone the text in parts"),
])
def test_bad_request_is_a_named_4xx(server, path, form, status, field, needle):
    clips = {"AUDIO": voiced(0.5), "LONG": voiced(3.5), "SHORT": voiced(0.1)}
    if isinstance(form, bytes):
        got, _, answer = call(server + path, body=form, ctype="application/json")
    else:
        pairs = form.items() if isinstance(form, dict) else form
        got, _, answer = call(server + path, [(k, wav(clips[v]) if v in clips else v) for k, v in pairs])
    assert (got, answer.get("field")) == (status, field) and needle in answer["error"], answer


def test_long_compressed_upload_is_refused_from_its_header(monkeypatch):
    """A small compressed file can hold hours of audio: it is refused by its header, never decoded."""
    from core import audio
    from editor.serve.schema import BadRequest, Limits, edit_request
    buf = io.BytesIO()
    sf.write(buf, np.zeros(20 * 60 * 8000, np.float32), 8000, format="FLAC")       # 20 min of silence
    assert len(buf.getvalue()) < 2_000_000
    ctype, body = encode_multipart([("audio", buf.getvalue()), ("text", "hi"), ("edit_type", "emotion"),
                                    ("edit_info", "sad")])
    monkeypatch.setattr(audio.sf, "read", lambda *a, **k: pytest.fail("decoded a file its header refuses"))
    with pytest.raises(BadRequest) as e:
        edit_request(ctype, body, Limits(max_audio_s=60.0, max_body_mb=20.0))
    assert e.value.field == "audio" and "1200.0 s is longer than 60 s" in str(e.value.body())


def test_wrong_route_or_method(server):
    assert call(server + "/nothing", body=b"{}")[0] == 404
    status, _, answer = call(server + "/edit")
    assert status == 405 and "POST" in answer["error"]


def test_still_answers_after_bad_requests(server, ed):
    assert call(server + "/health")[2]["status"] == "ok"
    x = voiced(0.5, seed=5)
    form = {"audio": wav(x), "text": "hello", "edit_type": "emotion", "edit_info": "sad", "n_iter": "2", "seed": "5"}
    status, headers, parts = call(server + "/edit", {**form, "iterations": "all"})
    assert status == 200 and sorted(parts) == ["iter1.wav", "iter2.wav"] and headers["X-Batch-Size"] == "1"
    want = ed.edit(x, "hello", "emotion", "sad", n_iter=2, seed=5)       # alone in its batch: the same audio
    for k, w in enumerate(want, 1):
        np.testing.assert_allclose(unwav(parts[f"iter{k}.wav"]), w, atol=1e-4)
    status, headers, last = call(server + "/edit", form)            # by default: the last iteration's WAV
    assert status == 200 and headers["Content-Type"] == "audio/wav"
    np.testing.assert_allclose(unwav(last), want[-1], atol=1e-4)


def test_pipeline_checks_before_starting_ray(tmp_path):
    from pipelines import serve as serve_pipeline
    with pytest.raises(ValueError, match="pipeline.llm=.*not an artifact directory"):
        serve_pipeline.run(make_cfg(["pipeline=serve", f"pipeline.llm={tmp_path}"]))
    with pytest.raises(ValueError, match="pipeline.f0_decimation=0"):
        serve_pipeline.run(make_cfg(["pipeline=serve", "pipeline.f0_decimation=0"]))
    with pytest.raises(ValueError, match="pipeline.continuous_rows=1"):
        serve_pipeline.run(make_cfg(["pipeline=serve", "pipeline.continuous_rows=1"]))
    with pytest.raises(ValueError, match="gpus_per_replica"):
        serve_pipeline.run(make_cfg(["pipeline=serve", "pipeline.device=cuda"]))
    for bad in ("-1", "half"):
        with pytest.raises(ValueError, match=f"gpus_per_replica={bad}.*0 or more"):
            serve_pipeline.run(make_cfg(["pipeline=serve", f"pipeline.gpus_per_replica={bad}"]))
    # a share runs (the replicas take turns on the GPU), with a warning that it serves no more than one replica
    assert "serve no more than one replica" in serve_pipeline.gpu_share_note(0.5)
    assert serve_pipeline.gpu_share_note(1) is None and serve_pipeline.gpu_share_note(0) is None
    with pytest.raises(ValueError, match="max_prompt_s"):
        serve_pipeline.run(make_cfg(["pipeline=serve", "pipeline.limits.max_prompt_s=60"]))
