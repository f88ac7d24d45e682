"""A small HTTP cloning server around the embedded engine (and the reference for `tts=http`).

POST /clone  JSON {prompt_audio: base64 audio file, prompt_text, text, language,
                   instruction?, base_voice?, seed?}  ->  200 audio/flac, or 400 JSON {error}
GET  /health ->  JSON versions

    python -m tts.server --host 127.0.0.1 --port 8765
"""
import argparse
import base64
import binascii
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core import audio
from tts.base_voices import UnspeakableText
from tts.engine import LocalEngine


def make_server(host: str, port: int, sample_rate: int = 16000) -> ThreadingHTTPServer:
    engine = LocalEngine(sample_rate)
    lock = threading.Lock()  # one engine, one synthesis at a time

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: bytes, ctype: str):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code: int, msg: str):
            self._reply(code, json.dumps({"error": msg}).encode(), "application/json")

        def do_GET(self):
            if self.path == "/health":
                self._reply(200, json.dumps(engine.versions()).encode(), "application/json")
            else:
                self._error(404, "unknown path")

        def do_POST(self):
            if self.path != "/clone":
                return self._error(404, "unknown path")
            try:
                n = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(n))
                prompt, sr = audio.decode(base64.b64decode(req["prompt_audio"], validate=True), "prompt_audio")
                prompt = audio.resample(prompt, sr, sample_rate)
                with lock:
                    y, _ = engine.clone(prompt, req["prompt_text"], req["text"], req["language"],
                                        req.get("instruction"), req.get("base_voice"), int(req.get("seed", 0)))
            except (KeyError, ValueError, binascii.Error, UnspeakableText) as e:
                return self._error(400, f"{type(e).__name__}: {e}")
            except Exception as e:  # engine failure: the client may retry
                return self._error(500, f"{type(e).__name__}: {e}")
            self._reply(200, audio.encode_flac(y, sample_rate), "audio/flac")

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--sample-rate", type=int, default=16000)
    a = ap.parse_args()
    srv = make_server(a.host, a.port, a.sample_rate)
    print(f"serving on http://{a.host}:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
