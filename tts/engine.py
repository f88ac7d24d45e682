"""The embedded zero-shot cloning engine: base voice -> WORLD -> prompt's timbre and prosody."""
import hashlib
import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import numpy as np

from core.audio import check_waveform
from tts.base_voices import BaseVoices, UnspeakableText, espeak_version
from tts.profile import clone_voicing, profile, speech_mask
from tts.voicing import Voicing
from tts.world_render import analyze, apply, synthesize

ENGINE_VERSION = "local-world-1"
BASE_LEVEL_DB = -26.0   # speech level of base renderings before voicing gain
PEAK_CEILING = 0.97
# Base voices are fed text in chunks of at most CHUNK_CHARS, cut at sentence ends: Piper's memory
# grows with the length of one sentence (2,000 characters asked onnxruntime for 3.7 GB). Text over
# MAX_TEXT_CHARS is refused, since the WORLD analysis of the whole rendering grows with its length.
CHUNK_CHARS = 300
MAX_TEXT_CHARS = 1500
CHUNK_PAUSE_S = 0.25
BASE_CACHE_S = 60.0
# Where to cut text, in order of preference: sentence ends, clause marks, spaces.
_BREAKS = (re.compile(r"(?<=[.!?。！？…])"), re.compile(r"(?<=[,;:，、；：])"), re.compile(r"(?<=\s)"))


def _speech_db(x: np.ndarray, sr: int) -> float:
    hop = int(sr * 0.005)
    n = len(x) // hop
    frames = x[: n * hop].reshape(n, hop)
    m = speech_mask(x, sr, hop)
    return float(10 * np.log10(np.mean(frames[m] ** 2) + 1e-12))


def _set_level(x: np.ndarray, sr: int, db: float) -> np.ndarray:
    return (x * 10 ** ((db - _speech_db(x, sr)) / 20)).astype(np.float32)


def _ceiling(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (PEAK_CEILING / peak)).astype(np.float32) if peak > PEAK_CEILING else x


def text_chunks(text: str, max_chars: int) -> list[str]:
    """`text` in chunks of at most `max_chars`, cut at sentence ends where it can be (then at clause
    marks, spaces, and as a last resort anywhere); consecutive sentences share a chunk while they fit."""
    chunks = [""]
    for piece in _pieces(text, max_chars, 0):
        if len(chunks[-1]) + len(piece) > max_chars:
            chunks.append("")
        chunks[-1] += piece
    return [c.strip() for c in chunks if c.strip()]


def _pieces(text: str, max_chars: int, level: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    if level == len(_BREAKS):
        return [text[i: i + max_chars] for i in range(0, len(text), max_chars)]
    return [p for part in _BREAKS[level].split(text) for p in _pieces(part, max_chars, level + 1)]


class LocalEngine:
    name = "local-world"
    accepts_instruction = False  # the emotion comes from the prompt clip, as in the seed

    def __init__(self, sample_rate: int = 16000, frame_period: float = 5.0, threads: int = 1,
                 cache_dir: str | None = None, chunk_chars: int = CHUNK_CHARS, max_text_chars: int = MAX_TEXT_CHARS):
        self.sr = sample_rate
        self.frame_period = frame_period
        self.chunk_chars = chunk_chars
        self.max_text_chars = max_text_chars
        self.voices = BaseVoices(threads)
        self._prompt_cache: dict[str, tuple] = {}
        self._base_cache: dict[tuple, tuple] = {}
        # prompt analyses persist across runs and workers (a prompt is analysed once, not per actor)
        self.cache_dir = Path(cache_dir) if cache_dir else None

    @staticmethod
    def versions() -> dict:
        return {"engine": ENGINE_VERSION, "piper-tts": version("piper-tts"),
                "pyworld": version("pyworld"), "espeak-ng": espeak_version()}

    def base(self, text: str, language: str, base_voice: str | None) -> np.ndarray:
        if language not in BaseVoices.DEFAULTS:
            raise ValueError(f"unknown language {language!r}; known: {sorted(BaseVoices.DEFAULTS)}")
        if len(text) > self.max_text_chars:
            raise UnspeakableText(f"text of {len(text)} characters is over the limit of {self.max_text_chars}: "
                                  f"{text[:40]!r}...")
        name = base_voice or BaseVoices.DEFAULTS[language]
        voice = self.voices.get(name, language)
        pause = np.zeros(int(self.sr * CHUNK_PAUSE_S), np.float32)
        parts = [voice.synthesize(c, self.sr) for c in text_chunks(text, self.chunk_chars) or [text]]
        x = np.concatenate([p for part in parts for p in (pause, part)][1:])
        check_waveform(x, self.sr, f"{name} rendering of {text[:30]!r}")
        return _set_level(x, self.sr, BASE_LEVEL_DB)

    def base_features(self, text: str, language: str, base_voice: str | None):
        """Base rendering and its WORLD analysis; the last few are kept, since rendering a prompt
        and then analysing it for cloning needs the same base twice."""
        k = (text, language, base_voice)
        if k in self._base_cache:
            return self._base_cache[k]
        x = self.base(text, language, base_voice)
        entry = (x, analyze(x, self.sr, self.frame_period))
        # WORLD features take ~1.6 MB a second: the cache is bounded in seconds as well as in entries
        self._base_cache[k] = entry
        while len(self._base_cache) > 4 or (len(self._base_cache) > 1 and self._cached_s() > BASE_CACHE_S):
            self._base_cache.pop(next(iter(self._base_cache)))
        return entry

    def _cached_s(self) -> float:
        return sum(len(x) for x, _ in self._base_cache.values()) / self.sr

    def render(self, text: str, language: str, voicing: Voicing, base_voice: str | None = None,
               seed: int = 0) -> np.ndarray:
        """Speak `text` with an explicit voicing (voice bank, bootstrap scorer labels)."""
        _, feat = self.base_features(text, language, base_voice)
        y = synthesize(apply(feat, voicing.replace(gain_db=0.0), seed))
        return _ceiling(_set_level(y, self.sr, BASE_LEVEL_DB + voicing.gain_db))

    def prompt_voicing(self, prompt: np.ndarray, prompt_text: str, language: str,
                       base_voice: str | None = None) -> tuple[Voicing, float]:
        """Estimate a prompt clip's voicing and speech level.

        The base voice speaks the prompt's own text, so the comparison is text-matched: F0 range,
        contour, rate and spectrum differences are the prompt's voice, not the words. The base is
        compared after an identity WORLD pass, so that what WORLD itself adds (aperiodicity, F0
        wobble) is not taken for breathiness or tremor. Cached per prompt.
        """
        check_waveform(prompt, self.sr, "prompt audio")
        ident = f"{ENGINE_VERSION}/{self.sr}/{self.frame_period}/{language}/{base_voice}/{prompt_text}"
        h = hashlib.sha1(prompt.tobytes() + ident.encode()).hexdigest()
        if h in self._prompt_cache:
            return self._prompt_cache[h]
        disk = self.cache_dir / f"{h}.json" if self.cache_dir else None
        if disk is not None and disk.is_file():
            d = json.loads(disk.read_text())
            result = (Voicing.from_dict(d["voicing"]), d["gain_db"])
        else:
            target = profile(prompt, self.sr, prompt_text, language)
            x_id = synthesize(self.base_features(prompt_text, language, base_voice)[1])
            v = clone_voicing(target, profile(x_id, self.sr, prompt_text, language), self.sr)
            result = (v, target["energy_db"] - BASE_LEVEL_DB)
            if disk is not None:
                disk.parent.mkdir(parents=True, exist_ok=True)
                tmp = disk.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"voicing": v.to_dict(), "gain_db": result[1]}))
                os.replace(tmp, disk)
        if len(self._prompt_cache) > 512:
            self._prompt_cache.clear()
        self._prompt_cache[h] = result
        return result

    def clone(self, prompt: np.ndarray, prompt_text: str, text: str, language: str,
              instruction: str | None = None, base_voice: str | None = None, seed: int = 0) -> tuple[np.ndarray, Voicing]:
        """Zero-shot clone: the prompt's estimated voicing applied to the base voice speaking `text`.

        `instruction` is accepted for interface parity; this engine takes the attribute from the
        prompt clip, as the seed recipe does.
        """
        v, gain = self.prompt_voicing(prompt, prompt_text, language, base_voice)
        v = v.replace(gain_db=gain)
        return self.render(text, language, v, base_voice, seed), v
