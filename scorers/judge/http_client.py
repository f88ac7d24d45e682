"""HttpJudge: a judge behind HTTP (scorers/judge_server.py's protocol) with LocalJudge's interface,
so the benchmark scores with an external judge (an audio LLM, another lab's classifier) the same way.
The audio travels as a multipart file part, as bytes, never encoded as text."""
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from core import audio
from core.http_body import encode_multipart
from scorers.judge.labels import check_task


class JudgeRefused(ValueError):
    """The judge server refused the request (4xx): the input is wrong, retrying will not help."""

    def __init__(self, status: int, message: str):
        super().__init__(f"judge server: HTTP {status}: {message}")
        self.status = status


class HttpJudge:
    def __init__(self, url: str, timeout_s: float = 60.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"judge url {url!r}: must start with http:// or https://")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        health = self._call(urllib.request.Request(f"{self.url}/health"))
        self.version, self.tasks = health["version"], health["tasks"]

    def _call(self, req) -> dict:
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", "")
            except ValueError:
                msg = e.reason
            if 400 <= e.code < 500:
                raise JudgeRefused(e.code, msg) from None
            raise RuntimeError(f"judge server {self.url}: HTTP {e.code}: {msg}") from None
        except urllib.error.URLError as e:
            raise RuntimeError(f"judge server {self.url}: unreachable ({e.reason})") from None

    @staticmethod
    def _file_bytes(clip) -> bytes:
        if isinstance(clip, (bytes, bytearray)):
            return bytes(clip)
        if isinstance(clip, (str, Path)):
            if not Path(clip).is_file():
                raise audio.BadAudio(f"{clip}: no such audio file")
            return Path(clip).read_bytes()
        if isinstance(clip, tuple) and len(clip) == 2:
            return audio.encode_flac(np.asarray(clip[0], dtype=np.float32), int(clip[1]))
        raise audio.BadAudio(f"clip: expected audio file bytes, a path or (array, sample_rate); got {type(clip).__name__}")

    def classify_tasks(self, clip, tasks: list[str]) -> dict[str, dict[str, float]]:
        """{task: {class: probability}} for several tasks in one request."""
        ctype, body = encode_multipart([("audio", self._file_bytes(clip)), ("tasks", ",".join(tasks))])
        req = urllib.request.Request(f"{self.url}/classify", data=body, method="POST", headers={"Content-Type": ctype})
        return self._call(req)["tasks"]

    def classify(self, clip, task: str) -> dict[str, float]:
        check_task(task)
        return self.classify_tasks(clip, [task])[task]
