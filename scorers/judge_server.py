"""The judge behind HTTP: the project's own judge served on a port, and the reference for an external
judge (e.g. an audio LLM with the seed's judging prompt) that HttpJudge talks to.

POST /classify  multipart/form-data: a file part `audio` (WAV, FLAC, any format soundfile reads) and
                an optional text part `tasks` (comma-separated, default all of the judge's tasks)
                -> 200 JSON {"version": ..., "tasks": {"emotion": {"neutral": p, "happy": p, ...}, ...}},
                or JSON {"error": ...}: 4xx for a request that is wrong, 5xx for a server failure or a full queue
GET  /health    -> JSON {"version": ..., "tasks": {task: [classes]}}

    python -m scorers.judge_server --judge scorers/artifacts/judge-v2 --port 8766
    curl -F audio=@clip.flac -F tasks=emotion http://127.0.0.1:8766/classify
"""
import argparse
import io
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import soundfile as sf

from core.http_body import BodyRefused, checked_form, read_form_body, send_body
from scorers.judge.local import MAX_CLIP_S

DEFAULT_JUDGE = "scorers/artifacts/judge-v2"
FIELDS = ("audio", "tasks")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 20 * 2**20       # a minute of 16-bit stereo 48 kHz WAV is 11 MB
    read_timeout_s: float = 30.0
    max_clip_s: float = MAX_CLIP_S
    max_sample_rate: int = 192000
    max_channels: int = 8
    max_requests_in_flight: int = 4


class BadRequest(ValueError):
    """A request the client must fix; `status` is the HTTP code it gets."""

    def __init__(self, msg: str, status: int = 400):
        super().__init__(msg)
        self.status = status


def parse_request(content_type, body: bytes, judge_tasks, lim: Limits) -> tuple[bytes, list[str]]:
    """(audio bytes, tasks) of a /classify body; BadRequest names the first wrong field."""
    try:
        fields, files = checked_form(content_type, body, FIELDS, "audio")
    except BodyRefused as e:
        raise BadRequest(str(e), e.status) from None
    if "tasks" in files:
        raise BadRequest("field 'tasks': must be a text part, got a file part")
    tasks = [t.strip() for t in fields.get("tasks", ",".join(judge_tasks)).split(",") if t.strip()]
    bad = [t for t in tasks if t not in judge_tasks]
    if bad or not tasks:
        raise BadRequest(f"field 'tasks': {bad[0][:40] if bad else 'empty'!r} is not a task of this judge; "
                         f"tasks: {', '.join(judge_tasks)}")
    check_audio_header(files["audio"], lim)
    return files["audio"], list(dict.fromkeys(tasks))


def check_audio_header(data: bytes, lim: Limits) -> None:
    """Rate, channels and duration from the header, before a sample is decoded."""
    if not data:
        raise BadRequest("field 'audio': empty file")
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as e:  # soundfile raises several types for garbage input
        raise BadRequest(f"field 'audio': cannot decode audio ({str(e)[:200]})") from None
    if not 0 < info.samplerate <= lim.max_sample_rate:
        raise BadRequest(f"field 'audio': sample rate {info.samplerate} Hz, the limit is {lim.max_sample_rate} Hz")
    if not 0 < info.channels <= lim.max_channels:
        raise BadRequest(f"field 'audio': {info.channels} channels, the limit is {lim.max_channels}")
    if info.frames > lim.max_clip_s * info.samplerate:
        raise BadRequest(f"field 'audio': {info.frames / info.samplerate:.1f} s, over the limit of {lim.max_clip_s:g} s", 413)


def make_server(judge, host: str = "127.0.0.1", port: int = 0, lim: Limits = Limits()) -> ThreadingHTTPServer:
    """A server around any object with .version, .tasks and .classify(clip, task) (a LocalJudge)."""
    lock = threading.Lock()   # one model, one forward pass at a time (torch uses the cores itself)
    admitted = threading.BoundedSemaphore(lim.max_requests_in_flight)
    health = json.dumps({"version": judge.version, "tasks": judge.tasks}).encode()

    class Handler(BaseHTTPRequestHandler):
        timeout = lim.read_timeout_s   # a silent client cannot hold a thread

        def _reply(self, code: int, obj: dict):
            send_body(self, code, json.dumps(obj).encode(), "application/json")

        def send_error(self, code, message=None, explain=None):
            # http.server's own errors (bad request line, unsupported method) are JSON too
            self.close_connection = True
            self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]})

        def do_GET(self):
            if self.path == "/health":
                send_body(self, 200, health, "application/json")
            else:
                self._reply(404, {"error": f"unknown path {self.path[:100]!r}; POST /classify or GET /health"})

        def _body(self) -> bytes:
            try:
                return read_form_body(self, lim.max_body_bytes, lim.read_timeout_s)
            except BodyRefused as e:
                raise BadRequest(str(e), e.status) from None

        def _classify(self) -> dict:
            clip, tasks = parse_request(self.headers.get("Content-Type"), self._body(), list(judge.tasks), lim)
            with lock:
                return {"version": judge.version, "tasks": {t: judge.classify(clip, t) for t in tasks}}

        def do_POST(self):
            if self.path != "/classify":
                self.close_connection = True  # its body is not read
                return self._reply(404, {"error": f"unknown path {self.path[:100]!r}; POST /classify or GET /health"})
            if not admitted.acquire(blocking=False):
                self.close_connection = True
                return self._reply(503, {"error": f"server busy: {lim.max_requests_in_flight} requests in flight; retry later"})
            try:
                out = self._classify()
            except BadRequest as e:
                self.close_connection = True  # the body may be unread
                return self._reply(e.status, {"error": str(e)})
            except ValueError as e:  # audio that decodes but cannot be judged (silent, too short)
                return self._reply(400, {"error": f"field 'audio': {e}"})
            except Exception as e:  # the judge failed: the client may retry
                return self._reply(500, {"error": f"{type(e).__name__}: {e}"})
            finally:
                admitted.release()
            self._reply(200, out)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", default=DEFAULT_JUDGE, help="judge artifact dir (default: %(default)s)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8766)
    a = ap.parse_args()
    from scorers.judge.local import LocalJudge
    try:
        judge = LocalJudge.load(a.judge)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    srv = make_server(judge, a.host, a.port)
    print(f"judge {judge.version} serving on http://{a.host}:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
