"""TTS backend protocol. Every backend clones: prompt audio + prompt text + target text
(+ optional instruction) -> audio. `tts=local` is the embedded engine; `tts=http` posts the same
request to a user's cloning server (see tts/server.py for the wire format)."""
import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Protocol

import numpy as np

from core import audio
from core.http_body import encode_multipart


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

    def choose_base_voice(self, prompt, prompt_text, language) -> str:
        """The base voice the engine clones `prompt` on when none is given."""
        return self.engine.estimate(prompt, prompt_text, language)["base_voice"]

    def versions(self) -> dict:
        return self.engine.versions()


# Statuses below 500 that still mean "try again later" rather than "this request is wrong".
TRANSIENT_HTTP = (408, 429)


class TtsUnavailable(Exception):
    """The TTS server failed every try (down, 5xx, too slow): a transient condition, so the row is a
    `tts_unavailable` reject that a later run retries, never bad input."""

    def __init__(self, url: str, tries: int, last: str):
        super().__init__(f"TTS server at {url} unavailable after {tries} tries (last: {last})")
        self.url, self.tries, self.last = url, tries, last

    def __reduce__(self):  # crosses process boundaries (Ray) with its fields intact
        return TtsUnavailable, (self.url, self.tries, self.last)


class HttpBackend:
    """POST {url}/clone as multipart/form-data (the clip as a FLAC file part); the reply body is the
    audio (any soundfile format).

    4xx means the request is bad (ValueError, no retry); a refused connection, a timeout or a 5xx
    is retried `retries` times with exponential back-off, then raises TtsUnavailable."""

    def __init__(self, url: str, sample_rate: int, timeout_s: float = 120.0, retries: int = 2,
                 backoff_s: float = 1.0):
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError(f"tts.timeout_s must be > 0, tts.retries and tts.backoff_s >= 0 "
                             f"(got {timeout_s}, {retries}, {backoff_s})")
        self.url = url.rstrip("/")
        self.name = f"http:{self.url}"
        self.sample_rate = sample_rate
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s

    def clone(self, prompt, prompt_text, text, language, instruction=None, base_voice=None, seed=0):
        optional = {"instruction": instruction, "base_voice": base_voice}
        ctype, body = encode_multipart([
            ("prompt_audio", audio.encode_flac(prompt, self.sample_rate)),
            ("prompt_text", prompt_text), ("text", text), ("language", language),
            *((k, v) for k, v in optional.items() if v is not None),  # absent, not null: form data has no null
            ("seed", str(seed))])
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url + "/clone", data=body, headers={"Content-Type": ctype})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                    reply = r.read()
            except urllib.error.HTTPError as e:
                detail = _body(e)
                if e.code < 500 and e.code not in TRANSIENT_HTTP:  # the request itself is bad: do not retry
                    raise ValueError(f"TTS server {self.url} rejected the request ({e.code}): {detail}") from e
                last = f"HTTP {e.code}: {detail}"
                continue
            except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
                last = _reason(e, self.timeout_s)
                continue
            x, sr = audio.decode(reply, f"reply of {self.url}")
            return audio.resample(x, sr, self.sample_rate)
        raise TtsUnavailable(self.url, self.retries + 1, last)

    def versions(self) -> dict:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=min(10.0, self.timeout_s)) as r:
                return {"server": json.loads(r.read())}
        except Exception as e:  # provenance only; the clone calls report real failures
            return {"server": f"unreachable: {e}"}


def _body(e: urllib.error.HTTPError) -> str:
    try:
        return e.read().decode(errors="replace")[:300]
    except OSError:  # the error reply itself broke off or timed out
        return ""


def _reason(e: Exception, timeout_s: float) -> str:
    """A short status of a failed request: 'connection refused', 'no reply within ...', ..."""
    cause = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(cause, TimeoutError):
        return f"no reply within tts.timeout_s={timeout_s:g} s"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return f"{type(cause).__name__}: {cause}"


# How requests are made, not what is spoken: left out of sample keys, so that raising a timeout after
# a stopped run resumes that run instead of recomputing every sample under new keys.
REQUEST_SETTINGS = ("cache_dir", "timeout_s", "retries", "backoff_s", "unavailable_window")


def audio_identity(tts_cfg: dict) -> dict:
    """The TTS settings that decide the audio: part of every sample key."""
    return {k: v for k, v in tts_cfg.items() if k not in REQUEST_SETTINGS}


def make_backend(cfg, sample_rate: int, threads: int = 1) -> CloneBackend:
    if cfg.kind == "local":
        return LocalBackend(sample_rate, cfg.frame_period, threads, cfg.get("cache_dir"))
    if cfg.kind == "http":
        if not cfg.url:
            raise ValueError("tts=http needs tts.url=http://HOST:PORT")
        return HttpBackend(cfg.url, sample_rate, cfg.timeout_s, cfg.retries, cfg.backoff_s)
    raise ValueError(f"unknown tts.kind {cfg.kind!r}; use local or http")
