"""Any benchmark editor behind HTTP, the reference for an external system HttpEditor talks to.

POST /clone  multipart/form-data: file part `prompt_audio`; text parts `prompt_text`, `text`,
             optional `language` (en) and `seed` (0)                 -> 200 audio/flac
POST /edit   file part `audio`; text parts `text`, `edit_type`, `edit_info`, optional `language`, `seed`
                                                                     -> 200 audio/flac
GET  /health -> JSON {"name": ...}
A wrong request gets JSON {"error"} with 4xx naming the field; a failure of the editor 500.

    python -m benchmark.editor_server --editor editor/artifacts/editor-llm-v12 --port 8767
"""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from benchmark.editors import Failed, checked
from core import audio
from core.http_body import BodyRefused, checked_form, read_form_body, send_body

MAX_BODY = 20 * 2**20
MAX_AUDIO_S = 120.0      # a decoded clip longer than this is refused (a small FLAC of silence can decode to hours)
READ_TIMEOUT_S = 30.0
FORMS = {  # path -> (file field, required text fields, optional text fields)
    "/clone": ("prompt_audio", ("prompt_text", "text"), ("language", "seed")),
    "/edit": ("audio", ("text", "edit_type", "edit_info"), ("language", "seed")),
}


class BadRequest(ValueError):
    def __init__(self, msg: str, status: int = 400):
        super().__init__(msg)
        self.status = status


def parse_form(path: str, content_type, body: bytes) -> dict:
    """The keyword arguments of editor.clone / editor.edit from a request body; BadRequest names the field."""
    file_field, required, optional = FORMS[path]
    try:
        fields, files = checked_form(content_type, body, (file_field, *required, *optional), file_field)
    except BodyRefused as e:
        raise BadRequest(str(e), e.status) from None
    for name in (*required, *optional):
        if name in files:
            raise BadRequest(f"field {name!r}: must be a text part, got a file part")
    missing = [n for n in required if n not in fields]
    if missing:
        raise BadRequest(f"field {missing[0]!r}: missing")
    try:
        x, sr = audio.decode(files[file_field], file_field)
    except ValueError as e:
        raise BadRequest(f"field {file_field!r}: {e}") from None
    if len(x) > MAX_AUDIO_S * sr:
        raise BadRequest(f"field {file_field!r}: {len(x) / sr:.1f} s is longer than {MAX_AUDIO_S:g} s", 413)
    seed = fields.get("seed", "0")
    if not seed.isdigit() or len(seed) > 9:
        raise BadRequest(f"field 'seed': {seed[:20]!r} is not a non-negative integer")
    kw = {n: fields[n] for n in required}
    kw.update(language=fields.get("language", "en"), seed=int(seed))
    kw["prompt_wav" if path == "/clone" else "wav"] = audio.resample(x, sr, 16000)
    return kw


def make_server(editor, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    lock = threading.Lock()   # one model, one request at a time
    health = json.dumps({"name": editor.name}).encode()

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT_S

        def _error(self, code: int, msg: str):
            self.close_connection = True
            send_body(self, code, json.dumps({"error": msg}).encode(), "application/json")

        def send_error(self, code, message=None, explain=None):
            self._error(code, message or self.responses.get(code, ("error",))[0])

        def do_GET(self):
            if self.path != "/health":
                return self._error(404, f"unknown path {self.path[:100]!r}; POST /clone, /edit or GET /health")
            send_body(self, 200, health, "application/json")

        def do_POST(self):
            if self.path not in FORMS:
                return self._error(404, f"unknown path {self.path[:100]!r}; POST /clone, /edit or GET /health")
            try:
                body = read_form_body(self, MAX_BODY, READ_TIMEOUT_S)
                kw = parse_form(self.path, self.headers.get("Content-Type"), body)
            except BodyRefused as e:
                return self._error(e.status, str(e))
            except BadRequest as e:
                return self._error(e.status, str(e))
            try:
                with lock:
                    y = checked(editor.clone(**kw) if self.path == "/clone" else editor.edit(**kw))
            except ValueError as e:   # the editor refused the input
                return self._error(400, str(e)[:300])
            except Exception as e:  # noqa: BLE001 - the editor failed: the client scores a failure
                return self._error(500, f"{type(e).__name__}: {str(e)[:300]}")
            if isinstance(y, Failed):
                return self._error(500, f"the editor's answer: {y.reason}")
            send_body(self, 200, audio.encode_flac(y, 16000), "audio/flac")

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main():
    from benchmark.choose import load_editor
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--editor", required=True, help="an LLM artifact dir, identity or engine")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8767)
    a = ap.parse_args()
    srv = make_server(load_editor(a.editor), a.host, a.port)
    print(f"editor {srv.server_address}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
