"""The HTTP API's requests and answers, checked before any work is queued (no Ray, no model here).

    POST /clone  {"prompt_audio": B64, "prompt_text": str, "text": str, "seed": 0, "temperature": 0.7}
             -> {"sample_rate": 16000, "audio": B64, "duration_s": float, ...}
    POST /edit   {"audio": B64, "text": str, "edit_type": str, "edit_info": str|null, "n_iter": 1,
                  "prompt_fixed": false, "seed": 0, "temperature": 0.7}
             -> {"sample_rate": 16000, "iterations": [{"audio": B64, "duration_s": float}, ...], ...}

B64 is a base64 audio file (WAV; FLAC and OGG are read too, any sample rate, channels averaged);
answers are 16 kHz 16-bit mono WAV. Every bad request raises BadRequest naming its field, so one
client's mistake is a 4xx for that client and never reaches a batch that others share.
"""
import base64
import binascii
import io
import json
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from core import audio
from editor.llm.editor import EDIT_TYPES, SR, Editor, check_audio, check_edit, check_text


class BadRequest(ValueError):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status

    def body(self) -> dict:
        return {"error": str(self), "field": self.field}


@dataclass(frozen=True)
class Limits:
    max_body_mb: float = 20.0      # whole request; base64 audio is 4/3 of the file
    min_audio_s: float = 0.3       # the editor needs at least 0.3 s
    max_audio_s: float = 120.0     # clip to edit; longer ones are split at pauses, so time grows with it
    max_prompt_s: float = 30.0     # voice prompt of a clone (the editor's own limit is 30 s)
    max_n_iter: int = 5

    def __post_init__(self):
        if self.max_prompt_s > Editor.max_chunk_s or self.max_audio_s > Editor.max_edit_s:
            raise ValueError(f"limits: max_prompt_s <= {Editor.max_chunk_s:g} and max_audio_s <= "
                             f"{Editor.max_edit_s:g} (the editor's own limits)")


CLONE_FIELDS = {"prompt_audio", "prompt_text", "text", "seed", "temperature"}
EDIT_FIELDS = {"audio", "text", "edit_type", "edit_info", "n_iter", "prompt_fixed", "seed", "temperature"}


def parse_json(body: bytes, limits: Limits, allowed: set) -> dict:
    if len(body) > limits.max_body_mb * 1e6:
        raise BadRequest("body", f"{len(body) / 1e6:.1f} MB, limit {limits.max_body_mb:g} MB", 413)
    try:
        req = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest("body", f"not valid JSON ({e})") from None
    except RecursionError:
        raise BadRequest("body", "JSON nested too deeply") from None
    if not isinstance(req, dict):
        raise BadRequest("body", f"need a JSON object, got {type(req).__name__}")
    unknown = sorted(set(req) - allowed)
    if unknown:      # a typo ("edit-type") would otherwise be silently ignored
        raise BadRequest(unknown[0], f"unknown field; valid: {', '.join(sorted(allowed))}")
    return req


def _required(req: dict, field: str):
    if req.get(field) is None:
        raise BadRequest(field, "missing")
    return req[field]


def _audio(req: dict, field: str, limits: Limits, max_s: float) -> np.ndarray:
    b64 = _required(req, field)
    if not isinstance(b64, str):
        raise BadRequest(field, f"need a base64 string, got {type(b64).__name__}")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(field, f"not valid base64 ({e})") from None
    try:
        x, sr = audio.decode(data, field)
        if len(x) < limits.min_audio_s * sr:
            raise ValueError(f"{field}: too short ({len(x) / sr:.3f} s; at least {limits.min_audio_s:g} s)")
        return check_audio(x, sr, field, max_s=max_s)
    except ValueError as e:     # messages already start with the field's name
        raise BadRequest(field, str(e).removeprefix(f"{field}: ")) from None


def _text(req: dict, field: str, required: bool = True) -> str:
    try:
        return check_text(req.get(field), field, required=required)
    except ValueError as e:
        raise BadRequest(field, str(e).removeprefix(f"{field}: ")) from None


def _int(req: dict, field: str, default: int, lo: int, hi: int | None = None) -> int:
    v = req.get(field, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        raise BadRequest(field, f"need an integer in [{lo}, {hi if hi is not None else 'inf'}], got {v!r}")
    return v


def _sampling(req: dict) -> dict:
    t = req.get("temperature", 0.7)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 <= t <= 2:
        raise BadRequest("temperature", f"need a number in [0, 2] (0 = greedy), got {t!r}")
    return {"seed": _int(req, "seed", 0, 0, 2**32 - 1), "temperature": float(t)}


def clone_request(body: bytes, limits: Limits) -> dict:
    """Request body -> Editor.clone_many's keyword arguments."""
    req = parse_json(body, limits, CLONE_FIELDS)
    return {"prompt_wav": _audio(req, "prompt_audio", limits, limits.max_prompt_s),
            "prompt_text": _text(req, "prompt_text"), "text": _text(req, "text"), **_sampling(req)}


def edit_request(body: bytes, limits: Limits) -> dict:
    """Request body -> Editor.edit_many's keyword arguments."""
    req = parse_json(body, limits, EDIT_FIELDS)
    edit_type, edit_info = _required(req, "edit_type"), req.get("edit_info")
    if edit_type not in EDIT_TYPES:
        raise BadRequest("edit_type", f"unknown {edit_type!r}; valid: {', '.join(EDIT_TYPES)}")
    try:
        check_edit(edit_type, edit_info)
    except ValueError as e:
        raise BadRequest("edit_info", str(e)) from None
    # a paralinguistic edit cannot be split at pauses (its tagged text goes whole): one chunk at most
    max_s = Editor.max_chunk_s if edit_type == "paralinguistic" else limits.max_audio_s
    wav = _audio(req, "audio", limits, min(max_s, limits.max_audio_s))
    if not isinstance(req.get("prompt_fixed", False), bool):
        raise BadRequest("prompt_fixed", f"need true or false, got {req['prompt_fixed']!r}")
    return {"wav": wav, "text": _text(req, "text", required=edit_type not in ("denoise", "vad")),
            "edit_type": edit_type, "edit_info": edit_info,
            "n_iter": _int(req, "n_iter", 1, 1, limits.max_n_iter),
            "prompt_fixed": req.get("prompt_fixed", False), **_sampling(req)}


def wav_b64(x: np.ndarray) -> str:
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), SR, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def clip(x: np.ndarray) -> dict:
    return {"audio": wav_b64(x), "duration_s": round(len(x) / SR, 4)}
