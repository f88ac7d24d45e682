"""The cloning server and the engine against hostile input: a real server (python -m tts.server) in a
subprocess on 127.0.0.1, so that its memory can be measured, and real espeak-ng/Piper behind it."""
import base64
import http.client
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
PROMPT = "The weather today is mild, with a light breeze from the west and a few clouds in the afternoon."
LIMITS = {"read_timeout_s": 1.5, "max_text_chars": 200, "max_prompt_text_chars": 200, "max_prompt_s": 12,
          "max_body_bytes": 2_000_000, "max_requests_in_flight": 2}
RSS_LIMIT_MB = 800  # the server's peak resident memory over the whole module


def espeak_wav(text: str, voice: str = "en-us") -> bytes:
    return subprocess.run(["espeak-ng", "-v", voice, "--stdout", "--stdin"], input=text.encode(),
                          capture_output=True, check=True).stdout


PROMPT_B64 = base64.b64encode(espeak_wav(PROMPT)).decode()


def clone_body(**fields) -> dict:
    return {"prompt_audio": PROMPT_B64, "prompt_text": PROMPT, "text": "Close the door right now.",
            "language": "en", **fields}


class Server:
    def __init__(self, proc, port):
        self.proc, self.port = proc, port

    def request(self, method: str, path: str, body: bytes | None = None, headers=None, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            conn.close()

    def clone(self, req, timeout=60):
        body = req if isinstance(req, bytes) else json.dumps(req).encode()
        return self.request("POST", "/clone", body, {"Content-Type": "application/json"}, timeout)

    def raw(self, data: bytes, wait_s: float = 6) -> tuple[int, dict]:
        """Send `data` as it is, keep the connection open, and read the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait_s) as sock:
            sock.sendall(data)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    def memory_mb(self, key: str) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen([sys.executable, "-m", "tts.server", "--port", "0",
                             *(f"{k}={v}" for k, v in LIMITS.items())],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    port = int(re.search(r":(\d+)$", line.strip()).group(1))
    yield Server(proc, port)
    proc.terminate()
    proc.wait(10)


def assert_error(reply, status: int, pattern: str):
    code, ctype, body = reply
    assert code == status, body[:300]
    assert ctype == "application/json"
    assert re.search(pattern, json.loads(body)["error"]), json.loads(body)["error"]


# --- option injection ---------------------------------------------------------------------------

def test_text_is_spoken_not_read_as_an_espeak_option(server, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("Secret words that only this file holds.")
    injected = server.clone(clone_body(text=f"-f{secret}", base_voice="espeak:en"))
    of_file = server.clone(clone_body(text=secret.read_text(), base_voice="espeak:en"))
    assert injected[0] == of_file[0] == 200
    assert injected[2] != of_file[2]  # it spoke the characters it was given, not the file


def test_engine_speaks_option_like_text():
    from tts.base_voices import EspeakVoiceBase
    voice = EspeakVoiceBase("espeak:en", "en", "en")
    assert len(voice.synthesize("--version", 16000)) > 0.3 * 16000  # spoken, not run as `--version`


@pytest.mark.parametrize("voice", ["espeak:-f/etc/hostname", "espeak:en --stdin", "espeak:en+-f/etc/hostname",
                                   "espeak:zz-nowhere", "espeak:en+novariant", "piper:../../x", "espeak:"])
def test_base_voice_must_be_a_known_voice(server, voice):
    assert_error(server.clone(clone_body(base_voice=voice)), 400, r"field 'base_voice': unknown base voice")


def test_engine_refuses_unknown_base_voice():
    from tts.engine import LocalEngine
    with pytest.raises(ValueError, match="unknown base voice 'espeak:-w/tmp/x'"):
        LocalEngine(16000).base("hello there", "en", "espeak:-w/tmp/x")


# --- sizes and timeouts -------------------------------------------------------------------------

def test_oversized_body_is_refused_before_it_is_read(server):
    t0 = time.monotonic()
    code, err = server.raw(b"POST /clone HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n{")
    assert code == 413 and "over the limit of 2000000 bytes" in err["error"]
    assert time.monotonic() - t0 < LIMITS["read_timeout_s"]  # answered at once, not after a read timeout


@pytest.mark.parametrize("length, status, pattern", [
    ("-1", 400, "not a non-negative integer"), ("12abc", 400, "not a non-negative integer"),
    (None, 411, "Content-Length is missing"), ("99999999999999999999999", 413, "over the limit"),
])
def test_bad_content_length(server, length, status, pattern):
    header = b"" if length is None else f"Content-Length: {length}\r\n".encode()
    code, err = server.raw(b"POST /clone HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n{}")
    assert code == status and pattern in err["error"]


def test_slow_body_times_out(server):
    t0 = time.monotonic()
    code, err = server.raw(b"POST /clone HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\":")
    assert code == 408 and "not received within 1.5 s" in err["error"]
    assert time.monotonic() - t0 < LIMITS["read_timeout_s"] + 2


def test_silent_client_is_cut_off_while_sending_headers(server):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=6) as sock:
        sock.sendall(b"POST /clone HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(100) == b""  # closed by the server
    assert time.monotonic() - t0 < LIMITS["read_timeout_s"] + 2


def test_requests_over_the_in_flight_limit_get_503(server):
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(LIMITS["max_requests_in_flight"])]
    for sock in slow:  # admitted, then silent: they hold their places until the read timeout
        sock.sendall(b"POST /clone HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.3)
    assert_error(server.clone(clone_body()), 503, r"server busy: 2 requests in flight")
    for sock in slow:
        sock.close()
    time.sleep(LIMITS["read_timeout_s"] + 0.5)
    assert server.clone(clone_body())[0] == 200


def test_long_text_is_refused_with_the_limit(server):
    long = "The door is closed. " * 11
    assert_error(server.clone(clone_body(text=long)), 400, r"field 'text': 220 characters, over the limit of 200")
    assert_error(server.clone(clone_body(prompt_text=long)), 400, r"field 'prompt_text': .*limit of 200")


def test_long_prompt_audio_is_refused(server):
    long = espeak_wav(" ".join([PROMPT] * 3))  # ~18 s
    assert_error(server.clone(clone_body(prompt_audio=base64.b64encode(long).decode())), 400,
                 r"field 'prompt_audio': 1\d\.\d s, over the limit of 12")


def test_engine_refuses_text_over_its_limit():
    from tts.base_voices import UnspeakableText
    from tts.engine import LocalEngine
    with pytest.raises(UnspeakableText, match="120 characters is over the limit of 100"):
        LocalEngine(16000, max_text_chars=100).base(("Hello there. " * 10)[:120], "en", None)


def test_text_chunks_cut_at_sentence_ends():
    from tts.engine import text_chunks
    text = "One short sentence. Another one follows it! Then a question? " * 4
    chunks = text_chunks(text, 70)
    assert all(len(c) <= 70 for c in chunks)
    assert all(c[-1] in ".!?" for c in chunks)
    assert " ".join(chunks) == text.strip()
    assert [len(c) for c in text_chunks("x" * 150, 70)] == [70, 70, 10]  # no break at all: cut anyway


def test_engine_renders_long_text_in_chunks():
    """Over chunk_chars, without sentence ends: Piper gets pieces, the rendering is whole."""
    from tts.engine import LocalEngine
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 4)
    whole = LocalEngine(16000).base(text, "en", None)
    chunked = LocalEngine(16000, chunk_chars=60).base(text, "en", None)
    assert 0.8 < len(chunked) / len(whole) < 1.5


# --- JSON of the wrong shape --------------------------------------------------------------------

@pytest.mark.parametrize("body, pattern", [
    (b"[]", r"must be a JSON object, got array"),
    (b'"clone me"', r"must be a JSON object, got string"),
    (b"null", r"must be a JSON object, got null"),
    (b"{", r"not JSON"),
    (b"\xff\xfe{}", r"not JSON"),
    (b"[" * 100000, r"not JSON"),
    (json.dumps(clone_body(prompt_audio=12345)).encode(), r"field 'prompt_audio': must be a string, got integer"),
    (json.dumps(clone_body(prompt_audio="not base64!")).encode(), r"field 'prompt_audio': not base64"),
    (json.dumps(clone_body(prompt_audio=base64.b64encode(b"RIFFjunk").decode())).encode(),
     r"field 'prompt_audio': cannot decode audio"),
    (json.dumps(clone_body(seed=None)).encode(), r"field 'seed': must be an integer, got null"),
    (json.dumps(clone_body(seed="3")).encode(), r"field 'seed': must be an integer, got string"),
    (json.dumps(clone_body(seed=True)).encode(), r"field 'seed': must be an integer, got boolean"),
    (json.dumps(clone_body(seed=-1)).encode(), r"field 'seed': must be in"),
    (json.dumps(clone_body(text=["a"])).encode(), r"field 'text': must be a string, got array"),
    (json.dumps(clone_body(instruction={})).encode(), r"field 'instruction': must be a string or null, got object"),
    (json.dumps(clone_body(language="fr")).encode(), r"field 'language': 'fr' is not one of en, zh, yue"),
    (json.dumps({k: v for k, v in clone_body().items() if k != "text"}).encode(), r"field 'text': missing"),
    (json.dumps(clone_body(voice="x")).encode(), r"unknown field 'voice'"),
])
def test_wrong_shape_is_400_naming_the_field(server, body, pattern):
    assert_error(server.clone(body), 400, pattern)


def test_other_errors_are_json(server):
    assert_error(server.request("GET", "/nowhere"), 404, "unknown path '/nowhere'")
    assert_error(server.request("PUT", "/clone", b"{}"), 501, "Unsupported method")


# --- hostile input at large ---------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(st.characters(max_codepoint=0x7f), max_size=120),
    st.text(st.sampled_from("你好吗。，！-[]<>/ f"), max_size=60),
    st.sampled_from(["-f/etc/hostname", "--stdin", "-w /tmp/out.wav", "--path=/tmp",
                     "<speak><audio src='/etc/hostname'/></speak>", "[[h@l'oU]]", "\x00\x01", "hello\u202eworld",
                     "a" * 201, "你好" * 150, " ", "-", "Hello there. " * 15]),
)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                max_size=4),
                    max_leaves=12)
FIELD_VALUES = {
    "prompt_audio": st.one_of(st.just(PROMPT_B64), JSON,
                              st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())),
    "prompt_text": st.one_of(st.just(PROMPT), HOSTILE_TEXT, JSON),
    "text": st.one_of(HOSTILE_TEXT, JSON),
    "language": st.one_of(st.sampled_from(["en", "zh", "yue", "EN", "fr", ""]), JSON),
    "instruction": st.one_of(st.none(), HOSTILE_TEXT, JSON),
    "base_voice": st.one_of(st.sampled_from([None, "piper:joe", "espeak:en", "espeak:yue+m2", "espeak:-f/etc/hostname",
                                             "espeak:en+f2 --stdin"]), HOSTILE_TEXT),
    "seed": st.one_of(st.integers(), JSON),
}
HOSTILE_REQUEST = st.one_of(
    st.fixed_dictionaries({}, optional=FIELD_VALUES).map(lambda d: json.dumps(d).encode()),
    # well-formed but for the text and the optional fields: these reach the engine
    st.fixed_dictionaries({"prompt_audio": st.just(PROMPT_B64), "prompt_text": st.just(PROMPT),
                           "language": st.sampled_from(["en", "zh", "yue"]), "text": HOSTILE_TEXT},
                          optional={k: FIELD_VALUES[k] for k in ("instruction", "base_voice", "seed")}
                          ).map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(body=HOSTILE_REQUEST)
def test_hostile_requests_get_answers_not_failures(server, body):
    code, ctype, reply = server.clone(body)
    assert 200 <= code < 500, reply[:300]
    if code != 200:
        assert ctype == "application/json" and isinstance(json.loads(reply)["error"], str)
    assert server.memory_mb("VmRSS") < RSS_LIMIT_MB


def test_server_still_serves_after_hostile_input(server):
    """Last in the module: after everything above, a normal request is answered, memory was bounded."""
    code, ctype, reply = server.clone(clone_body())
    assert code == 200 and ctype == "audio/flac" and len(reply) > 1000
    assert server.memory_mb("VmHWM") < RSS_LIMIT_MB
