"""pipeline=label_margins: a local web page where people rate the margin of pairs from 1 to 10.

`python run.py pipeline=label_margins data=DIR` with DIR a pipeline output (manifest.parquet +
shards/), a shards dir, one .tar shard or a manifest.parquet. Ratings go to a LabelStore
(scorers/labels.py), committed one by one; export them with `python -m scorers.labels DB OUT`.

The server only ever serves the page and the clips of the dataset it was given: a clip is asked
for by sample key and side, looked up in the index built from the shards, and read at its offset
inside the tar. No client-supplied path reaches the file system."""
import json
import logging
import tarfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd

from scorers.labels import LabelStore, shard_ref

log = logging.getLogger("lms")
PAGE = Path(__file__).resolve().parent.parent / "scorers" / "label_page.html"
SIDES = ("src", "tgt")


class PairDataset:
    """Pairs of one dataset in order: key -> where its clips lie in the shards, and what to show."""

    def __init__(self, data, max_items: int | None = None):
        self.root, tars, manifest = _resolve(data)
        if self.root.parent.name == "releases":  # labels belong to the pipeline, not to one release
            self.root = self.root.parent.parent
        self.index: dict[str, dict] = {}  # key -> {"shard", "src": (offset, size), "tgt": ..., meta}
        for tar in tars:
            self._index_tar(tar)
        order = list(self.index)
        if manifest is not None:  # the manifest fixes the order and the set of samples
            missing = [k for k in manifest if k not in self.index]
            if missing:
                log.warning("%d manifest samples are not in the shards (first %s); skipped", len(missing), missing[0])
            order = [k for k in manifest if k in self.index]
        self.keys = order[:max_items] if max_items else order
        self.index = {k: self.index[k] for k in self.keys}
        if not self.keys:
            raise ValueError(f"data={data}: no pairs (samples with src.flac and tgt.flac) found")
        self.position = {k: i for i, k in enumerate(self.keys)}

    def _index_tar(self, tar: Path):
        members: dict[str, dict] = {}
        try:
            with tarfile.open(tar, "r:") as tf:  # plain tar: member offsets are file offsets
                for m in tf:
                    if m.isfile() and "." in m.name:
                        key, suffix = m.name.split(".", 1)
                        members.setdefault(key, {})[suffix] = m
                        if suffix == "json":
                            members[key]["meta"] = json.loads(tf.extractfile(m).read())
        except (OSError, tarfile.TarError, ValueError) as e:
            raise ValueError(f"data: shard {tar} is not a readable plain tar: {e}") from e
        for key, m in members.items():
            if "src.flac" in m and "tgt.flac" in m:
                meta = m.get("meta", {})
                self.index[key] = {
                    "shard": tar, "src": (m["src.flac"].offset_data, m["src.flac"].size),
                    "tgt": (m["tgt.flac"].offset_data, m["tgt.flac"].size),
                    **{f: meta.get(f) for f in ("edit_info", "edit_type", "text", "instruction")}}

    def audio(self, key: str, side: str) -> bytes | None:
        """The clip's bytes, or None for an unknown key or side (the only way to read a file)."""
        entry = self.index.get(key)
        if entry is None or side not in SIDES:
            return None
        offset, size = entry[side]
        with open(entry["shard"], "rb") as f:
            f.seek(offset)
            return f.read(size)

    def store_items(self) -> list[dict]:
        return [{"item_id": k, "src": shard_ref(e["shard"], k, "src.flac"), "tgt": shard_ref(e["shard"], k, "tgt.flac"),
                 "tag": e["edit_info"], "text": e["text"], "dataset": str(self.root)}
                for k, e in self.index.items()]


def _resolve(data) -> tuple[Path, list[Path], list[str] | None]:
    """(dataset dir, tar shards, manifest keys or None) of a data= argument."""
    if not data:
        raise ValueError("data= is required: a pipeline output dir, a shards dir, a .tar shard or a manifest.parquet")
    p = Path(str(data)).expanduser().resolve()
    if not p.exists():
        raise ValueError(f"data={data} does not exist")
    if p.is_dir() and (p / "manifest.parquet").is_file():
        return _resolve(p / "manifest.parquet")
    if p.is_file() and p.suffix == ".parquet":
        try:
            m = pd.read_parquet(p, columns=["key", "shard"])
        except Exception as e:
            raise ValueError(f"data={data}: manifest is not readable (needs key and shard columns): {e}") from e
        shards = p.parent / "shards"
        tars = [shards / Path(s).name for s in dict.fromkeys(m["shard"])]  # name only: stay inside shards/
        for t in tars:
            if not t.is_file():
                raise ValueError(f"data={data}: shard {t} listed in the manifest is missing")
        return p.parent, tars, list(m["key"])
    if p.is_file() and p.suffix == ".tar":
        return (p.parent.parent if p.parent.name == "shards" else p.parent), [p], None
    if p.is_dir():
        shards = p / "shards" if (p / "shards").is_dir() else p
        tars = sorted(shards.glob("*.tar"))
        if not tars:
            raise ValueError(f"data={data}: no .tar shards in {shards}")
        return (shards.parent if shards.name == "shards" else shards), tars, None
    raise ValueError(f"data={data} is not a dataset dir, shards dir, .tar shard or manifest.parquet")


class LabelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, dataset: PairDataset, store: LabelStore, annotator: str | None = None):
        self.dataset, self.store = dataset, store
        config = json.dumps({"annotator": annotator, "task": store.task, "scale": store.scale})
        # '<' escaped so that no value can close the <script> element it is written into
        self.page = PAGE.read_text().replace("/*CONFIG*/null", config.replace("<", "\\u003c")).encode()
        super().__init__(addr, Handler)

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


class Handler(BaseHTTPRequestHandler):
    server: LabelServer

    def log_message(self, fmt, *args):  # the terminal shows the URL and errors, not every clip request
        pass

    def _send(self, status, body: bytes = b"", ctype="text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status=HTTPStatus.OK):
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self):
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]  # split before unquoting: %2F stays in a part
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if parts == [""]:
            return self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        if len(parts) == 3 and parts[0] == "audio":  # /audio/<key>/<src|tgt>
            data = self.server.dataset.audio(parts[1], parts[2])
            return self._send(HTTPStatus.OK, data, "audio/flac") if data is not None else self._send(404, b"not found")
        if parts == ["api", "item"]:
            key = query.get("key")
            if key is not None and key not in self.server.dataset.position:
                return self._send(HTTPStatus.NOT_FOUND, b"unknown key")
            return self._json(self.server.state(key, query.get("annotator", "").strip()))
        self._send(HTTPStatus.NOT_FOUND, b"not found")

    def do_POST(self):
        # JSON only: a cross-site form cannot send it without a CORS preflight, which this server refuses
        if urlsplit(self.path).path != "/api/rate":
            return self._send(HTTPStatus.NOT_FOUND, b"not found")
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._send(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, b"send application/json")
        try:
            body = json.loads(self.rfile.read(min(int(self.headers.get("Content-Length", 0)), 10_000)))
            key, annotator, score = body["key"], str(body["annotator"]).strip(), body["score"]
            if key not in self.server.dataset.position:
                return self._send(HTTPStatus.NOT_FOUND, b"unknown key")
            self.server.store.rate(key, annotator, score)
        except (ValueError, KeyError, TypeError) as e:
            return self._send(HTTPStatus.BAD_REQUEST, f"bad rating: {e}".encode())
        nxt = self.server.store.next_unrated(annotator, self.server.dataset.keys)
        self._json({"saved": True, "next": nxt})


def start_server(data, db=None, host="127.0.0.1", port=0, annotator=None, max_items=None):
    """Index the dataset, open the store and serve in a background thread. Returns (server, url);
    stop with server.shutdown(); server.server_close()."""
    dataset = PairDataset(data, max_items)
    store = LabelStore(db or dataset.root / "labels.sqlite", task="margin", scale=(1, 10))
    store.add_items(dataset.store_items())
    try:
        server = LabelServer((host, int(port)), dataset, store, annotator)
    except OSError as e:
        store.close()
        raise ValueError(f"cannot listen on {host}:{port}: {e}") from e
    threading.Thread(target=server.serve_forever, daemon=True, name="label-server").start()
    h, p = server.server_address[:2]
    return server, f"http://{'[' + h + ']' if ':' in h else h}:{p}/"


def run(cfg):
    pc = cfg.pipeline
    server, url = start_server(cfg.data, pc.db, pc.host, pc.port, pc.annotator, pc.max_items)
    print(f"labelling {len(server.dataset.keys)} pairs of {server.dataset.root}, ratings -> {server.store.path}")
    print(f"open {url}   (Ctrl-C to stop; every rating is saved when given)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print(f"stopped; ratings per annotator: {server.store.counts()}")
    finally:
        server.shutdown()
        server.server_close()
