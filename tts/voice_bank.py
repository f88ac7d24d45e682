"""Voice bank: per speaker, one ~10 s prompt clip with its text for neutral and for each tag.

Two sources share one interface:
- GeneratedVoiceBank renders speakers with the embedded engine once and caches the clips;
- FolderVoiceBank reads a user's recordings laid out as
      ROOT/<speaker_id>/speaker.json   {"language": "en", "gender": "female", "base_voice": "piper:joe"}
      ROOT/<speaker_id>/<tag>.wav|.flac  and  ROOT/<speaker_id>/<tag>.txt (the clip's transcript)
  with <tag> = neutral or any emotion/style tag ("base_voice" is optional).
  A speaker folder whose speaker.json is missing or unusable is skipped with a warning; a clip
  whose transcript is not UTF-8 or which is longer than voice_bank.max_prompt_s is a reject of
  the samples that need it (`problem`).
"""
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import audio
from core.tables import read_speaker_json
from core.text_hygiene import read_transcript, script_problem
from tts import texts
from tts.base_voices import ENGLISH_ONLY, base_voice_sex, check_voice_name
from tts.engine import ENGINE_VERSION
from tts.presets import PRESETS, preset
from tts.voicing import Voicing

log = logging.getLogger("lms")


@dataclass(frozen=True)
class Speaker:
    id: str
    language: str
    gender: str
    base_voice: str | None = None
    timbre: Voicing = field(default_factory=Voicing)


# Four English and four Mandarin speakers (two female, two male each), plus two Cantonese.
# Timbre = F0 level, vocal-tract length (formant warp), spectral tilt and breathiness.
GENERATED_SPEAKERS = (
    Speaker("en_f1", "en", "female", "piper:joe", Voicing(f0_shift_st=9, warp=1.17, tilt_db_oct=-1, breath=0.1)),
    Speaker("en_f2", "en", "female", "piper:joe", Voicing(f0_shift_st=7, warp=1.12, f0_range=1.2, tilt_db_oct=1)),
    Speaker("en_m1", "en", "male", "piper:joe", Voicing()),
    Speaker("en_m2", "en", "male", "piper:joe", Voicing(f0_shift_st=-3, warp=0.91, tilt_db_oct=-2, tempo=0.95)),
    Speaker("zh_f1", "zh", "female", "espeak:cmn-latn-pinyin+f2", Voicing(f0_shift_st=3, warp=1.1, breath=0.1)),
    Speaker("zh_f2", "zh", "female", "espeak:cmn-latn-pinyin+f4", Voicing(f0_shift_st=5, warp=1.16, tilt_db_oct=-1)),
    Speaker("zh_m1", "zh", "male", "espeak:cmn-latn-pinyin+m1", Voicing(f0_shift_st=-1, warp=0.97)),
    Speaker("zh_m2", "zh", "male", "espeak:cmn-latn-pinyin+m3", Voicing(f0_shift_st=-4, warp=0.92, tilt_db_oct=-2)),
    Speaker("yue_f1", "yue", "female", "espeak:yue+f2", Voicing(f0_shift_st=4, warp=1.12)),
    Speaker("yue_m1", "yue", "male", "espeak:yue+m2", Voicing(f0_shift_st=-2, warp=0.95)),
)

# Base voices a drawn speaker may start from, per language and gender, unless voice_bank.base_voices
# names others. English has one offline neural voice (Piper); Mandarin and Cantonese draw among
# espeak-ng's variants of that gender.
_DRAW_BASES = {
    ("en", "female"): ["piper:joe"], ("en", "male"): ["piper:joe"],
    ("zh", "female"): [f"espeak:cmn-latn-pinyin+f{i}" for i in (1, 2, 3, 4, 5)],
    ("zh", "male"): [f"espeak:cmn-latn-pinyin+m{i}" for i in (1, 2, 3, 4, 5, 6, 7)],
    ("yue", "female"): [f"espeak:yue+f{i}" for i in (1, 2, 3, 4, 5)],
    ("yue", "male"): [f"espeak:yue+m{i}" for i in (1, 2, 3, 4, 5, 6, 7)],
}
# Timbre ranges by gender, spanning those of the written speakers a little beyond. Piper's voice is
# male, so its female draws get a higher F0 and a shorter vocal tract; espeak's female variants
# are female already and get milder shifts.
_DRAW_RANGES = {
    "female": {"f0_shift_st": (2.0, 10.0), "warp": (1.04, 1.2)},
    "male": {"f0_shift_st": (-5.0, 1.5), "warp": (0.88, 1.02)},
}


DEFAULT_POOL = "default"
_POOL_NAME = re.compile(r"[a-z][a-z0-9]{0,31}")


def check_pool(pool: str) -> str:
    if not isinstance(pool, str) or not _POOL_NAME.fullmatch(pool):
        raise ValueError(f"voice_bank.pool={pool!r}: must be 'default' or a lowercase name like judge or benchmark")
    return pool


def check_base_voices(base_voices: dict | None) -> dict | None:
    """voice_bank.base_voices: {language: [base voice, ...]}, each an installed voice that speaks the language."""
    if base_voices is None:
        return None
    if not isinstance(base_voices, dict):
        raise ValueError(f"voice_bank.base_voices={base_voices!r}: must be null or {{language: [base voice, ...]}}")
    out = {}
    for language, names in base_voices.items():
        if isinstance(names, str) or not names:
            raise ValueError(f"voice_bank.base_voices.{language}: must be a non-empty list of base voices")
        for name in names:
            check_voice_name(name)
            if name in ENGLISH_ONLY and language != "en":
                raise ValueError(f"voice_bank.base_voices.{language}: {name!r} speaks English only")
        out[language] = list(names)
    return out


def _draw_bases(language: str, gender: str, base_voices: dict | None) -> list[str]:
    """Where base_voices names a language's voices, a speaker draws among those of its own sex (all of
    them when none is), so that a female speaker starts from a female voice where there is one."""
    if not base_voices or language not in base_voices:
        return _DRAW_BASES[language, gender]
    names = base_voices[language]
    return [v for v in names if base_voice_sex(v) == gender] or names


def drawn_speaker(language: str, gender: str, n: int, pool: str = DEFAULT_POOL,
                  base_voices: dict | None = None) -> Speaker:
    """The n-th drawn speaker of a language and gender (n counts from 1 past the written ones):
    a base voice and a timbre that are a pure function of (pool, language, gender, n, base voices), so
    a bank of any size holds the same speakers as a smaller one plus new ones. A pool other than the
    default salts the draw and prefixes the id, so its voices are its own (the judge's and the
    benchmark's voices are never the default pool's training voices)."""
    salt = "" if pool == DEFAULT_POOL else f"{check_pool(pool)}/"   # the default pool's draws stay as they were
    rng = np.random.default_rng(int(hashlib.sha1(f"{salt}{language}/{gender}/{n}".encode()).hexdigest()[:12], 16))
    bases = _draw_bases(language, gender, base_voices)
    lo_f0, hi_f0 = _DRAW_RANGES[gender]["f0_shift_st"]
    lo_w, hi_w = _DRAW_RANGES[gender]["warp"]
    f0_shift = float(rng.uniform(lo_f0, hi_f0))
    timbre = dict(warp=round(float(rng.uniform(lo_w, hi_w)), 3),
                  f0_range=round(float(rng.uniform(0.85, 1.2)), 3),
                  tilt_db_oct=round(float(rng.uniform(-2.0, 1.5)), 2),
                  breath=round(float(rng.uniform(0.0, 0.15)), 3),
                  tempo=round(float(rng.uniform(0.93, 1.07)), 3))
    base = bases[int(rng.integers(len(bases)))]
    # a female voice drawn from a female base voice is female already and gets a milder shift
    shift_scale = 0.5 if gender == "female" and base_voice_sex(base) == "female" else 1.0
    if base_voices and language in base_voices and shift_scale < 1:
        # and, among configured voices, a warp within 4% of 1: the female range shortens a female
        # tract to a child's and pocketsphinx loses the words (flite:slt at 1.14: WER 0.74). The
        # default draws keep their warps, so that their bank ids stay. Four places: in so narrow a
        # range three would give two speakers of one base voice the same warp.
        timbre["warp"] = round(0.96 + 0.08 * (timbre["warp"] - lo_w) / (hi_w - lo_w), 4)
    tag = "f" if gender == "female" else "m"
    sid = f"{language}_{tag}d{n}" if pool == DEFAULT_POOL else f"{pool}_{language}_{tag}{n}"
    return Speaker(sid, language, gender, base, Voicing(f0_shift_st=round(f0_shift * shift_scale, 2), **timbre))


def generated_speakers(languages, per_language: int | None = None, pool: str = DEFAULT_POOL,
                       base_voices: dict | None = None) -> list[Speaker]:
    """The default pool: the written speakers of these languages, plus drawn ones (alternating
    female and male) up to per_language speakers per language; None keeps the written ones only.
    Another pool: drawn speakers of that pool only (None: 4 per language, like the written ones).
    base_voices: per language, the base voices drawn speakers start from (None: _DRAW_BASES)."""
    base_voices = check_base_voices(base_voices)
    if check_pool(pool) != DEFAULT_POOL and per_language is None:
        per_language = 4
    out = []
    for lang in languages:
        own = [s for s in GENERATED_SPEAKERS if s.language == lang] if pool == DEFAULT_POOL else []
        if per_language is not None:
            if per_language < 1:
                raise ValueError(f"voice_bank.per_language={per_language}: must be >= 1 or null")
            own = own[:per_language]
            n = {"female": 0, "male": 0}
            while len(own) < per_language:
                gender = ("female", "male")[len(own) % 2]
                n[gender] += 1
                own.append(drawn_speaker(lang, gender, n[gender], pool, base_voices))
        out += own
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    # a temporary name of its own per process: two runs sharing a cache may render the same clip at once
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class GeneratedVoiceBank:
    def __init__(self, cache_dir: str, sample_rate: int, languages, intensity: tuple[float, float] = (0.9, 1.2),
                 seed: int = 0, per_language: int | None = None, pool: str = DEFAULT_POOL,
                 base_voices: dict | None = None):
        self.sr = sample_rate
        self.intensity = tuple(intensity)
        self.seed = seed
        self.pool = pool
        self.speakers = generated_speakers(languages, per_language, pool, base_voices)
        ident = {"engine": ENGINE_VERSION, "sr": sample_rate, "intensity": self.intensity, "seed": seed,
                 "speakers": [(s.id, s.base_voice, s.timbre.to_dict()) for s in self.speakers],
                 "presets": {k: v[0].to_dict() for k, v in PRESETS.items()}}
        if pool != DEFAULT_POOL:  # absent for the default pool: its bank ids (and caches) stay as they were
            ident["pool"] = pool
        ident = json.dumps(ident, sort_keys=True)
        self.id = "gen-" + hashlib.sha1(ident.encode()).hexdigest()[:10]
        self.root = Path(cache_dir) / self.id

    def _intensity(self, speaker_id: str, tag: str) -> float:
        if tag == "neutral":
            return 0.0
        h = int(hashlib.sha1(f"{self.seed}/{speaker_id}/{tag}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        lo, hi = self.intensity
        return round(lo + (hi - lo) * h, 3)

    def job(self, speaker: Speaker, tag: str) -> dict:
        return {"speaker": speaker.id, "tag": tag, "language": speaker.language, "base_voice": speaker.base_voice,
                "timbre": speaker.timbre.to_dict(), "intensity": self._intensity(speaker.id, tag),
                "text": texts.prompt_text(speaker.language, tag),
                "path": str(self.root / speaker.id / f"{tag}.flac")}

    def missing(self, tags) -> list[dict]:
        tags = ["neutral", *[t for t in tags if t != "neutral"]]
        return [self.job(s, t) for s in self.speakers for t in tags
                if not (self.root / s.id / f"{t}.flac").is_file()]

    @staticmethod
    def render(engine, job: dict) -> None:
        """Render one prompt clip and publish it atomically (a crash leaves no half clip)."""
        v = Voicing.from_dict(job["timbre"]) + preset(job["tag"], job["intensity"])
        x = engine.render(job["text"], job["language"], v, job["base_voice"], seed=0)
        path = Path(job["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: job[k] for k in ("speaker", "tag", "language", "base_voice", "intensity", "text")}
        meta["voicing"] = v.to_dict()
        _atomic_write(path.with_suffix(".json"), json.dumps(meta, ensure_ascii=False).encode())
        _atomic_write(path, audio.encode_flac(x, engine.sr))

    def has(self, speaker_id: str, tag: str) -> bool:
        return (self.root / speaker_id / f"{tag}.flac").is_file()

    def problem(self, speaker_id: str, tag: str) -> tuple[str, str] | None:
        return None  # rendered clips are checked when they are made

    def clip(self, speaker_id: str, tag: str) -> dict:
        path = self.root / speaker_id / f"{tag}.flac"
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        return {"path": str(path), "text": meta["text"], "intensity": meta["intensity"]}


class FolderVoiceBank:
    def __init__(self, root: str, languages, sample_rate: int, max_prompt_s: float = 60.0):
        self.root = Path(root)
        self.sr = sample_rate
        self.max_prompt_s = max_prompt_s
        if not self.root.is_dir():
            raise ValueError(f"voice_bank.root={root}: not a directory")
        self.id = "folder-" + hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:10]
        self.speakers, skipped = [], []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            try:
                info = read_speaker_json(d / "speaker.json")
            except ValueError as e:  # one bad folder is not the end of the bank
                skipped.append(str(e))
                continue
            if info["language"] in languages:
                self.speakers.append(Speaker(d.name, info["language"], str(info.get("gender", "unknown")),
                                             info.get("base_voice")))
        self._language = {s.id: s.language for s in self.speakers}
        self._problems = {}
        if skipped:
            log.warning("voice_bank.root=%s: %d speaker folder(s) skipped: %s", root, len(skipped),
                        "; ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else ""))
        if not self.speakers:
            raise ValueError(f"voice_bank.root={root}: no speakers for languages {list(languages)}"
                             + (f" ({len(skipped)} skipped, first: {skipped[0]})" if skipped else ""))

    def missing(self, tags) -> list[dict]:
        return []  # recordings are what they are; absent tags are skipped per speaker

    def _audio_path(self, speaker_id: str, tag: str) -> Path | None:
        for ext in (".flac", ".wav", ".ogg", ".mp3"):
            p = self.root / speaker_id / f"{tag}{ext}"
            if p.is_file():
                return p
        return None

    def has(self, speaker_id: str, tag: str) -> bool:
        p = self._audio_path(speaker_id, tag)
        return p is not None and p.with_suffix(".txt").is_file()

    def problem(self, speaker_id: str, tag: str) -> tuple[str, str] | None:
        """(reason, detail) when the clip is present but unusable, decided before any work (once per
        clip: a plan asks for every text a speaker says)."""
        if (speaker_id, tag) not in self._problems:
            self._problems[speaker_id, tag] = self._find_problem(speaker_id, tag)
        return self._problems[speaker_id, tag]

    def _find_problem(self, speaker_id: str, tag: str) -> tuple[str, str] | None:
        p = self._audio_path(speaker_id, tag)
        try:
            text = read_transcript(p.with_suffix(".txt"))
        except ValueError as e:
            return "bad_transcript", str(e)
        if bad_script := script_problem(text, self._language[speaker_id]):
            return "wrong_script", f"{p.with_suffix('.txt')}: {bad_script}"
        try:
            audio.check_duration(p, self.max_prompt_s, "voice_bank.max_prompt_s")
        except audio.TooLong as e:
            return "too_long", str(e)
        except audio.BadAudio:
            pass  # a corrupt or empty clip is rejected with its error where it is decoded
        return None

    def clip(self, speaker_id: str, tag: str) -> dict:
        p = self._audio_path(speaker_id, tag)
        return {"path": str(p), "text": read_transcript(p.with_suffix(".txt")), "intensity": None}


def load_prompt(path: str, sr: int) -> np.ndarray:
    return audio.load(path, sr)


def make_voice_bank(cfg, languages, sample_rate: int, seed: int):
    if cfg.kind == "generated":
        base_voices = cfg.get("base_voices")
        if base_voices is not None and hasattr(base_voices, "items"):
            base_voices = {str(k): list(v) for k, v in base_voices.items()}
        return GeneratedVoiceBank(cfg.cache_dir, sample_rate, languages, tuple(cfg.intensity), seed,
                                  cfg.get("per_language"), cfg.get("pool", DEFAULT_POOL), base_voices)
    if cfg.kind == "folder":
        return FolderVoiceBank(cfg.root, languages, sample_rate, cfg.max_prompt_s)
    raise ValueError(f"unknown voice_bank.kind {cfg.kind!r}; use generated or folder")
