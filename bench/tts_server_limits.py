"""What the cloning server's limits cost: time and server memory for a refused oversized text and
for the largest requests the default limits admit (configs/tts_server.yaml).

    python bench/tts_server_limits.py | tee bench/results/tts_server_limits.log

The server runs as `python -m tts.server` with its default settings, in a subprocess on 127.0.0.1;
memory is its resident set (VmRSS) after each request and its peak (VmHWM) so far."""
import http.client
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from core.http_body import encode_multipart  # noqa: E402

PROMPT_SENTENCE = "The weather today is mild, with a light breeze from the west and a few clouds in the afternoon. "


def espeak_wav(text: str) -> bytes:
    return subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", "--stdin"], input=text.encode(),
                          capture_output=True, check=True).stdout


def memory_mb(pid: int, key: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) / 1024


def post(port: int, body: dict) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t = time.perf_counter()
    ctype, data = encode_multipart(body.items())
    conn.request("POST", "/clone", data, {"Content-Type": ctype})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r.status, time.perf_counter() - t


def main():
    # a prompt near the 30 s limit (espeak-ng speaks 480 characters of this in about 25 s)
    prompt_text = (PROMPT_SENTENCE * 5).strip()
    prompt = espeak_wav(prompt_text)
    base = {"prompt_audio": prompt, "prompt_text": prompt_text, "language": "en"}
    sentences = ("Close the door right now, and then bring the red box from the kitchen to the hall. " * 8)[:598]
    cases = [
        ("9,000-character text (refused)", {**base, "text": "word " * 1800}),
        ("600-character text, sentence ends", {**base, "text": sentences}),
        ("600 characters, no sentence end", {**base, "text": ("alpha bravo charlie delta " * 24)[:600]}),
        ("short text after the large ones", {**base, "text": "Close the door right now."}),
    ]
    proc = subprocess.Popen([sys.executable, "-m", "tts.server", "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r":(\d+)$", proc.stdout.readline().strip()).group(1))
        print(f"prompt: {len(prompt_text)} characters of text, "
              f"{(len(prompt) - 44) / 2 / 22050:.1f} s of espeak-ng audio")
        print(f"server at start: {memory_mb(proc.pid, 'VmRSS'):.0f} MB")
        print("| request | status | seconds | server MB after | server peak MB so far |")
        print("|---|---|---|---|---|")
        for name, body in cases:
            status, sec = post(port, body)
            print(f"| {name} | {status} | {sec:.2f} | {memory_mb(proc.pid, 'VmRSS'):.0f} | "
                  f"{memory_mb(proc.pid, 'VmHWM'):.0f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
