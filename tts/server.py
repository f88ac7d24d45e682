"""A small HTTP cloning server around the embedded engine (and the reference for `tts=http`).

POST /clone  multipart/form-data: a file part prompt_audio (the clip: WAV, FLAC, any format soundfile
             reads) and text parts prompt_text, text, language, instruction?, base_voice?, seed?
             ->  200 audio/flac, or JSON {error}: 4xx for a request that is wrong (do not retry),
             5xx for a server failure or a full queue (retry)

    curl -F prompt_audio=@prompt.wav -F prompt_text='...' -F text='...' -F language=en \
         http://127.0.0.1:8765/clone
GET  /health ->  JSON versions

    python -m tts.server --host 127.0.0.1 --port 8765 [key=value ...]

The limits (body size, text lengths, prompt duration, read timeout, queue) are in
configs/tts_server.yaml; any of them can be overridden as key=value, e.g. max_text_chars=300.
"""
import argparse
import io
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

from core import audio
from core.http_body import BodyRefused, checked_form, read_form_body, send_body
from core.tags import LANGUAGES
from tts.base_voices import check_voice_name
from tts.engine import LocalEngine

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tts_server.yaml"
MAX_SEED = 2**63  # seeds are numpy generator seeds; bounded so that a reply never depends on a bignum


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    sample_rate: int
    max_body_bytes: int
    read_timeout_s: float
    max_text_chars: int
    max_prompt_text_chars: int
    max_prompt_s: float
    max_prompt_sample_rate: int
    max_prompt_channels: int
    max_requests_in_flight: int
    chunk_chars: int


def load_settings(overrides=(), path: Path = CONFIG) -> ServerSettings:
    """configs/tts_server.yaml with `key=value` overrides; unknown keys and wrong types are errors."""
    from omegaconf import OmegaConf
    cfg = OmegaConf.merge(OmegaConf.structured(ServerSettings), OmegaConf.load(path),
                          OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_object(cfg)


class BadRequest(ValueError):
    """A request the client must fix; `status` is the HTTP code it gets."""

    def __init__(self, msg: str, status: int = 400):
        super().__init__(msg)
        self.status = status


def _string(fields: dict, files: dict, name: str, limit: int | None = None, optional: bool = False) -> str | None:
    if name in files:
        raise BadRequest(f"field {name!r}: must be a text part, got a file part")
    if name not in fields:
        if optional:
            return None
        raise BadRequest(f"field {name!r}: missing")
    v = fields[name]
    if limit is not None and len(v) > limit:
        raise BadRequest(f"field {name!r}: {len(v)} characters, over the limit of {limit}")
    return v


def _seed(fields: dict, files: dict) -> int:
    v = _string(fields, files, "seed", optional=True)
    if v is None:
        return 0
    if not re.fullmatch(r"-?[0-9]+", v):  # int() would also take '+5', '1_0', ' 5' and non-ASCII digits
        raise BadRequest(f"field 'seed': must be an integer, got {v[:40]!r}")
    if v.startswith("-") or len(v.lstrip("0")) > len(str(MAX_SEED)) or int(v) >= MAX_SEED:  # no int() of a huge number
        raise BadRequest(f"field 'seed': must be in [0, 2**63), got {v[:40]}")
    return int(v)


FIELDS = ("prompt_audio", "prompt_text", "text", "language", "instruction", "base_voice", "seed")


def parse_request(content_type: str | None, body: bytes, s: ServerSettings) -> dict:
    """The checked fields of a /clone body; BadRequest names the first wrong field."""
    try:
        fields, files = checked_form(content_type, body, FIELDS, "prompt_audio")
    except BodyRefused as e:
        raise BadRequest(str(e), e.status) from None
    out = {"prompt_audio": files["prompt_audio"],
           "prompt_text": _string(fields, files, "prompt_text", s.max_prompt_text_chars),
           "text": _string(fields, files, "text", s.max_text_chars),
           "language": _string(fields, files, "language"),
           "instruction": _string(fields, files, "instruction", optional=True),
           "base_voice": _string(fields, files, "base_voice", optional=True),
           "seed": _seed(fields, files)}
    if out["language"] not in LANGUAGES:
        raise BadRequest(f"field 'language': {out['language'][:50]!r} is not one of {', '.join(LANGUAGES)}")
    if out["base_voice"] is not None:
        try:
            check_voice_name(out["base_voice"])
        except ValueError as e:
            raise BadRequest(f"field 'base_voice': {e}") from None
    return out


def decode_prompt(data: bytes, s: ServerSettings) -> np.ndarray:
    """The prompt clip, mono at the server's rate. Its header is checked before it is decoded, and the
    decoder never reads more than the allowed duration whatever the header claims."""
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as e:  # soundfile raises several types for garbage input
        raise BadRequest(f"field 'prompt_audio': cannot decode audio ({str(e)[:200]})") from None
    if not 0 < info.samplerate <= s.max_prompt_sample_rate:
        raise BadRequest(f"field 'prompt_audio': sample rate {info.samplerate} Hz, the limit is "
                         f"{s.max_prompt_sample_rate} Hz")
    if not 0 < info.channels <= s.max_prompt_channels:
        raise BadRequest(f"field 'prompt_audio': {info.channels} channels, the limit is {s.max_prompt_channels}")
    max_frames = int(s.max_prompt_s * info.samplerate)
    if info.frames > max_frames:
        raise BadRequest(f"field 'prompt_audio': {info.frames / info.samplerate:.1f} s, over the limit of "
                         f"{s.max_prompt_s} s")
    try:
        x, sr = sf.read(io.BytesIO(data), frames=max_frames + 1, dtype="float32", always_2d=True)
    except Exception as e:
        raise BadRequest(f"field 'prompt_audio': cannot decode audio ({str(e)[:200]})") from None
    if len(x) > max_frames:
        raise BadRequest(f"field 'prompt_audio': longer than the limit of {s.max_prompt_s} s")
    return audio.resample(x.mean(axis=1), sr, s.sample_rate)


def make_server(host: str, port: int, settings: ServerSettings | None = None) -> ThreadingHTTPServer:
    s = settings or load_settings()
    engine = LocalEngine(s.sample_rate, chunk_chars=s.chunk_chars,
                         max_text_chars=max(s.max_text_chars, s.max_prompt_text_chars))
    lock = threading.Lock()  # one engine, one synthesis at a time
    # Requests admitted at once (reading, decoding, waiting for the engine): the rest get 503 at once,
    # which bounds memory and how long an admitted request waits.
    admitted = threading.BoundedSemaphore(s.max_requests_in_flight)

    class Handler(BaseHTTPRequestHandler):
        timeout = s.read_timeout_s  # a socket timeout: a silent client cannot hold a thread

        def _error(self, code: int, msg: str):
            send_body(self, code, json.dumps({"error": msg}).encode(), "application/json")

        def send_error(self, code, message=None, explain=None):
            # http.server's own errors (bad request line, unsupported method) are JSON too
            self.close_connection = True
            self._error(code, message or self.responses.get(code, ("error",))[0])

        def do_GET(self):
            if self.path == "/health":
                send_body(self, 200, json.dumps(engine.versions()).encode(), "application/json")
            else:
                self._error(404, f"unknown path {self.path[:100]!r}; POST /clone or GET /health")

        def _body(self) -> bytes:
            try:
                return read_form_body(self, s.max_body_bytes, s.read_timeout_s)
            except BodyRefused as e:
                raise BadRequest(str(e), e.status) from None

        def _clone(self) -> bytes:
            req = parse_request(self.headers.get("Content-Type"), self._body(), s)
            prompt = decode_prompt(req["prompt_audio"], s)
            with lock:
                y = engine.clone(prompt, req["prompt_text"], req["text"], req["language"],
                                 req["instruction"], req["base_voice"], req["seed"])[0]
            return audio.encode_flac(y, s.sample_rate)

        def do_POST(self):
            if self.path != "/clone":
                self.close_connection = True  # its body is not read
                return self._error(404, f"unknown path {self.path[:100]!r}; POST /clone or GET /health")
            if not admitted.acquire(blocking=False):
                self.close_connection = True
                return self._error(503, f"server busy: {s.max_requests_in_flight} requests in flight; retry later")
            try:
                flac = self._clone()
            except BadRequest as e:
                self.close_connection = True  # the body may be unread
                return self._error(e.status, str(e))
            except ValueError as e:  # bad audio, text a voice cannot speak
                return self._error(400, f"{type(e).__name__}: {e}")
            except Exception as e:  # engine failure: the client may retry
                return self._error(500, f"{type(e).__name__}: {e}")
            finally:
                admitted.release()
            send_body(self, 200, flac, "audio/flac")

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", help="overrides host in the config")
    ap.add_argument("--port", type=int, help="overrides port in the config")
    ap.add_argument("--config", type=Path, default=CONFIG, help="server settings (default: %(default)s)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="settings to override, e.g. max_text_chars=300")
    a = ap.parse_args()
    s = load_settings(a.overrides, a.config)
    host, port = a.host or s.host, s.port if a.port is None else a.port
    srv = make_server(host, port, s)
    print(f"serving on http://{host}:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
