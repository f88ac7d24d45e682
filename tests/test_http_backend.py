"""tts=http against a real HTTP server on 127.0.0.1 wrapping the embedded engine."""

import numpy as np
import pytest

from conftest import RAW, read_samples, run_pipeline
from tts.backends import HttpBackend, TtsUnavailable
from tts.engine import LocalEngine
from tts.presets import preset

PROMPT = "The weather today is mild, with a light breeze from the west and a few clouds in the afternoon."


def test_http_clone_matches_local_engine(tts_server):
    eng = LocalEngine(16000)
    prompt = eng.render(PROMPT, "en", preset("angry"))
    remote = HttpBackend(tts_server, 16000).clone(prompt, PROMPT, "Close the door right now.", "en",
                                              instruction="Make the following audio more angry.")
    local = eng.clone(prompt, PROMPT, "Close the door right now.", "en")[0]
    assert len(remote) == len(local)
    assert np.max(np.abs(remote - local)) < 1e-3  # FLAC 16-bit on the wire
    assert "engine" in HttpBackend(tts_server, 16000).versions()["server"]


def test_http_bad_request_is_a_clear_error(tts_server):
    with pytest.raises(ValueError, match="rejected the request.*not English"):
        HttpBackend(tts_server, 16000).clone(np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32),
                                         "x", "这是中文", "en")


def test_http_unreachable_server_fails_after_retries():
    with pytest.raises(TtsUnavailable, match="unavailable after 2 tries"):
        HttpBackend("http://127.0.0.1:9", 16000, timeout_s=2, retries=1).clone(
            np.zeros(16000, np.float32), "x", "hello", "en")


def test_pipeline_through_http_backend(tts_server, tmp_path, cache_dir, ray_local):
    info, _ = run_pipeline(["pipeline=emotion_triplets", "tts=http", f"tts.url={tts_server}", f"output_dir={tmp_path}",
                            "languages=[en]", "emotions=[surprised]", "texts_per_tag=1", *RAW, "ray.progress=false"])
    samples = read_samples(tmp_path / "emotion_triplets")
    assert len(samples) == 4
    assert samples[0]["json"]["provenance"]["tts"] == "http"
