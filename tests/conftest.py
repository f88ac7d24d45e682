"""Shared fixtures: one local Ray for the session, a cached voice bank, and small real runs."""
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from editor.artifacts import SHIPPED_TOKENIZER  # noqa: E402
# the ids the shipped codec speaks: tiny LLMs and token releases made for the shipped codec name it
SHIPPED_CODEC = json.loads((SHIPPED_TOKENIZER / "config.json").read_text())["version"]


# Selection off (margin, splits, quality filters): tests that count exact outputs use this, and the
# selection stages are tested on their own.
RAW = ["margin.enabled=false", "splits.enabled=false", "quality.wer.enabled=false",
       "quality.prompt_similarity.enabled=false"]


def pytest_xdist_make_scheduler(config, log):
    """Each module goes whole to one xdist worker, so its module fixtures (a trained codec, a server) are
    made once. (pytest 9 names a test's scope differently from what xdist's own --dist loadscope parses.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid.split("::", 1)[0]

    return ByModule(config, log)


def _shared_root(tmp_path_factory) -> Path:
    """The session's temp dir that every xdist worker sees (each worker's own is one level down)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_run(tmp_path_factory, name: str, build) -> tuple[Path, dict]:
    """A session's factory run made once for all workers: the first worker to ask runs build(dir) under a
    file lock, the others wait for it and read the same directory and its run info (they only read)."""
    import json

    from filelock import FileLock
    d = _shared_root(tmp_path_factory) / "runs" / name
    done, failed = d / "info.json", d / "failed.txt"
    d.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(d) + ".lock"):
        if failed.is_file():   # made once, failed once: the other worker does not spend the time again
            raise RuntimeError(f"the shared run {name} failed in another worker:\n{failed.read_text()}")
        if not done.is_file():
            d.mkdir(exist_ok=True)
            try:
                info = build(d)
            except Exception:
                import traceback
                failed.write_text(traceback.format_exc())
                raise
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps(info, default=str))
            os.replace(tmp, done)
    return d, json.loads(done.read_text())


def make_cfg(overrides):
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    # LMS_TEST_CACHE keeps the rendered voice bank between local test sessions
    d = os.environ.get("LMS_TEST_CACHE") or str(_shared_root(tmp_path_factory) / "cache")  # one per session
    Path(d).mkdir(parents=True, exist_ok=True)
    os.environ["LMS_CACHE_DIR"] = d
    return d


@pytest.fixture(scope="session")
def ray_local():
    import ray
    if not ray.is_initialized():     # a pipeline run by an earlier test may have started it (runner.init_ray)
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tts_server():
    """The embedded engine behind a real cloning server (tts/server.py) on 127.0.0.1: its URL."""
    import threading

    from tts.server import make_server
    srv = make_server("127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one torch thread is several times faster than two under
    load. Modules of tiny-LLM tests use it (pytestmark)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def voiced(seconds, sr=16000, f0=140.0, seed=0):
    """A vowel-like clip: harmonics of a wobbling F0 under a smooth envelope."""
    import numpy as np
    t = np.arange(int(seconds * sr)) / sr
    f = f0 + 20 * np.sin(2 * np.pi * 1.5 * t + seed)
    ph = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * ph) / k for k in range(1, 12)) * (0.5 - 0.5 * np.cos(2 * np.pi * t / seconds))
    return (0.2 * x).astype(np.float32)


def tiny_llm(d: Path) -> Path:
    """A random tiny audio LLM in d, made for the shipped codec: for Editor tests."""
    import torch

    from editor.llm import model as llm_model
    from editor.llm.editor import write_codec_meta
    from editor.llm.vocab import load_vocab
    torch.manual_seed(0)
    vocab = load_vocab()
    llm_model.save(llm_model.build_model(llm_model.load_preset("tiny"), vocab), vocab, d)
    write_codec_meta(d, SHIPPED_CODEC)
    return d


@pytest.fixture(scope="session")
def llm_dir(tmp_path_factory):
    """One tiny random audio LLM for the session's Editor tests (read only)."""
    return tiny_llm(tmp_path_factory.mktemp("tiny_llm"))


@pytest.fixture(scope="module")
def short_editor(llm_dir):
    """An Editor over llm_dir whose answers stay short: a random model never says <|eos|>."""
    from editor.llm.editor import Editor
    e = Editor.load(llm_dir, device="cpu")
    e.margin_tokens = 10
    return e


def kill_when(cmd, ready, env, limit_s=300) -> None:
    """Start cmd in a session of its own, wait until ready() holds, then SIGKILL the session: what a
    crash or a pre-empted node does to a run and everything it started."""
    import signal
    import subprocess
    import time
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() - t0 < limit_s, f"not ready in {limit_s} s: {cmd}"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_pipeline(overrides):
    import importlib
    cfg = make_cfg(overrides)
    return importlib.import_module(f"pipelines.{cfg.pipeline.name}").run(cfg), cfg


@pytest.fixture(scope="session")
def emotion_run(tmp_path_factory, cache_dir, ray_local):
    """All 14 emotions, 8 speakers (4 en, 4 zh), one text each: 112 triplets, before margin selection."""
    d, info = shared_run(tmp_path_factory, "emotion", lambda out: run_pipeline(
        ["pipeline=emotion_triplets", f"output_dir={out}", "texts_per_tag=1", *RAW, "ray.progress=false"])[0])
    return d / "emotion_triplets", info


@pytest.fixture(scope="session")
def style_run(tmp_path_factory, cache_dir, ray_local):
    """All 32 styles, 4 English speakers, one text each: 128 triplets."""
    d, info = shared_run(tmp_path_factory, "style", lambda out: run_pipeline(
        ["pipeline=style_triplets", f"output_dir={out}", "languages=[en]", "texts_per_tag=1", *RAW,
         "ray.progress=false"])[0])
    return d / "style_triplets", info


# Speed, denoise and trim runs (tests/test_augment_pipelines.py, tests/test_sample_contract.py).
AUGMENT_BASE = ["languages=[en,zh]", "source.texts_per_speaker=1", *RAW, "ray.progress=false"]


def _augment_run(tmp_path_factory, pipeline: str, *extra) -> tuple:
    d, info = shared_run(tmp_path_factory, pipeline, lambda out: run_pipeline(
        [f"pipeline={pipeline}", f"output_dir={out}", *AUGMENT_BASE, *(e(out) if callable(e) else e for e in extra)])[0])
    return read_samples(d / pipeline), info, d / pipeline


@pytest.fixture(scope="session")
def speed_run(tmp_path_factory, cache_dir, ray_local):
    return _augment_run(tmp_path_factory, "speed_triplets")


def _noise_dir(out: Path) -> str:
    import numpy as np
    import soundfile as sf
    noise_dir = out / "noise"
    noise_dir.mkdir(exist_ok=True)
    sf.write(noise_dir / "hum.wav", (0.1 * np.sin(2 * np.pi * 60 * np.arange(48000) / 16000)
                                     + 0.02 * np.random.default_rng(1).standard_normal(48000)).astype(np.float32), 16000)
    return f"pipeline.noise_dir={noise_dir}"


@pytest.fixture(scope="session")
def denoise_run(tmp_path_factory, cache_dir, ray_local):
    return _augment_run(tmp_path_factory, "denoise_triplets", "source.texts_per_speaker=3",
                        "pipeline.noise_sources=[color,babble,folder]", _noise_dir)


@pytest.fixture(scope="session")
def trim_run(tmp_path_factory, cache_dir, ray_local):
    return _augment_run(tmp_path_factory, "trim_triplets", "source.texts_per_speaker=2")


@pytest.fixture(scope="session")
def para(tmp_path_factory, cache_dir, ray_local):
    """Every tag once for one English and one Mandarin speaker: 20 quadruplets."""
    d, info = shared_run(tmp_path_factory, "para", lambda out: run_pipeline(
        ["pipeline=paralinguistic_quadruplets", f"output_dir={out}", "pipeline.texts_per_tag=1",
         "pipeline.speakers=[en_f1,zh_m1]", "ray.progress=false"])[0])
    return read_samples(d / "paralinguistic_quadruplets"), info, d / "paralinguistic_quadruplets"


def read_samples(pipeline_dir: Path) -> list[dict]:
    """Read shards back with plain webdataset, decoding audio with soundfile."""
    import io
    import json

    import soundfile as sf
    import webdataset as wds
    shards = sorted(str(p) for p in (pipeline_dir / "shards").glob("*.tar"))
    out = []
    for s in wds.WebDataset(shards, shardshuffle=False):
        src, sr = sf.read(io.BytesIO(s["src.flac"]), dtype="float32")
        tgt, sr2 = sf.read(io.BytesIO(s["tgt.flac"]), dtype="float32")
        out.append({"key": s["__key__"], "src": src, "tgt": tgt, "sr": sr, "json": json.loads(s["json"]),
                    "raw_src": s["src.flac"], "raw_tgt": s["tgt.flac"],
                    "members": {k: v for k, v in s.items() if not k.startswith("__") and k != "json"}})
    return out


def clone_sample(key: str, text: str = "Hello there.", seconds: float = 0.5):
    """A small valid Sample (task clone: the smallest schema) with real FLAC members."""
    import numpy as np

    from core.audio import encode_flac
    from core.sample import SAMPLE_VERSION, Sample, prompt_info
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(16000 * seconds)) / 16000)).astype(np.float32)
    members = {"prompt.flac": encode_flac(x, 16000), "tgt.flac": encode_flac(x[::-1].copy(), 16000)}
    return Sample(key, {"task": "clone", "sample_version": SAMPLE_VERSION, "text": text, "language": "en",
                        "speaker": "en_f1", "split": "train", "sample_rate": 16000, "durations": {"tgt": seconds},
                        "provenance": {}, "source_key": None,
                        "prompt": prompt_info(members, "A prompt.", "tgt.flac")}, members)


def _cli_run(*args):
    """run.py as a user runs it: a subprocess in the repository."""
    import subprocess
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=180)


def write_token_release(pipe_dir: Path, examples: list[dict], per_shard: int = 4, digest: str | None = None) -> Path:
    """A token release as pipeline=tokenize writes it (shards, manifest, latest), from examples
    {key, split, speaker, tag, text, src (ids), tgt (ids), prompt (ids) or None}: for trainer tests
    that need exact, small token sequences. digest: the tokenizer_digest its samples record (None: none,
    as releases made before 2026-12-07)."""
    import io

    import numpy as np
    import pandas as pd

    from core.reader import flatten
    from core.sample import SAMPLE_VERSION, Sample
    from core.shards import ShardWriter
    from core.tags import instruction

    def npy(ids):
        buf = io.BytesIO()
        np.save(buf, np.asarray(ids, dtype="<i2"))
        return buf.getvalue()

    rel = pipe_dir / "releases" / "r1"
    writer = ShardWriter(rel / "shards", pipe_dir.name, per_shard, 2**30)
    rows = []
    for e in examples:
        members = {"src.tok.npy": npy(e["src"]), "tgt.tok.npy": npy(e["tgt"])}
        counts = {"src": len(e["src"]), "tgt": len(e["tgt"])}
        prompt = None
        if e.get("prompt") is not None:
            members["prompt.tok.npy"] = npy(e["prompt"])
            counts["prompt"] = len(e["prompt"])
            prompt = {"member": "prompt.flac", "text": e.get("prompt_text", "A prompt."), "target": "src.flac",
                      "sha256": f"{abs(hash(tuple(e['prompt']))):064x}"[:64]}
        js = {"task": "emotion_edit", "sample_version": SAMPLE_VERSION, "text": e["text"], "language": "en",
              "speaker": e["speaker"], "split": e["split"], "sample_rate": 16000,
              "durations": {"src": len(e["src"]) / 41.6667, "tgt": len(e["tgt"]) / 41.6667}, "provenance": {},
              "prompt": prompt, "instruction": instruction("emotion", e["tag"], e["text"]), "edit_type": "emotion",
              "edit_info": e["tag"], "acoustics": {}, "loudness": {}, "quality": {}, "gender": None,
              "intensity": None, "margin": 8.0, "prompts": {"src": {}, "tgt": {}}, "speaker_sim": None,
              "tokenizer_version": SHIPPED_CODEC, "token_counts": counts, "tokens_per_second": 41.6667,
              **({"tokenizer_digest": digest} if digest else {})}
        shard = writer.write(Sample(e["key"], js, members))
        rows.append({"key": e["key"], "shard": shard, **flatten(js)})
    writer.close()
    pd.DataFrame(rows).to_parquet(rel / "manifest.parquet")
    (pipe_dir / "latest").symlink_to("releases/r1")
    for name in ("shards", "manifest.parquet"):
        (pipe_dir / name).symlink_to(f"latest/{name}")
    return pipe_dir
