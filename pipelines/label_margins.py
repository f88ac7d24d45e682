"""pipeline=label_margins: a local web page where people rate the margin of pairs from 1 to 10.

`python run.py pipeline=label_margins data=DIR` with DIR a pipeline output (manifest.parquet +
shards/), a shards dir, one .tar shard or a manifest.parquet. Ratings go to a LabelStore
(scorers/labels.py), committed one by one; export them with `python -m scorers.labels DB OUT`.

The server only ever serves the page and the clips of the dataset it was given: a clip is asked
for by sample key and side, looked up among the release's samples (core/reader.py), and read at its offset
inside the tar. No client-supplied path reaches the file system.

Hostile requests (docs/security.md): a request is answered only when its Host header names the
address the server is bound to (so a DNS-rebinding page in a browser cannot reach it); a request
body must declare its size (Content-Length) within ServerLimits.max_body_bytes before any of it is
read, and arrive within read_timeout_s; ratings are integers on the scale by a plain, short
annotator name. Every refusal is a JSON {"error": ...} answer, a busy label store a 503 to retry,
and a fault of the server a 500: no request is left without an answer."""
import ipaddress
import json
import logging
import re
import threading
from dataclasses import dataclass, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from core.http_body import BodyRefused, declared_length, read_body
from core.reader import Release
from scorers.labels import LabelStore, LabelStoreBusy, shard_ref

log = logging.getLogger("lms")
PAGE = Path(__file__).resolve().parent.parent / "scorers" / "label_page.html"
SIDES = ("src", "tgt")


class PairDataset:
    """Pairs of one dataset in order: key -> what to show; the clips are read through the release's index."""

    def __init__(self, data, max_items: int | None = None):
        if not data:
            raise ValueError("data= is required: a pipeline output dir, a shards dir, a .tar shard or a manifest.parquet")
        try:
            self.release = Release(data)
        except ValueError as e:
            raise ValueError(f"data: {e}") from e
        self.root = self.release.root
        if self.root.parent.name == "releases":  # labels belong to the pipeline, not to one release
            self.root = self.root.parent.parent
        self.index: dict[str, dict] = {}  # key -> what the page shows; the manifest fixes order and set
        missing = []
        for key in self.release.manifest["key"]:
            if max_items and len(self.index) >= max_items:
                break
            try:
                sides = self.release.locate(key)
            except ValueError:
                missing.append(key)
                continue
            if all(f"{side}.flac" in sides for side in SIDES):
                meta = self.release.sample(key, members=[]).json
                self.index[key] = {"shard": sides["src.flac"].shard,
                                   **{f: meta.get(f) for f in ("edit_info", "edit_type", "text", "instruction")}}
        if missing:
            log.warning("%d manifest samples are not in the shards (first %s); skipped", len(missing), missing[0])
        self.keys = list(self.index)
        if not self.keys:
            raise ValueError(f"data={data}: no pairs (samples with src.flac and tgt.flac) found")
        self.position = {k: i for i, k in enumerate(self.keys)}

    def audio(self, key: str, side: str) -> bytes | None:
        """The clip's bytes, or None for an unknown key or side (the only way to read a file)."""
        if key not in self.index or side not in SIDES:
            return None
        return self.release.read(key, f"{side}.flac")

    def store_items(self) -> list[dict]:
        return [{"item_id": k, "src": shard_ref(e["shard"], k, "src.flac"), "tgt": shard_ref(e["shard"], k, "tgt.flac"),
                 "tag": e["edit_info"], "text": e["text"], "dataset": str(self.root)}
                for k, e in self.index.items()]


@dataclass(frozen=True)
class ServerLimits:
    """What one request may cost the server (pipeline.* in configs/pipeline/label_margins.yaml)."""
    max_body_bytes: int = 16_384  # a rating is ~100 bytes; larger declared bodies get 413 unread
    read_timeout_s: float = 10.0  # each read of the request line and headers, and the whole body
    max_annotator_chars: int = 64
    db_timeout_s: float = 5.0  # how long a rating waits for another writer of the label database

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            kind = (int, float) if f.type is float else int
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
                raise ValueError(f"pipeline.{f.name}={value!r}: must be a positive {f.type.__name__}")


class RequestError(Exception):
    """A request refused with an HTTP status and a message that names what was wrong with it."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


# name or [IPv6], optional port; anything else (userinfo, paths, spaces) is not a Host this server has
HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/@?#]+)(?::([0-9]{1,5}))?")


class LabelServer(ThreadingHTTPServer):
    daemon_threads = True
    # connections waiting to be accepted: socketserver's 5 resets a burst of ratings from a few open pages
    request_queue_size = 1024

    def __init__(self, addr, dataset, store: LabelStore, annotator: str | None = None,
                 limits: ServerLimits = ServerLimits(), page: Path = PAGE, handler=None):
        """page, handler: another page over the same guarded server (the candidate mode's)."""
        self.dataset, self.store, self.limits = dataset, store, limits
        config = json.dumps({"annotator": annotator, "task": store.task, "scale": store.scale})
        # '<' escaped so that no value can close the <script> element it is written into
        self.page = page.read_text().replace("/*CONFIG*/null", config.replace("<", "\\u003c")).encode()
        super().__init__(addr, handler or Handler)
        bound = ipaddress.ip_address(self.server_address[0])
        self.any_address = bound.is_unspecified  # bound to all interfaces: any IP literal of this host
        # the names a browser may use for this server: as configured, as bound, and localhost when it listens there
        self.host_names = {str(addr[0]).lower(), str(bound)} | (
            {"localhost"} if bound.is_loopback or self.any_address else set())

    @property
    def url(self) -> str:
        h, p = self.server_address[:2]
        return f"http://{'[' + h + ']' if ':' in h else h}:{p}/"

    def accepts_host(self, value: str) -> bool:
        """Whether a Host header names this server. A DNS-rebinding attack always sends its own domain
        name; an IP literal is accepted only when it is the bound address (or any, when bound to all)."""
        m = HOST_HEADER.fullmatch(value.strip())
        if not m or int(m[2] or 80) != self.server_address[1]:
            return False
        name = m[1].strip("[]").lower()
        if name in self.host_names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.any_address

    def server_close(self):
        super().server_close()
        self.store.close()

    def state(self, key: str | None, annotator: str) -> dict:
        """What the page shows for one item (the annotator's next unrated one when key is None)."""
        ds, store = self.dataset, self.store
        rated = len(store.rated_ids(annotator) & ds.index.keys()) if annotator else 0
        done = rated == len(ds.keys)
        if key is None:
            key = (store.next_unrated(annotator, ds.keys) if annotator else None) or ds.keys[0]
        i, e = ds.position[key], ds.index[key]
        return {"key": key, "index": i, "total": len(ds.keys), "rated": rated, "done": done,
                "prev": ds.keys[i - 1] if i > 0 else None, "next": ds.keys[i + 1] if i + 1 < len(ds.keys) else None,
                "score": store.rating(key, annotator) if annotator else None,
                **{f: e[f] for f in ("edit_info", "edit_type", "text", "instruction")},
                "counts": store.counts(), "agreement": store.agreement()}


def annotator_name(value, max_chars: int) -> str:
    """The annotator name as stored: a string, stripped, 1..max_chars printable characters (no control,
    format, e.g. right-to-left override, separator other than space, surrogate or unassigned ones)."""
    if not isinstance(value, str):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"annotator must be a string, not {type(value).__name__}")
    name = value.strip()
    if not 1 <= len(name) <= max_chars:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"annotator must be 1 to {max_chars} characters, not {len(name)}")
    if not name.isprintable():
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           "annotator must not contain control or other non-printable characters")
    return name


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so a refused request's unread body dies with its connection."""
    server: LabelServer
    # a bare 'GET /' line is answered with a status line and headers, as HTTP/1.0, not HTTP/0.9's bare body
    default_request_version = "HTTP/1.0"
    body_fields = ("key", "annotator", "score")  # what a rating body holds

    def setup(self):
        self.timeout = self.server.limits.read_timeout_s  # socketserver sets it on the connection: each read, write
        self.responded = False
        super().setup()

    def log_message(self, fmt, *args):  # the terminal shows the URL and errors, not every clip request
        pass

    def _send(self, status, body: bytes, ctype: str, headers: dict | None = None):
        self.responded = True
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status=HTTPStatus.OK, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def send_error(self, code, message=None, explain=None):
        # http.server's own refusals (malformed request line, oversized headers, unknown method) in JSON too
        headers = {}
        if code == HTTPStatus.NOT_IMPLEMENTED:  # its answer to a method without a do_ handler: not a server fault
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command!r} is not allowed"
            headers = {"Allow": "GET, POST"}
        self.close_connection = True
        self._json({"error": message or HTTPStatus(code).phrase}, code, headers)

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _answer(self, route):
        """Every request gets an answer: its own, a JSON refusal, 503 to retry, or 500 for a server fault."""
        try:
            self._check_host()
            route()
        except RequestError as e:
            self._json({"error": e.message}, e.status, e.headers)
        except LabelStoreBusy:
            self._json({"error": "label store busy, retry"}, HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": "1"})
        except ConnectionError:  # the client left: nobody to answer
            pass
        except Exception:
            log.exception("label page: %s %.200s failed", self.command, self.path)
            if not self.responded:  # else the connection just closes on a truncated answer
                self._json({"error": "internal server error"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _check_host(self):
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not hosts[0].strip():
            raise RequestError(HTTPStatus.BAD_REQUEST, "send exactly one non-empty Host header")
        if not self.server.accepts_host(hosts[0]):
            raise RequestError(HTTPStatus.MISDIRECTED_REQUEST,
                               f"unexpected Host {hosts[0][:100]!r}: open {self.server.url}")

    def _get(self):
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]  # split before unquoting: %2F stays in a part
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if parts == [""]:
            return self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        if len(parts) == 3 and parts[0] == "audio":  # /audio/<key>/<src|tgt>; src|cand<i> in candidates mode
            data = self.server.dataset.audio(parts[1], parts[2])
            if data is None:
                raise RequestError(HTTPStatus.NOT_FOUND, "not found")
            return self._send(HTTPStatus.OK, data, "audio/flac")
        if parts == ["api", "item"]:
            key = query.get("key")
            if key is not None and key not in self.server.dataset.position:
                raise RequestError(HTTPStatus.NOT_FOUND, "unknown key")
            annotator = query.get("annotator", "").strip()  # none yet: the page shows the first item
            if annotator:
                annotator = annotator_name(annotator, self.server.limits.max_annotator_chars)
            return self._json(self.server.state(key, annotator))
        raise RequestError(HTTPStatus.NOT_FOUND, "not found")

    def _post(self):
        # JSON only: a cross-site form cannot send it without a CORS preflight, which this server refuses
        if urlsplit(self.path).path != "/api/rate":
            raise RequestError(HTTPStatus.NOT_FOUND, "not found")
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        body = self._json_body()
        missing = [f for f in self.body_fields if f not in body]
        if missing:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad rating: missing {', '.join(missing)}")
        annotator = annotator_name(body["annotator"], self.server.limits.max_annotator_chars)
        key = body["key"]
        if not isinstance(key, str) or key not in self.server.dataset.position:
            raise RequestError(HTTPStatus.NOT_FOUND, "unknown key")
        self._json(self._save(key, annotator, body))

    def _save(self, key: str, annotator: str, body: dict) -> dict:
        """Store a rating body of a known key and a valid annotator: the answer."""
        try:
            self.server.store.rate(key, annotator, body["score"])
        except ValueError as e:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad rating: {e}") from None
        return {"saved": True, "next": self.server.store.next_unrated(annotator, self.server.dataset.keys)}

    def _json_body(self) -> dict:
        try:
            body = json.loads(self._body())
        except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
            raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {str(e)[:200]}") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"body must be a JSON object with {', '.join(self.body_fields)}")
        return body

    def _body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:  # http.server does not decode chunked bodies
            raise RequestError(HTTPStatus.BAD_REQUEST, "Transfer-Encoding is not accepted: send a Content-Length")
        limits = self.server.limits
        try:
            return read_body(self, declared_length(self.headers, limits.max_body_bytes), limits.read_timeout_s)
        except BodyRefused as e:
            raise RequestError(HTTPStatus(e.status), str(e)) from None


def start_server(data, db=None, host="127.0.0.1", port=0, annotator=None, max_items=None, **limits):
    """Index the dataset, open the store and serve in a background thread. limits: the ServerLimits
    fields (max_body_bytes, read_timeout_s, max_annotator_chars, db_timeout_s). Returns (server, url);
    stop with server.shutdown(); server.server_close()."""
    limits = ServerLimits(**limits)
    dataset = PairDataset(data, max_items)
    store = LabelStore(db or dataset.root / "labels.sqlite", task="margin", scale=(1, 10), integer_scores=True,
                       timeout_s=limits.db_timeout_s)
    return serve(LabelServer, dataset, store, host, port, annotator, limits)


def serve(server_class, dataset, store: LabelStore, host, port, annotator, limits: ServerLimits):
    """Register the dataset's items in the store and serve it in a background thread: (server, url)."""
    store.add_items(dataset.store_items())
    try:
        server = server_class((host, int(port)), dataset, store, annotator, limits)
    except OSError as e:
        store.close()
        raise ValueError(f"cannot listen on {host}:{port}: {e}") from e
    threading.Thread(target=server.serve_forever, daemon=True, name="label-server").start()
    return server, server.url


def serve_until_interrupted(server: LabelServer, what: str):
    print(f"labelling {len(server.dataset.keys)} {what} of {server.dataset.root}, ratings -> {server.store.path}")
    print(f"open {server.url}   (Ctrl-C to stop; every rating is saved when given)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print(f"stopped; ratings per annotator: {server.store.counts()}")
    finally:
        server.shutdown()
        server.server_close()


def run(cfg):
    pc = cfg.pipeline
    mode = pc.mode
    if mode == "candidates":  # one prompt's K answers rated 1-5 side by side: pipelines/label_candidates.py
        from pipelines.label_candidates import run as run_candidates
        return run_candidates(cfg)
    if mode != "pairs":
        raise ValueError(f"pipeline.mode={mode!r}: pairs (rate a pair's margin 1-10) or candidates "
                         "(rate one prompt's candidate answers 1-5)")
    if pc.export:
        raise ValueError("pipeline.export is the candidates mode's pairs table; export margin ratings with "
                         "`python -m scorers.labels DB OUT.parquet`")
    server, _ = start_server(cfg.data, pc.db, pc.host, pc.port, pc.annotator, pc.max_items,
                             **{f.name: pc[f.name] for f in fields(ServerLimits)})
    serve_until_interrupted(server, "pairs")
