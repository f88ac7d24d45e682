"""A cloning server with scripted faults, for the fault tests and the reliability benchmark.

policy(n, request) -> 'ok' (forwarded to a real cloning server, tts/server.py), '500' or 'slow' (no
reply until slow_s has passed or the server stops) decides the answer to the n-th POST /clone; the
request is its multipart fields by name (prompt_audio as bytes).
Stopped, its port is closed: the server is down; started again on the same port, it is back."""
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.http_body import parse_multipart


class ScriptedTtsServer:
    def __init__(self, port: int, upstream: str, slow_s: float = 10.0):
        self.port, self.upstream, self.slow_s = port, upstream, slow_s
        self.url = f"http://127.0.0.1:{port}"
        self.policy = lambda n, request: "ok"
        self.counts = {"ok": 0, "500": 0, "slow": 0}
        self.lock, self.release, self.srv = threading.Lock(), threading.Event(), None

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    def start(self) -> "ScriptedTtsServer":
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fields, files = parse_multipart(self.headers["Content-Type"], body)
                with scripted.lock:
                    what = scripted.policy(scripted.requests, {**fields, **files})
                    scripted.counts[what] += 1
                if what == "500":
                    return self._reply(500, b'{"error": "RuntimeError: injected"}')
                if what == "slow":  # no answer; the client gives up after tts.timeout_s
                    scripted.release.wait(scripted.slow_s)
                    return
                self._forward(body)

            def _forward(self, body):
                headers = {"Content-Type": self.headers["Content-Type"]} if body is not None else {}
                req = urllib.request.Request(scripted.upstream + self.path, data=body, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=120) as r:
                        self._reply(r.status, r.read())
                except urllib.error.HTTPError as e:
                    self._reply(e.code, e.read())

            def _reply(self, code, body):
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self.release.clear()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()
