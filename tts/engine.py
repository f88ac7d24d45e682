"""The embedded zero-shot cloning engine: base voice -> WORLD -> prompt's timbre and prosody."""
import hashlib
import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyworld

from core.audio import check_waveform, resample
from tts.base_voices import BaseVoices, UnspeakableText, candidate_voices, espeak_version
from tts.profile import F0_SHIFT_CLIP_ST, WARP_GRID, WIDE_WARP_GRID, clone_voicing, profile, speech_mask
from tts.voicing import Voicing, VoicingRejected
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
# The voicing estimate checks itself against these; a failed check is re-estimated, then rejected.
# The F0 check judges the F0 the clone will speak at, not the shift that gets it there: a shift is only
# as large as the distance from the base voice, and a legitimate one can be large (the factory's own
# child-style prompt on its male base piper:joe is +17 to +18 st, ~470 Hz). Speaking F0 medians reach
# ~450-500 Hz (a small child); a median above this, in the prompt or in the base, is an F0 tracking error
# (dio doubling) or no human voice. No lower bound: the factory's own low voices reach dio's 55 Hz floor
# (zh_m1 "depressed" tracks at 59 Hz), and below the floor nothing is measured.
MAX_F0_HZ = 600.0
# The checks' rule, part of the estimate cache's key: an estimate cached under another rule (unchecked,
# or rejected by the old fixed +-15 st shift bound) is made again, not reused.
ESTIMATE_CHECKS = "checks-f0max600"
# Base and prompt speak the same text: a base with a voiced-frame share this far below the prompt's has
# lost voiced speech in its F0 track, so its F0 statistics describe a fraction of the text. The other way
# round is the prompt's own voice (breathy, whispered: estimated as breath), and harvest would find F0
# in its noise, so it is no failure.
MAX_VOICED_GAP = 0.3
# A warp within this of a grid edge is where the search stopped, not an optimum it found.
WARP_EDGE_TOL = 0.015
EMBED_SR = 16000  # resemblyzer's rate
# With no base voice given, the voices nearest the prompt in pitch that are estimated and compared: each
# costs a rendering, a WORLD analysis and an embedding, and a voice far off in pitch fails the F0 check
# or needs the larger transform.
MAX_CANDIDATES = 4
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
        self._voice_encoder = None
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
        """A prompt clip's voicing and speech level against `base_voice` (the language's default when
        None): for callers that render with that base voice themselves. Raises VoicingRejected."""
        est = self.estimate(prompt, prompt_text, language, base_voice or BaseVoices.DEFAULTS.get(language))
        return est["voicing"], est["gain_db"]

    def estimate(self, prompt: np.ndarray, prompt_text: str, language: str, base_voice: str | None = None) -> dict:
        """Estimate a prompt clip's voicing and speech level: {voicing, gain_db, base_voice, info}.

        The base voice speaks the prompt's own text, so the comparison is text-matched: F0 range,
        contour, rate and spectrum differences are the prompt's voice, not the words. The base is
        compared after an identity WORLD pass, so that what WORLD itself adds (aperiodicity, F0
        wobble) is not taken for breathiness or tremor.

        Each estimate is checked (see _check): a warp on the grid's edge is searched again on a wider
        grid, an F0 above any voice, a shift beyond the renderer's or a base that lost voiced frames is
        measured again with harvest instead of dio. With no `base_voice`, the installed candidate voices of the language nearest the
        prompt in pitch (MAX_CANDIDATES) are estimated so, and of those that pass, the one whose rendering
        of the prompt text (with its voicing) is closest to the prompt by speaker embedding is chosen. If
        none passes, the prompt is rejected (VoicingRejected, with every try's reason). Cached per prompt.
        """
        check_waveform(prompt, self.sr, "prompt audio")
        ident = f"{ENGINE_VERSION}/{ESTIMATE_CHECKS}/{self.sr}/{self.frame_period}/{language}/{base_voice}/{prompt_text}"
        if base_voice is None:
            ident += "/closest:" + ",".join(candidate_voices(language))
        h = hashlib.sha1(prompt.tobytes() + ident.encode()).hexdigest()
        if h in self._prompt_cache:
            return self._prompt_cache[h]
        disk = self.cache_dir / f"{h}.json" if self.cache_dir else None
        if disk is not None and disk.is_file():
            d = json.loads(disk.read_text())
            if "rejected" in d:
                raise VoicingRejected(prompt_text[:40], d["rejected"])
            result = {"voicing": Voicing.from_dict(d["voicing"]), "gain_db": d["gain_db"],
                      "base_voice": d.get("base_voice", base_voice), "info": d.get("info", {})}
        else:
            try:
                result = self._estimate(prompt, prompt_text, language, base_voice)
            except VoicingRejected as e:
                if disk is not None:
                    _write_json(disk, {"rejected": e.reasons})
                raise
            if disk is not None:
                _write_json(disk, {"voicing": result["voicing"].to_dict(), "gain_db": result["gain_db"],
                                   "base_voice": result["base_voice"], "info": result["info"]})
        if len(self._prompt_cache) > 512:
            self._prompt_cache.clear()
        self._prompt_cache[h] = result
        return result

    def _estimate(self, prompt: np.ndarray, prompt_text: str, language: str, base_voice: str | None) -> dict:
        info: dict = {"tries": []}
        target = {"dio": profile(prompt, self.sr, prompt_text, language)}
        gain = target["dio"]["energy_db"] - BASE_LEVEL_DB
        names = candidate_voices(language) if base_voice is None else [base_voice]
        if not names:
            raise ValueError(f"no installed base voice for language {language!r}")
        if base_voice is None and np.isfinite(target["dio"]["f0_median_st"]):
            names = self._nearest_in_pitch(names, target["dio"]["f0_median_st"], prompt_text, language)
            info["candidates"] = names
        passed, sims = [], {}
        for name in names:
            try:
                v, failed = self._voicing_on(name, prompt, prompt_text, language, target, info["tries"])
            except UnspeakableText as e:
                info["tries"].append({"base_voice": name, "failed": [f"cannot speak the prompt text: {e}"]})
                continue
            if not failed:
                passed.append((name, v))
                if base_voice is None:  # now, while this base's analysis is cached
                    sims[name] = self.similarity(prompt, prompt_text, language, name, v.replace(gain_db=gain))
        if not passed:
            raise VoicingRejected(prompt_text[:40], [
                f"{t['base_voice']}" + (f" ({t['f0']}, warp grid {t['grid'][0]:.2f}-{t['grid'][1]:.2f})" if "f0" in t
                                        else "") + ": " + ", ".join(t["failed"]) for t in info["tries"]])
        if base_voice is not None:
            info["choice"] = "given by the caller"
            name, v = passed[0]
        else:
            name, v = max(passed, key=lambda p: sims[p[0]])
            info["choice"] = ("closest by speaker embedding: each candidate base voice that passed the checks "
                              "spoke the prompt text with its voicing, compared with the prompt")
            info["similarity"] = {n: round(sims[n], 4) for n in sorted(sims, key=lambda n: -sims[n])}
        return {"voicing": v, "gain_db": gain, "base_voice": name, "info": info}

    def _voicing_on(self, name, prompt, prompt_text, language, target, tries) -> tuple[Voicing, list[str]]:
        """The voicing of the prompt on base voice `name`, re-estimated once per kind of failed check;
        every try goes into `tries`. Returns the last voicing and the checks it failed."""
        base_x = synthesize(self.base_features(prompt_text, language, name)[1])
        base = {"dio": profile(base_x, self.sr, prompt_text, language)}
        method, grid = "dio", WARP_GRID
        while True:
            v = clone_voicing(target[method], base[method], self.sr, grid)
            failed = _check(v, target[method], base[method], grid)
            tries.append({"base_voice": name, "f0": method, "grid": list(grid), "warp": round(v.warp, 3),
                          "f0_shift_st": round(v.f0_shift_st, 2), "failed": failed})
            if any(f.startswith("warp") for f in failed) and grid == WARP_GRID:
                grid = WIDE_WARP_GRID
            elif any(f.startswith(("f0", "voiced")) for f in failed) and method == "dio":
                method = "harvest"
                for d, x in ((target, prompt), (base, base_x)):
                    if method not in d:
                        d[method] = profile(x, self.sr, prompt_text, language,
                                            analyze(x, self.sr, self.frame_period, method))
            else:
                return v, failed

    def _nearest_in_pitch(self, names: list[str], f0_st: float, text: str, language: str) -> list[str]:
        """The MAX_CANDIDATES voices whose F0 speaking `text` is nearest `f0_st` (a quick dio pass on the
        plain rendering, before the full estimate)."""
        def distance(name):
            try:
                x = self.base(text, language, name).astype(np.float64)
            except UnspeakableText:
                return np.inf
            f0, _ = pyworld.dio(x, self.sr, frame_period=self.frame_period, f0_floor=55.0, f0_ceil=700.0)
            return abs(12 * np.log2(np.median(f0[f0 > 0])) - f0_st) if (f0 > 0).any() else np.inf
        d = {name: distance(name) for name in names}
        return sorted(names, key=d.get)[:MAX_CANDIDATES]

    def similarity(self, prompt: np.ndarray, prompt_text: str, language: str, base_voice: str,
                   voicing: Voicing) -> float:
        """Cosine similarity of the speaker embedding (resemblyzer) of the prompt to that of `base_voice`
        speaking the prompt text with `voicing`."""
        from resemblyzer import preprocess_wav
        enc = self._encoder()
        a, b = (enc.embed_utterance(preprocess_wav(resample(x, self.sr, EMBED_SR), EMBED_SR))
                for x in (prompt, self.render(prompt_text, language, voicing, base_voice)))
        return float(np.dot(a, b))

    def _encoder(self):
        if self._voice_encoder is None:
            from resemblyzer import VoiceEncoder
            self._voice_encoder = VoiceEncoder("cpu", verbose=False)
        return self._voice_encoder

    def clone(self, prompt: np.ndarray, prompt_text: str, text: str, language: str,
              instruction: str | None = None, base_voice: str | None = None,
              seed: int = 0) -> tuple[np.ndarray, Voicing, dict]:
        """Zero-shot clone: the prompt's estimated voicing applied to the base voice speaking `text`.
        Returns the audio, the voicing and how it was estimated (the base voice, why it was chosen, every
        try and the checks it failed). Raises VoicingRejected when no estimate passes its checks.

        `instruction` is accepted for interface parity; this engine takes the attribute from the
        prompt clip, as the seed recipe does.
        """
        est = self.estimate(prompt, prompt_text, language, base_voice)
        v = est["voicing"].replace(gain_db=est["gain_db"])
        y = self.render(text, language, v, est["base_voice"], seed)
        return y, v, {"base_voice": est["base_voice"], **est["info"]}


def _check(v: Voicing, target: dict, base: dict, grid: tuple[float, float]) -> list[str]:
    """The checks a voicing estimate failed, each with its measured value."""
    failed = []
    if min(v.warp - grid[0], grid[1] - v.warp) < WARP_EDGE_TOL:
        failed.append(f"warp {v.warp:.2f} at the edge of the grid {grid[0]:.2f}-{grid[1]:.2f}")
    if not v.whisper and np.isfinite(target["f0_median_st"]) and np.isfinite(base["f0_median_st"]):
        bad = [f"f0 median {2 ** (d['f0_median_st'] / 12):.0f} Hz in the {who} above the plausible {MAX_F0_HZ:.0f}"
               for who, d in (("prompt", target), ("base", base)) if 2 ** (d["f0_median_st"] / 12) > MAX_F0_HZ]
        shift = target["f0_median_st"] - base["f0_median_st"]
        if not bad and abs(shift) > F0_SHIFT_CLIP_ST:
            # both F0s plausible, but too far apart: clone_voicing clips the shift, and the clone would
            # miss the prompt's pitch by the excess
            bad.append(f"f0 shift {shift:+.1f} st from this base beyond the renderer's +-{F0_SHIFT_CLIP_ST:.0f}")
        failed += bad
    if not v.whisper and target["voiced_ratio"] - base["voiced_ratio"] > MAX_VOICED_GAP:
        failed.append(f"voiced frames {target['voiced_ratio']:.2f} in the prompt, {base['voiced_ratio']:.2f} "
                      f"in the base")
    return failed


def _write_json(path: Path, d: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(d))
    os.replace(tmp, path)
