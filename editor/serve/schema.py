"""The HTTP API's requests and answers, checked before any work is queued (no Ray, no model here).

Audio travels as bytes, never as text: a request is multipart/form-data (what `curl -F` sends), the
audio a file part, every other field a text part; an answer is the WAV itself.

    POST /clone  prompt_audio=@FILE prompt_text text [seed=0] [temperature=0.7]
             -> audio/wav
    POST /edit   audio=@FILE text edit_type [edit_info] [n_iter=1] [prompt_fixed=false] [seed=0]
                 [temperature=0.7] [iterations=last|all]
             -> audio/wav of the last iteration; iterations=all: multipart/form-data, one file part
                iter1.wav ... iterN.wav per iteration

Audio files are read as WAV, FLAC or OGG, any sample rate, channels averaged; answers are 16 kHz
16-bit mono WAV. The headers X-Batch-Size and X-Compute-S tell how many requests shared this one's
editor call and that call's time. Every bad request raises BadRequest naming its field, so one
client's mistake is a 4xx for that client and never reaches a batch that others share.
"""
import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from core import audio
from core.http_body import BodyRefused, encode_multipart, multipart_boundary, parse_multipart
from editor.llm.editor import EDIT_TYPES, SR, Editor, check_audio, check_clone_length, check_edit, check_text


class BadRequest(ValueError):
    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status

    def body(self) -> dict:
        return {"error": str(self), "field": self.field}


@dataclass(frozen=True)
class Limits:
    max_body_mb: float = 20.0      # whole request
    min_audio_s: float = 0.3       # the editor needs at least 0.3 s
    max_audio_s: float = 120.0     # clip to edit; longer ones are split at pauses, so time grows with it
    max_prompt_s: float = 30.0     # voice prompt of a clone (the editor's own limit is 30 s)
    max_n_iter: int = 5

    def __post_init__(self):
        if self.max_prompt_s > Editor.max_chunk_s or self.max_audio_s > Editor.max_edit_s:
            raise ValueError(f"limits: max_prompt_s <= {Editor.max_chunk_s:g} and max_audio_s <= "
                             f"{Editor.max_edit_s:g} (the editor's own limits)")


CLONE_FIELDS = ("prompt_audio", "prompt_text", "text", "seed", "temperature")
EDIT_FIELDS = ("audio", "text", "edit_type", "edit_info", "n_iter", "prompt_fixed", "seed", "temperature",
               "iterations")


def check_content_type(content_type: str | None) -> None:
    """Before the body is read: a JSON or boundless body is refused unread (415 / 400)."""
    try:
        multipart_boundary(content_type)
    except BodyRefused as e:
        raise BadRequest("body", str(e), e.status) from None


def parse_form(content_type: str | None, body: bytes, limits: Limits, allowed: tuple,
               file_field: str) -> tuple[dict[str, str], dict[str, bytes]]:
    if len(body) > limits.max_body_mb * 1e6:
        raise BadRequest("body", f"{len(body) / 1e6:.1f} MB, limit {limits.max_body_mb:g} MB", 413)
    try:
        fields, files = parse_multipart(content_type, body)
    except BodyRefused as e:
        raise BadRequest("body", str(e), e.status) from None
    unknown = sorted((set(fields) | set(files)) - set(allowed))
    if unknown:      # a typo ("edit-type") would otherwise be silently ignored
        raise BadRequest(unknown[0], f"unknown field; valid: {', '.join(allowed)}")
    wrong = sorted((set(files) - {file_field}) | ({file_field} & set(fields)))
    if wrong:
        want = "a file part (curl -F name=@file)" if wrong[0] == file_field else "a text part, not a file"
        raise BadRequest(wrong[0], f"must be {want}")
    return fields, files


def _required(form: dict, field: str):
    if form.get(field) is None:
        raise BadRequest(field, "missing")
    return form[field]


def _audio(files: dict, field: str, limits: Limits, max_s: float) -> np.ndarray:
    data = _required(files, field)
    try:
        x, sr = audio.decode(data, field, max_s=max_s)
        if len(x) < limits.min_audio_s * sr:
            raise ValueError(f"{field}: too short ({len(x) / sr:.3f} s; at least {limits.min_audio_s:g} s)")
        return check_audio(x, sr, field, max_s=max_s)
    except audio.TooLong as e:
        raise BadRequest(field, f"{e.seconds:.1f} s is longer than {max_s:g} s") from None
    except ValueError as e:     # messages already start with the field's name
        raise BadRequest(field, str(e).removeprefix(f"{field}: ")) from None


def _text(fields: dict, field: str, required: bool = True) -> str:
    try:
        return check_text(fields.get(field), field, required=required)
    except ValueError as e:
        raise BadRequest(field, str(e).removeprefix(f"{field}: ")) from None


def _int(fields: dict, field: str, default: int, lo: int, hi: int | None = None) -> int:
    s = fields.get(field, str(default)).strip()
    v = int(s) if s.isascii() and s.isdigit() and len(s) <= 20 else None
    if v is None or v < lo or (hi is not None and v > hi):
        raise BadRequest(field, f"need an integer in [{lo}, {hi if hi is not None else 'inf'}], got {s[:40]!r}")
    return v


def _choice(fields: dict, field: str, options: tuple) -> str:
    v = fields.get(field, options[0]).strip().lower()
    if v not in options:
        raise BadRequest(field, f"need one of {', '.join(options)}, got {v[:40]!r}")
    return v


def _sampling(fields: dict) -> dict:
    s = fields.get("temperature", "0.7").strip()
    try:
        t = float(s) if len(s) <= 40 else math.nan
    except ValueError:
        t = math.nan
    if not math.isfinite(t) or not 0 <= t <= 2:
        raise BadRequest("temperature", f"need a number in [0, 2] (0 = greedy), got {s[:40]!r}")
    return {"seed": _int(fields, "seed", 0, 0, 2**32 - 1), "temperature": t}


def clone_request(content_type: str | None, body: bytes, limits: Limits) -> dict:
    """Request -> Editor.clone_many's keyword arguments."""
    fields, files = parse_form(content_type, body, limits, CLONE_FIELDS, "prompt_audio")
    req = {"prompt_wav": _audio(files, "prompt_audio", limits, limits.max_prompt_s),
           "prompt_text": _text(fields, "prompt_text"), "text": _text(fields, "text"), **_sampling(fields)}
    try:
        check_clone_length(req["prompt_wav"], req["prompt_text"], req["text"])
    except ValueError as e:
        raise BadRequest("text", str(e).removeprefix("text: ")) from None
    return req


def edit_request(content_type: str | None, body: bytes, limits: Limits) -> tuple[dict, bool]:
    """Request -> (Editor.edit_many's keyword arguments, whether every iteration is answered)."""
    fields, files = parse_form(content_type, body, limits, EDIT_FIELDS, "audio")
    edit_type, edit_info = _required(fields, "edit_type").strip(), fields.get("edit_info", "").strip() or None
    if edit_type not in EDIT_TYPES:
        raise BadRequest("edit_type", f"unknown {edit_type!r}; valid: {', '.join(EDIT_TYPES)}")
    try:
        check_edit(edit_type, edit_info)
    except ValueError as e:
        raise BadRequest("edit_info", str(e).removeprefix("edit_info: ")) from None
    # a paralinguistic edit cannot be split at pauses (its tagged text goes whole): one chunk at most
    max_s = Editor.max_chunk_s if edit_type == "paralinguistic" else limits.max_audio_s
    wav = _audio(files, "audio", limits, min(max_s, limits.max_audio_s))
    req = {"wav": wav, "text": _text(fields, "text", required=edit_type not in ("denoise", "vad")),
           "edit_type": edit_type, "edit_info": edit_info,
           "n_iter": _int(fields, "n_iter", 1, 1, limits.max_n_iter),
           "prompt_fixed": _choice(fields, "prompt_fixed", ("false", "true")) == "true", **_sampling(fields)}
    return req, _choice(fields, "iterations", ("last", "all")) == "all"


def wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def answer(clips: list[np.ndarray], every: bool) -> tuple[str, bytes]:
    """(Content-Type, body): the last clip's WAV, or every clip as a file part iter1.wav ... iterN.wav."""
    if not every:
        return "audio/wav", wav_bytes(clips[-1])
    return encode_multipart([(f"iter{k}.wav", wav_bytes(y)) for k, y in enumerate(clips, 1)])
