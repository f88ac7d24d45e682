"""HttpEditor: an editor behind HTTP (benchmark/editor_server.py's protocol) scored like a local one.
The audio goes as a multipart file part (FLAC bytes) and comes back as an audio file."""
import io
import json
import urllib.error
import urllib.request

import numpy as np
import soundfile as sf

from benchmark.editors import BenchmarkEditor
from core import audio
from core.http_body import encode_multipart


class HttpEditor(BenchmarkEditor):
    def __init__(self, url: str, timeout_s: float = 300.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"editor url {url!r}: must start with http:// or https://")
        self.url, self.timeout_s = url.rstrip("/"), timeout_s
        self.name = f"http:{json.loads(self._call(urllib.request.Request(f'{self.url}/health'))).get('name', '?')}"

    def _call(self, req) -> bytes:
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read()).get("error", "")
            except ValueError:
                msg = e.reason
            raise RuntimeError(f"editor server {self.url}: HTTP {e.code}: {msg}") from None
        except urllib.error.URLError as e:
            raise RuntimeError(f"editor server {self.url}: unreachable ({e.reason})") from None

    def _post(self, path: str, parts) -> np.ndarray:
        ctype, body = encode_multipart(parts)
        req = urllib.request.Request(f"{self.url}{path}", data=body, method="POST", headers={"Content-Type": ctype})
        data = self._call(req)
        try:
            x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except Exception as e:  # noqa: BLE001 - whatever came back is not audio
            raise RuntimeError(f"editor server {self.url}{path}: the answer is not audio ({str(e)[:100]})") from None
        return audio.resample(x.mean(axis=1), sr, 16000)

    def clone(self, prompt_wav, prompt_text, text, language="en", seed=0):
        return self._post("/clone", [("prompt_audio", audio.encode_flac(np.asarray(prompt_wav, np.float32), 16000)),
                                     ("prompt_text", prompt_text), ("text", text), ("language", language),
                                     ("seed", str(seed))])

    def edit(self, wav, text, edit_type, edit_info, language="en", seed=0):
        return self._post("/edit", [("audio", audio.encode_flac(np.asarray(wav, np.float32), 16000)), ("text", text),
                                    ("edit_type", edit_type), ("edit_info", edit_info), ("language", language),
                                    ("seed", str(seed))])
