"""The label page under hostile input: bounded bodies and reads, only its own Host, strict annotator
names and scores, a busy label store answered with 503, server faults answered with 500, and a
property-based fuzz of a real server process. Every test also checks that no rating given before
the bad request is lost."""
import http.client
import io
import json
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.label_margins import start_server

REPO = Path(__file__).resolve().parent.parent
KEYS = [f"k{i}" for i in range(4)]


def _shard(directory: Path) -> Path:
    """A real plain-tar shard of four pairs; the clips are short byte strings (the server never decodes them)."""
    tar = directory / "shards" / "s-000000.tar"
    tar.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar, "w") as t:
        for key in KEYS:
            meta = {"edit_info": "happy", "edit_type": "emotion", "text": f"text of {key}", "instruction": "be happy"}
            for name, data in ((f"{key}.src.flac", b"fLaC src " + key.encode()),
                               (f"{key}.tgt.flac", b"fLaC tgt " + key.encode()),
                               (f"{key}.json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return tar


@pytest.fixture
def serve(tmp_path):
    """start(host, **limits) -> (server, port, db): a label server (127.0.0.1) over a fresh shard and database."""
    servers = []

    def start(host="127.0.0.1", **limits):
        db = tmp_path / "labels.sqlite"
        server, url = start_server(_shard(tmp_path), db=db, host=host, port=0, **limits)
        servers.append(server)
        return server, urlsplit(url).port, db

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _request(port, method="POST", path="/api/rate", body=b"", **headers) -> bytes:
    """Raw request bytes: Host, Content-Type and Content-Length are right unless given (None drops one)."""
    fields = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", "Content-Length": str(len(body)),
              **{k.replace("_", "-"): v for k, v in headers.items()}}
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _exchange(port, raw: bytes, timeout=10.0, then=None, method="POST"):
    """Send raw bytes (then call then(sock) to send more) and read one answer: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        if then:
            then(sock)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return response.status, response.headers, response.read()


def _error(status_headers_body) -> str:
    """The message of a JSON error answer (fails if the answer is not one)."""
    status, headers, body = status_headers_body
    assert status >= 400 and headers["Content-Type"] == "application/json", (status, headers, body)
    return json.loads(body)["error"]


def _rate(port, key, annotator, score, **headers):
    body = json.dumps({"key": key, "annotator": annotator, "score": score}).encode()
    return _exchange(port, _request(port, body=body, **headers))


def _stored(db) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT item_id, annotator, score, typeof(score) FROM ratings ORDER BY item_id, annotator"
                         ).fetchall()


def _rated_first(port):
    """One rating given before the bad requests: it must survive them."""
    assert _rate(port, "k0", "alice", 7)[0] == 200
    return [("k0", "alice", 7, "integer")]


# request bodies: size known and bounded before reading, read within a time limit

@pytest.mark.parametrize("length, status, message", [
    ("-1", 400, "Content-Length '-1' is not a non-negative integer"),
    ("12abc", 400, "is not a non-negative integer"),
    ("+40", 400, "is not a non-negative integer"),
    ("1_0", 400, "is not a non-negative integer"),  # int() would take it as 10
    (None, 411, "Content-Length is required"),
])
def test_bad_content_length_is_refused_without_reading(serve, length, status, message):
    server, port, db = serve()
    before = _rated_first(port)
    body = json.dumps({"key": "k1", "annotator": "bob", "score": 5}).encode()
    # the client keeps its side open: a server reading "until the client closes" would never answer
    answer = _exchange(port, _request(port, body=body, Content_Length=length), timeout=5)
    assert answer[0] == status and message in _error(answer)
    assert _stored(db) == before


def test_oversized_and_doubled_bodies_are_refused_before_reading(serve):
    server, port, db = serve(max_body_bytes=100)
    before = _rated_first(port)
    # only the headers are sent: the answer can only come before any body is read
    answer = _exchange(port, _request(port, Content_Length=str(10 ** 12)), timeout=5)
    assert answer[0] == 413 and "over the limit of 100 bytes" in _error(answer)
    answer = _exchange(port, _request(port, Content_Length="0" * 5000 + "101"), timeout=5)
    assert answer[0] == 413
    answer = _exchange(port, _request(port, Content_Length="1", Transfer_Encoding="chunked"), timeout=5)
    assert answer[0] == 400 and "Transfer-Encoding" in _error(answer)
    doubled = _request(port, body=b"{}").replace(b"Content-Length: 2", b"Content-Length: 2\r\nContent-Length: 2")
    answer = _exchange(port, doubled, timeout=5)
    assert answer[0] == 400 and "one Content-Length" in _error(answer)
    assert _stored(db) == before


def test_slow_body_times_out_with_408(serve):
    server, port, db = serve(read_timeout_s=0.5)
    before = _rated_first(port)
    body = json.dumps({"key": "k1", "annotator": "bob", "score": 5}).encode()

    def trickle(sock):  # one byte every 0.1 s: each read is quick, the whole body is not
        for byte in body[10:]:
            time.sleep(0.1)
            try:
                sock.sendall(bytes([byte]))
            except ConnectionError:
                return

    t0 = time.monotonic()
    for then in (None, trickle):  # stalled after 10 bytes / trickling
        answer = _exchange(port, _request(port, body=body[:10], Content_Length=str(len(body))), then=then)
        assert answer[0] == 408 and "not received within 0.5 s" in _error(answer)
    assert time.monotonic() - t0 < 5
    assert _stored(db) == before


# only the Host the server was bound to (DNS rebinding); annotator names bounded and plain

def test_foreign_host_is_refused(serve):
    server, port, db = serve()
    before = _rated_first(port)
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1",
                 f"localhost.:{port}", f"127.0.0.1:{port}@evil.example", f"127.0.0.2:{port}"):
        for method, path in (("GET", "/"), ("GET", "/api/item"), ("GET", "/audio/k0/src"), ("POST", "/api/rate")):
            body = json.dumps({"key": "k1", "annotator": "mallory", "score": 1}).encode() if method == "POST" else b""
            answer = _exchange(port, _request(port, method, path, body, Host=host), method=method)
            assert answer[0] == 421 and "unexpected Host" in _error(answer), (host, path)
    for host in ("", None):  # empty, and none at all (an HTTP/1.0 client that omits it)
        answer = _exchange(port, _request(port, "GET", "/api/item", Host=host))
        assert answer[0] == 400 and "Host" in _error(answer)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}"):
        assert _exchange(port, _request(port, "GET", "/api/item", Host=host))[0] == 200
    assert _stored(db) == before


def test_bound_to_all_interfaces_accepts_ip_literals_and_localhost(serve):
    server, port, db = serve(host="0.0.0.0")
    for host in (f"127.0.0.1:{port}", f"0.0.0.0:{port}", f"localhost:{port}"):
        assert _exchange(port, _request(port, "GET", "/api/item", Host=host))[0] == 200, host
    answer = _exchange(port, _request(port, "GET", "/api/item", Host=f"evil.example:{port}"))
    assert answer[0] == 421 and "unexpected Host" in _error(answer)


@pytest.mark.parametrize("annotator", [
    "a" * 65, "x" * 100_000, {"name": "bob"}, ["bob"], 5, None, True, "bo\x00b", "bo\nb", "b\x1bob", "\u202eevil",
    "\ud800", "   "])
def test_bad_annotator_is_refused(serve, annotator):
    server, port, db = serve(max_annotator_chars=64, max_body_bytes=200_000)
    before = _rated_first(port)
    answer = _rate(port, "k1", annotator, 5)
    assert answer[0] == 400 and "annotator" in _error(answer)
    assert _stored(db) == before


def test_bad_annotator_is_refused_when_asking_for_an_item(serve):
    server, port, db = serve(max_annotator_chars=64)
    for annotator in ("a" * 65, "bo\x00b", "b\x1bob", "\u202eevil", "bo\tb"):
        answer = _exchange(port, _request(port, "GET", "/api/item?" + urlencode({"annotator": annotator})))
        assert answer[0] == 400 and "annotator" in _error(answer), annotator


def test_good_annotator_names_are_stored_stripped(serve):
    server, port, db = serve(max_annotator_chars=64)
    before = _rated_first(port)
    assert _rate(port, "k1", "  Zoë Ng ", 3)[0] == 200
    assert _rate(port, "k2", "é" * 64, 4)[0] == 200
    assert _stored(db) == before + [("k1", "Zoë Ng", 3, "integer"), ("k2", "é" * 64, 4, "integer")]


# scores are integers on the scale; a busy label store answers 503

@pytest.mark.parametrize("score", ['5.5', '5.0', '"5"', 'true', '0', '11', '-3', 'null', '[5]', '{"v": 5}',
                                   '1e400', 'NaN', '-Infinity', '9' * 400])
def test_score_must_be_an_integer_on_the_scale(serve, score):
    server, port, db = serve()
    before = _rated_first(port)
    body = ('{"key": "k0", "annotator": "alice", "score": %s}' % score).encode()  # a re-rating of the kept one
    answer = _exchange(port, _request(port, body=body))
    assert answer[0] == 400 and "score" in _error(answer)
    assert _stored(db) == before


def test_scale_ends_are_stored_as_integers(serve):
    server, port, db = serve()
    before = _rated_first(port)
    assert _rate(port, "k1", "alice", 1)[0] == 200 and _rate(port, "k2", "alice", 10)[0] == 200
    assert _stored(db) == before + [("k1", "alice", 1, "integer"), ("k2", "alice", 10, "integer")]


def test_busy_label_store_answers_503(serve):
    server, port, db = serve(db_timeout_s=0.3)
    before = _rated_first(port)
    other_writer = sqlite3.connect(db, isolation_level=None)
    other_writer.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        status, headers, body = _rate(port, "k1", "alice", 4)
        waited = time.monotonic() - t0
        assert status == 503 and headers["Content-Type"] == "application/json", (status, body)
        assert json.loads(body) == {"error": "label store busy, retry"} and int(headers["Retry-After"]) >= 1
        assert 0.3 <= waited < 3
        assert _exchange(port, _request(port, "GET", "/api/item?annotator=alice"))[0] == 200  # reads go on
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()
    assert _rate(port, "k1", "alice", 4)[0] == 200  # the retry the 503 asked for
    assert _stored(db) == before + [("k1", "alice", 4, "integer")]


def test_server_fault_answers_500_json(serve, tmp_path):
    server, port, db = serve()
    before = _rated_first(port)
    (tmp_path / "shards" / "s-000000.tar").unlink()  # the clips vanish under the running server
    answer = _exchange(port, _request(port, "GET", "/audio/k0/src"))
    assert answer[0] == 500 and _error(answer) == "internal server error"
    assert _exchange(port, _request(port, "GET", "/api/item?annotator=alice"))[0] == 200
    assert _stored(db) == before


def test_burst_of_300_ratings_all_answered_and_kept(serve):
    server, port, db = serve()
    before = _rated_first(port)
    with ThreadPoolExecutor(300) as pool:
        statuses = list(pool.map(lambda i: _rate(port, KEYS[i % 4], f"a{i:03}", 1 + i % 10)[0], range(300)))
    assert statuses == [200] * 300
    assert _stored(db) == sorted(before + [(KEYS[i % 4], f"a{i:03}", 1 + i % 10, "integer") for i in range(300)])


# property: whatever arrives, the server answers 2xx/4xx (503 when busy) with JSON errors, within bounded
# memory, keeps every rating it confirmed, and goes on answering

SERVE = """
import sys
from pipelines.label_margins import start_server
server, url = start_server(sys.argv[1], db=sys.argv[2], port=0, read_timeout_s=1.0)
print(url, flush=True)
sys.stdin.read()  # serve until the test closes stdin
"""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
ratings = st.fixed_dictionaries(  # valid in each field more often than not, so that some are saved
    {"key": st.sampled_from(KEYS) | st.sampled_from(KEYS) | json_values,
     "annotator": st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=70) | st.text(max_size=80)
                  | json_values,
     "score": st.integers(-2, 12) | st.integers(1, 10) | json_values})
rating_bodies = ratings.map(json.dumps).map(str.encode)
bodies = st.one_of(
    rating_bodies,
    json_values.map(json.dumps).map(str.encode),
    st.integers(1, 20_000).map(lambda n: b"[" * n),  # nested deeper than the JSON parser's recursion limit
    st.binary(max_size=2000),
    st.text(max_size=2000).map(str.encode),
    st.integers(17_000, 64_000).map(lambda n: b" " * n),  # over the default 16 KiB limit
)
hostile_text = st.text(max_size=200).map(lambda s: s.encode("utf-8"))
any_requests = st.fixed_dictionaries({
    # repeated entries weigh the draw towards requests that get past the first checks
    "method": st.sampled_from(["POST"] * 4 + ["GET"] * 2 + ["HEAD", "PUT", "BREW"]),
    "path": st.sampled_from(["/api/rate"] * 4 + ["/api/item", "/", "/audio/k0/src"])
            | st.text(max_size=60).map(lambda s: "/" + quote(s, safe="/?&=%"))
            | st.dictionaries(st.sampled_from(["key", "annotator"]), st.text(max_size=100)).map(
                lambda q: "/api/item?" + urlencode(q)),
    "host": st.sampled_from(["right"] * 4 + ["localhost", "evil.example", "evil:port", "other port", "", None]),
    "content_length": st.sampled_from(["right"] * 6 + [None, "-1", "abc", "1e3", " 12", "+5", str(10 ** 12), "1 2",
                                                       "shorter", "longer"]),
    "content_type": st.sampled_from(["application/json"] * 4 + ["application/json; charset=utf-8", "text/plain", "",
                                                                 None]) | st.text(max_size=30),
    "transfer_encoding": st.sampled_from([None, None, "chunked"]),
    "extra": st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9-]{1,20}", fullmatch=True), hostile_text), max_size=4),
    "body": bodies,
})
rating_requests = st.fixed_dictionaries({  # well-formed requests whose hostility is all in the JSON
    "method": st.just("POST"), "path": st.just("/api/rate"), "host": st.just("right"),
    "content_length": st.just("right"), "content_type": st.just("application/json"), "transfer_encoding": st.none(),
    "extra": st.just([]),
    "body": rating_bodies})
requests = rating_requests | any_requests


def _raw_request(port, r) -> bytes:
    body = r["body"] if r["method"] in ("POST", "PUT") else b""
    host = {"right": f"127.0.0.1:{port}", "localhost": f"localhost:{port}", "evil:port": f"evil.example:{port}",
            "other port": f"127.0.0.1:{port + 1}"}.get(r["host"], r["host"])
    length = {"right": str(len(body)), "shorter": str(max(len(body) - 1, 0)), "longer": str(len(body) + 1)}.get(
        r["content_length"], r["content_length"])
    head = [f"{r['method']} {r['path']} HTTP/1.1".encode()]
    for name, value in (("Host", host), ("Content-Type", r["content_type"]), ("Content-Length", length),
                        ("Transfer-Encoding", r["transfer_encoding"])):
        if value is not None:
            head.append(f"{name}: {value}".encode())
    head += [name.encode() + b": " + value for name, value in r["extra"]]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _peak_rss_kib(pid) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def _answers_sanely(port, r, confirmed: dict):
    """2xx/4xx (503 when busy), a JSON body for every refusal, and each saved rating noted in confirmed."""
    status, headers, body = _exchange(port, _raw_request(port, r), method=r["method"])
    assert 200 <= status < 300 or 400 <= status < 500 or status == 503, (status, body)
    if status >= 400 and r["method"] != "HEAD":
        assert headers["Content-Type"] == "application/json" and "error" in json.loads(body), body
    if status == 200 and r["method"] == "POST":
        sent = json.loads(r["body"])
        confirmed[(sent["key"], sent["annotator"].strip())] = sent["score"]


def test_hostile_requests_get_sane_answers(tmp_path):
    db = tmp_path / "labels.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(_shard(tmp_path)), str(db)], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = urlsplit(proc.stdout.readline()).port
        confirmed = {("k0", "keeper"): 6}  # (key, annotator) -> score the server said it saved
        assert _rate(port, "k0", "keeper", 6)[0] == 200
        assert _exchange(port, _request(port, "GET", "/api/item?annotator=keeper"))[0] == 200  # imports scipy
        peak_before = _peak_rss_kib(proc.pid)

        @settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(batch=st.lists(requests, min_size=1, max_size=4))
        def answers_sanely_and_goes_on(batch):
            for r in batch:
                _answers_sanely(port, r, confirmed)
            normal = _exchange(port, _request(port, "GET", "/api/item?annotator=keeper"), timeout=5)
            assert normal[0] == 200 and json.loads(normal[2])["rated"] >= 1

        answers_sanely_and_goes_on()
        assert {(k, a): s for k, a, s, _ in _stored(db)} == confirmed
        grown_mib = (_peak_rss_kib(proc.pid) - peak_before) / 1024
        assert grown_mib < 32, f"server peak memory grew by {grown_mib:.0f} MiB"
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
