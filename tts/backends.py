"""TTS backend protocol. Every backend clones: prompt audio + prompt text + target text
(+ optional instruction) -> audio. `tts=local` is the embedded engine; `tts=http` posts the same
request to a user's cloning server (see tts/server.py for the wire format)."""
import base64
import json
import time
import urllib.error
import urllib.request
from typing import Protocol

import numpy as np

from core import audio


class CloneBackend(Protocol):
    name: str
    sample_rate: int

    def clone(self, prompt: np.ndarray, prompt_text: str, text: str, language: str,
              instruction: str | None = None, base_voice: str | None = None, seed: int = 0) -> np.ndarray: ...

    def versions(self) -> dict: ...


class LocalBackend:
    def __init__(self, sample_rate: int, frame_period: float = 5.0, threads: int = 1, cache_dir: str | None = None):
        from tts.engine import LocalEngine
        self.engine = LocalEngine(sample_rate, frame_period, threads, cache_dir)
        self.name = self.engine.name
        self.sample_rate = sample_rate

    def clone(self, prompt, prompt_text, text, language, instruction=None, base_voice=None, seed=0):
        return self.engine.clone(prompt, prompt_text, text, language, instruction, base_voice, seed)[0]

    def versions(self) -> dict:
        return self.engine.versions()


class HttpBackend:
    """POST {url}/clone with JSON; the reply body is the audio (any soundfile format)."""

    def __init__(self, url: str, sample_rate: int, timeout_s: float = 120.0, retries: int = 2):
        self.url = url.rstrip("/")
        self.name = f"http:{self.url}"
        self.sample_rate = sample_rate
        self.timeout_s = timeout_s
        self.retries = retries

    def clone(self, prompt, prompt_text, text, language, instruction=None, base_voice=None, seed=0):
        body = json.dumps({
            "prompt_audio": base64.b64encode(audio.encode_flac(prompt, self.sample_rate)).decode(),
            "prompt_text": prompt_text, "text": text, "language": language,
            "instruction": instruction, "base_voice": base_voice, "seed": seed,
        }).encode()
        last = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url + "/clone", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                    x, sr = audio.decode(r.read(), f"reply of {self.url}")
                return audio.resample(x, sr, self.sample_rate)
            except urllib.error.HTTPError as e:
                detail = e.read().decode(errors="replace")[:300]
                if e.code < 500:  # the request itself is bad: do not retry
                    raise ValueError(f"TTS server {self.url} rejected the request ({e.code}): {detail}") from e
                last = f"{e.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = str(e)
            time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"TTS server {self.url} failed after {self.retries + 1} tries: {last}")

    def versions(self) -> dict:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=10) as r:
                return {"server": json.loads(r.read())}
        except Exception as e:  # provenance only; the clone calls report real failures
            return {"server": f"unreachable: {e}"}


def make_backend(cfg, sample_rate: int, threads: int = 1) -> CloneBackend:
    if cfg.kind == "local":
        return LocalBackend(sample_rate, cfg.frame_period, threads, cfg.get("cache_dir"))
    if cfg.kind == "http":
        if not cfg.url:
            raise ValueError("tts=http needs tts.url=http://HOST:PORT")
        return HttpBackend(cfg.url, sample_rate, cfg.timeout_s, cfg.retries)
    raise ValueError(f"unknown tts.kind {cfg.kind!r}; use local or http")
