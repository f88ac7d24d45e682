"""The audio editor users call: zero-shot clone and instruction edits, as upstream Step-Audio-EditX.

    ed = Editor.load("runs/llm/final")              # shipped codec artifacts by default
    wav = ed.clone(prompt_wav, "prompt words", "new words to say")
    outs = ed.edit(wav, "the words in it", "emotion", "happy", n_iter=2)   # one array per iteration

Pipeline per request: 16 kHz audio -> codec ids (interleaved) -> chat prompt -> our decode loop
(generate.py) -> codec ids -> decoder (voice from a reference: the source clip for an edit, the
prompt clip for a clone) -> 16 kHz audio.

Iterative editing (upstream's n_edit_iter): iteration k feeds iteration k-1's output back as the
source; prompt_fixed=True feeds the first source every time (the ablation). The decoder reference
stays the original source either way, so the voice cannot drift across iterations.

An edit's audio longer than `piece_s[edit_type]` is cut at pauses (Silero VAD; the quietest 10 ms
near the limit when there is no pause), each piece edited with its share of the text (words in
proportion to the piece's duration), and the outputs joined with a short cross-fade. Upstream cuts
at 30 s; our LLM learned from the factory's clips of a few seconds and answers a longer source with
a fraction of it, so each edit type's piece length comes from the artifact's own training data
(`piece_seconds`): a trim's sources (speech with pauses put in) are twice an emotion's. A
paralinguistic edit is not split below `max_chunk_s` (30 s): its tagged text cannot be shared out.

Version check: the LLM dir records the codec tokenizer it was trained on, in `codec.json`
({"tokenizer_version": ...}, written by `write_codec_meta`) or `training.json`'s
"tokenizer_version"; tokenizer, decoder and LLM must agree or loading raises ArtifactMismatch. Where
it also records the tokenizer's weights digest (LLMs trained on token releases made since 2026-12-07),
the tokenizer found must be those weights, not merely that name.
"""
import inspect
import json
import math
import numbers
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from core import audio, tags
from core.nvspeech import tags_in
from editor.artifacts import SHIPPED, SHIPPED_DECODER as DEFAULT_DECODER, SHIPPED_TOKENIZER as DEFAULT_TOKENIZER, codec_dirs, weights_digest
from editor.llm import chat, model as llm_model
from editor.llm.continuous import ContinuousDecoder, Request
from editor.llm.generate import Layout, SampleConfig, generate, generate_stream
from editor.llm.streaming import AudioStream, stream
from editor.llm.vocab import AUDIO_SIZE

SR = 16000
EDIT_TYPES = ("emotion", "style", "speed", "paralinguistic", "denoise", "vad")
GUIDED = EDIT_TYPES + ("clone",)     # what Editor.guidance may name
SAME_WORDS = ("emotion", "style", "paralinguistic", "denoise")   # edits whose answer is not shorter by design
KEPT_WHEN_SILENT = ("emotion", "style")     # a piece of a long edit without speech passes through these unedited
MAX_GUIDANCE = 10.0                  # a weight bound: far past any useful one (1.5 ships), short of overflow
EDIT_INFO = {"emotion": tags.EMOTIONS, "style": tags.STYLES, "speed": tags.SPEED_TAGS}
MIN_S = 0.3
# the task whose training sources set an edit type's piece length
EDIT_TASK = {"emotion": "emotion_edit", "style": "style_edit", "speed": "speed_edit", "denoise": "denoise",
             "vad": "silence_trim", "paralinguistic": "paralinguistic_edit"}
# for an artifact that does not record its sources' lengths (editor-llm-v3, before v5): the 90th percentiles of
# the v3 data recipe's train split (bench/editor_llm_data.sh; measured on its v4 rerun). editor-llm-v3
# answers a 3 s emotion source with 0.8-1.2 of its length, 6 s with 0.1-0.7 (docs/editor_llm_inference.md)
DEFAULT_PIECE_S = {"emotion": 4.3, "style": 4.2, "speed": 5.4, "denoise": 5.4, "vad": 8.6, "paralinguistic": 4.3}
MIN_PIECE_S = 2.0
MAX_TEXT = 10000         # characters: a max_edit_s (600 s) edit's transcript at about 15 per second
MAX_ITER = 10            # iterations of one edit: each feeds the last answer back (the seed shows gains up to 3)
SR_RANGE = (8000, 192000)
MAX_CHAR_S = 0.5         # seconds one character of a clone's text may take (a Mandarin syllable said slowly):
                         # a voice prompt whose text is far shorter than its audio says nothing of the rate
# what split_text shares out: a Han character, or a run of other word characters (a word, a number)
_W = r"(?:(?![\u3400-\u9fff\uf900-\ufaff])\w)+"
_UNIT = re.compile(rf"[\u3400-\u9fff\uf900-\ufaff]|{_W}(?:['.\-]{_W})*")   # don't, 3.5, well-known: one unit


class ArtifactMismatch(ValueError):
    """LLM, codec tokenizer and decoder were not made for each other."""


def _read_json(f: Path) -> dict:
    """An artifact's JSON file as a dict, or a ValueError naming the file."""
    try:
        out = json.loads(Path(f).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(out, dict):
        raise ValueError(f"{f}: expected a JSON object, got {type(out).__name__}")
    return out


def write_codec_meta(llm_dir, tokenizer_version: str, tokenizer_digest: str | None = None) -> Path:
    """Record the codec tokenizer an LLM was trained on (the preference trainers call this; the SFT
    trainer records it in training.json): its version and, where known, its weights' digest."""
    p = Path(llm_dir) / "codec.json"
    meta = {"tokenizer_version": tokenizer_version, **({"tokenizer_digest": tokenizer_digest} if tokenizer_digest else {})}
    p.write_text(json.dumps(meta) + "\n")
    return p


def _codec_field(llm_dir, field: str) -> str | None:
    d = Path(llm_dir)
    for name in ("codec.json", "training.json"):
        if (d / name).is_file():
            v = _read_json(d / name).get(field)
            if v:
                return v
    return None


def codec_version_of(llm_dir) -> str | None:
    return _codec_field(llm_dir, "tokenizer_version")


def codec_digest_of(llm_dir) -> str | None:
    """The weights digest of the tokenizer whose ids the LLM learned, where its token releases recorded
    it (those made since 2026-12-07); None for older LLMs, bound to their codec by version alone."""
    return _codec_field(llm_dir, "tokenizer_digest")


def piece_seconds(llm_dir) -> dict[str, float]:
    """Per edit type, the longest piece of a source the LLM is given: the 90th percentile of that task's
    sources it trained on (training.json "data" -> task -> "source_seconds"), within [MIN_PIECE_S,
    Editor.max_chunk_s]; DEFAULT_PIECE_S's for a task the artifact does not record."""
    f = Path(llm_dir) / "training.json"
    data = _read_json(f).get("data", {}) if f.is_file() else {}
    out = {}
    for edit_type, task in EDIT_TASK.items():
        p90 = ((data.get(task) or {}).get("source_seconds") or {}).get("p90")
        if p90 is not None and (isinstance(p90, bool) or not isinstance(p90, numbers.Real)):
            raise ValueError(f"{f}: data.{task}.source_seconds.p90 {p90!r} is not a number of seconds")
        out[edit_type] = min(max(p90, MIN_PIECE_S), Editor.max_chunk_s) if p90 else DEFAULT_PIECE_S[edit_type]
    return out


def guidance_of(llm_dir) -> dict[str, float]:
    """Per edit type, the guidance weight measured for this LLM (inference.json "guidance", written
    beside the weights once an evaluation chose it); empty without the file: no edit is guided."""
    f = Path(llm_dir) / "inference.json"
    return check_guidance(_read_json(f).get("guidance") or {}, f"{f}: guidance") if f.is_file() else {}


def edit_prompt(vocab, edit_type, edit_info, text, source_ids) -> np.ndarray:
    """The chat prompt of one edit of these source tokens (the edit system prompt, upstream's format)."""
    ins = tags.instruction(edit_type, edit_info, text, new_text=edit_info)
    # what the answer says: the tagged text of a paralinguistic edit, else the source's text
    said = edit_info if edit_type == "paralinguistic" else text
    return chat.build_prompt({"system": "edit", "instruction": ins, "source_tokens": source_ids,
                              "target_text": said}, vocab)


def negative_prompt(vocab, edit_type, text, source_ids) -> np.ndarray:
    """What a guided edit is decoded against: the same source under the denoise instruction (a plain
    copy), or for a denoise edit the silence-trim one (a copy that keeps the noise)."""
    return edit_prompt(vocab, "vad" if edit_type == "denoise" else "denoise", None, text, source_ids)


def check_guidance(g: dict, where: str) -> dict[str, float]:
    """Guidance weights by edit type (or clone) as floats; a ValueError naming `where` for a bad entry."""
    if not isinstance(g, dict):
        raise ValueError(f"{where} {g!r}: a mapping of edit type (or clone) to weight")
    bad = {k: w for k, w in g.items()
           if k not in GUIDED or isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= MAX_GUIDANCE}
    if bad:
        raise ValueError(f"{where} {bad}: keys are {', '.join(GUIDED)}, weights numbers >= 0 and <= {MAX_GUIDANCE:g}")
    return {k: float(w) for k, w in g.items()}


def guided_iterations_of(llm_dir) -> int | None:
    """How many first iterations of an edit are guided (inference.json "guided_iterations"; None: all)."""
    f = Path(llm_dir) / "inference.json"
    n = _read_json(f).get("guided_iterations") if f.is_file() else None
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"{f}: guided_iterations {n!r}: a whole number >= 1, or absent for all")
    return n


def speed_ratios(llm_dir) -> dict[str, float]:
    """Per speed tag, the answer-over-source length the LLM was taught (training.json "data" ->
    "speed_edit" -> "length_ratio", written by the trainer); empty for an artifact that does not
    record it, whose speed edits then stop where the model alone stops."""
    f = Path(llm_dir) / "training.json"
    data = _read_json(f).get("data", {}) if f.is_file() else {}
    return {t: float(r) for t, r in ((data.get("speed_edit") or {}).get("length_ratio") or {}).items()}


def _json_version(d: Path, key: str, what: str) -> str:
    f = Path(d) / "config.json"
    if not f.is_file():
        raise ValueError(f"{what}={d}: not an artifact directory (no config.json)")
    v = json.loads(f.read_text()).get(key)
    if not v:
        raise ArtifactMismatch(f"{what}={d}: config.json has no {key!r}")
    return v


# ---- input checks ------------------------------------------------------------------------------
def check_audio(wav, sr: int, name: str, max_s: float | None = None) -> np.ndarray:
    """A mono clip -> float32 at 16 kHz, or a ValueError saying what is wrong with it. Float samples are
    taken as they are ([-1, 1]; a peak over 2 is refused as integer PCM stored as float); integer PCM is
    scaled by its full scale (int16 / 32768)."""
    if wav is None:
        wav = np.zeros(0, np.float32)
    if isinstance(wav, (str, bytes, Path)):
        raise ValueError(f"{name}: need an array of samples, got a {type(wav).__name__} (read the file first, "
                         "e.g. soundfile.read)")
    try:
        raw = np.asarray(wav.detach().cpu() if isinstance(wav, torch.Tensor) else wav)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: need an array of samples, got {type(wav).__name__} ({e})") from None
    if raw.dtype.kind in "iu" and raw.dtype.itemsize > 4:
        # no PCM format is 64-bit: a default numpy int array says nothing of its full scale
        raise ValueError(f"{name}: {raw.dtype} samples; pass float in [-1, 1] or integer PCM (uint8, int16, int32)")
    if raw.dtype.kind in "iu":
        bits = raw.dtype.itemsize * 8
        zero = 2.0 ** (bits - 1) if raw.dtype.kind == "u" else 0.0
        x = ((raw.astype(np.float64) - zero) / 2.0 ** (bits - 1)).astype(np.float32)
    elif raw.dtype.kind == "f":
        x = raw.astype(np.float32)
    else:
        raise ValueError(f"{name}: need real samples (float in [-1, 1] or integer PCM), got dtype {raw.dtype}")
    if x.ndim != 1:
        raise ValueError(f"{name}: need a mono 1-D waveform, got shape {x.shape}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not SR_RANGE[0] <= sr <= SR_RANGE[1]:
        raise ValueError(f"{name}: sample rate {sr!r} is not a whole number of Hz in [{SR_RANGE[0]}, {SR_RANGE[1]}]")
    if len(x) < MIN_S * sr:
        raise ValueError(f"{name}: too short ({len(x) / sr:.3f} s; at least {MIN_S} s needed)")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite samples")
    peak = float(np.max(np.abs(x)))
    if peak > 2.0:
        raise ValueError(f"{name}: float samples peak at {peak:.3g}; expected [-1, 1] (integer PCM in a float "
                         "array? pass it as an integer array, or divide by its full scale)")
    if float(np.max(np.abs(x - x.mean()))) < 1e-4:       # a constant offset is no sound either
        raise ValueError(f"{name}: silent (peak {peak:.2g} around its mean)")
    if max_s is not None and len(x) > max_s * sr:
        raise ValueError(f"{name}: {len(x) / sr:.1f} s is longer than {max_s:g} s")
    return audio.resample(x, int(sr), SR)


def check_text(text, name: str, required: bool = True) -> str:
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError(f"{name}: need a string, got {type(text).__name__}")
    text = text.strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:      # a lone surrogate: bytes that were not UTF-8 on the way in
        raise ValueError(f"{name}: not valid Unicode text (undecodable bytes in it?)") from None
    if required and not text:
        raise ValueError(f"{name}: empty")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{name}: {len(text)} characters, limit {MAX_TEXT}")
    return text


def check_edit(edit_type: str, edit_info):
    """Validate (edit_type, edit_info). For paralinguistic, edit_info is the new text with [Tag] marks
    (upstream's generated text), e.g. "So [Laughter] that was it"."""
    if edit_type not in EDIT_TYPES:
        raise ValueError(f"unknown edit_type {edit_type!r}; valid: {', '.join(EDIT_TYPES)}")
    if edit_type in EDIT_INFO:
        if edit_info is None:
            raise ValueError(f"edit_info: required for {edit_type} edits; valid: {', '.join(EDIT_INFO[edit_type])}")
        if edit_info not in EDIT_INFO[edit_type]:
            raise ValueError(f"unknown edit_info {edit_info!r} for {edit_type}; valid: {', '.join(EDIT_INFO[edit_type])}")
    elif edit_type == "paralinguistic":
        found = tags_in(edit_info) if isinstance(edit_info, str) else []
        bad = [t for t in found if t not in tags.PARALINGUISTIC_TAGS]
        if not found or bad:
            raise ValueError(f"paralinguistic edit_info must be the new text with [Tag] marks, got {edit_info!r}"
                             f"{f' (unknown tags {bad})' if bad else ''}; valid tags: {', '.join(tags.PARALINGUISTIC_TAGS)}")
        check_text(edit_info, "edit_info")
    elif edit_info is not None:
        raise ValueError(f"edit_type {edit_type!r} takes no edit_info, got {edit_info!r}")


# ---- long audio --------------------------------------------------------------------------------
def split_points(x: np.ndarray, max_s: float, pauses: list[int], min_s: float = 1.0) -> list[tuple[int, int]]:
    """[start, end) sample ranges of at most max_s each, cut at pause centres (samples) where one
    lies far enough into the window, else at the quietest 10 ms of the window's last quarter."""
    n, max_n, min_n = len(x), int(max_s * SR), int(min_s * SR)
    out, start = [], 0
    while n - start > max_n:
        end = min(start + max_n, n - min_n)           # leave a usable last chunk
        cands = [p for p in pauses if start + min_n <= p <= end]
        if cands:
            cut = max(cands)
        else:
            lo = max(start + min_n, end - max_n // 4)
            hop = 160
            k = (end - lo) // hop
            energy = (x[lo:lo + k * hop].reshape(k, hop) ** 2).mean(1) if k > 0 else np.zeros(1)
            cut = lo + int(np.argmin(energy)) * hop + hop // 2
        out.append((start, cut))
        start = cut
    return out + [(start, n)]


def share_out(n: int, weights: list[float]) -> list[int]:
    """n whole units in proportion to the weights (largest remainders); while there are enough, every
    piece of weight > 0 gets at least one and a piece of weight 0 none."""
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        w = np.ones_like(w)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    if n >= int((w > 0).sum()):
        counts[(w > 0) & (counts == 0)] = 1
    while counts.sum() > n:            # the floor of one was given above: take back where most was given
        i = int(np.argmax(np.where(counts > 1, counts - exact, -np.inf)))
        counts[i] -= 1
    while counts.sum() < n:
        i = int(np.argmax(np.where(w > 0, exact - counts, -np.inf)))
        counts[i] += 1
    return counts.tolist()


def split_text(text: str, weights: list[float]) -> list[str]:
    """The text in len(weights) consecutive pieces, sized by weight: Han characters and words (runs of
    other word characters) are the units; punctuation stays with the unit before it. Weights are the
    speech in each piece: a piece without speech gets no words, and none is cut inside a word."""
    if len(weights) == 1:
        return [text]
    starts = [m.start() for m in _UNIT.finditer(text)]
    at = lambda u: 0 if u == 0 else (len(text) if u >= len(starts) else starts[u])
    bounds = np.cumsum([0, *share_out(len(starts), weights)])
    return [text[at(a):at(b)].strip() for a, b in zip(bounds[:-1], bounds[1:])]


def crossfade_join(pieces: list[np.ndarray], fade_s: float = 0.02) -> np.ndarray:
    out = np.zeros(0, np.float32)
    for p in pieces:
        p = np.asarray(p, np.float32)
        f = min(int(fade_s * SR), len(out), len(p))
        if f:
            ramp = np.linspace(0.0, 1.0, f, dtype=np.float32)
            out[-f:] = out[-f:] * (1 - ramp) + p[:f] * ramp
            p = p[f:]
        out = np.concatenate([out, p])
    return out


def _seed(*parts) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class Editor:
    max_chunk_s = 30.0       # the longest audio one LLM answer covers (a paralinguistic edit, a stream)
    # piece_s (per instance): {edit_type: seconds}, longer edits are split at pauses (Editor.load: piece_seconds)
    max_edit_s = 600.0       # the longest clip one request may edit (bounds memory and time)
    batch_size = 16          # rows per decode batch (64 on CUDA: set in __init__)
    margin_tokens = 50       # added to every length limit (about 1.2 s)
    # a speed edit's answer ends within this fraction of the length its tag was taught (speed_ratio), as a
    # TTS takes a target duration; the model still chooses where inside. None: the model alone decides.
    # 0.08, inside the 0.10 users are promised: the taught ratio is a median over the training pairs
    duration_window: float | None = 0.08
    # an emotion, style, paralinguistic or denoise edit says the source's words again, so its answer is at
    # least this share of the source (silence trims and speed edits may be shorter). The model on a voice
    # of an engine it never heard sometimes ends such an answer after one block (0.12 s); in-domain no
    # answer came under 0.67 of its source (docs/llm.md). None: the model alone decides.
    min_length_share: float | None = 0.5
    cuda_graphs = True       # on CUDA, decode steps replay as captured graphs (about 6x faster at batch 1)

    def __init__(self, model, vocab, codec, sample: SampleConfig | None = None):
        self.model, self.vocab, self.codec = model.eval(), vocab, codec
        if codec.device.type == "cuda":
            # measured on the H200: 64 requests in one 64-row LLM batch 352x real time, in rows of 16 266x
            # (docs/serving.md); a CPU gains nothing from wider rows and a request waits for its batch
            self.batch_size = 64
            if self.cuda_graphs:     # the vocoder replayed too (editor/vocoder_graphs.py)
                codec.capture_vocoder()
        self.sample = sample or SampleConfig()
        self.piece_s = dict(DEFAULT_PIECE_S)
        self.speed_ratio: dict[str, float] = {}
        # guidance per edit type (editor/llm/generate.py): the answer's log-probabilities pushed away from
        # those of a plain copy (the same source under the denoise instruction) by weight w; absent or 1:
        # off. It costs a second decode row per guided request. guided_iterations: how many of an edit's
        # first iterations are guided (None: all); a later one edits audio that already carries the change
        self.guidance: dict[str, float] = {}
        self.guided_iterations: int | None = None
        self.layout = Layout.of(codec.tokenizer)
        self._vad = None
        self._decode_pool, self._decode_stream = None, None   # CUDA: the codec's own thread and stream
        self._encode_stream = None                            # CUDA: the tokenizer's stream (analyse)
        if codec.device.type == "cuda":      # made here, not on first use, where two first batches would race
            self._decode_pool = ThreadPoolExecutor(1, thread_name_prefix="codec-decode")
            self._decode_stream = torch.cuda.Stream(codec.device)
            self._encode_stream = torch.cuda.Stream(codec.device)
        self.continuous: ContinuousDecoder | None = None      # use_continuous()
        self._batch_lock = threading.Lock()                   # batch decodes (generate()): one caller at a time

    @classmethod
    def load(cls, llm_dir, tokenizer_dir=None, decoder_dir=None, device="auto", quantize: str | None = None,
             f0_decimation: int = 1, continuous_rows: int = 0, continuous_cache_len: int = 1024) -> "Editor":
        """quantize: None, or "int8" (weight-only, editor/llm/quantize.py) for a smaller model in memory.
        f0_decimation: the codec's F0 search on a downsampled copy of each clip (editor/codec.py): 4 for a
        server whose CPUs bound its throughput (docs/serving.md).
        continuous_rows, continuous_cache_len: see use_continuous (0 rows: off)."""
        from editor.codec import Codec
        llm_dir = Path(llm_dir)
        if not (llm_dir / "llm_vocab.json").is_file():
            raise ValueError(f"llm_dir={llm_dir}: not an LLM checkpoint (no llm_vocab.json)")
        if tokenizer_dir is None and decoder_dir is None:
            # unnamed: the codec the LLM was trained on, beside it (an older trio taken out of git history
            # together) or else among the shipped artifacts
            spoken = codec_version_of(llm_dir) or ""
            tokenizer_dir, decoder_dir = codec_dirs(spoken, llm_dir.parent) or codec_dirs(spoken, SHIPPED) or (None, None)
        tokenizer_dir = Path(tokenizer_dir or DEFAULT_TOKENIZER)
        decoder_dir = Path(decoder_dir or DEFAULT_DECODER)
        tok_v = _json_version(tokenizer_dir, "version", "tokenizer")
        dec_v = _json_version(decoder_dir, "tokenizer_version", "decoder")
        llm_v = codec_version_of(llm_dir)
        if llm_v is None:
            raise ArtifactMismatch(f"llm_dir={llm_dir}: no codec.json or training.json 'tokenizer_version': "
                                   "cannot tell which codec tokenizer the LLM was trained on")
        if llm_v != tok_v:
            raise ArtifactMismatch(f"LLM {llm_dir} was trained on codec tokenizer {llm_v}, not {tok_v} ({tokenizer_dir})")
        if dec_v != tok_v:
            raise ArtifactMismatch(f"decoder {decoder_dir} was trained on tokenizer {dec_v}, not {tok_v} ({tokenizer_dir})")
        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        codec = Codec.load(tokenizer_dir, decoder_dir, dev, f0_decimation)
        want = codec_digest_of(llm_dir)
        if want and (have := codec.tokenizer_digest or weights_digest(tokenizer_dir)) != want:
            raise ArtifactMismatch(f"LLM {llm_dir} learned the ids of another tokenizer named {tok_v} (weights {want}); "
                                   f"{tokenizer_dir} is {have}")
        c = codec.tokenizer.cfg
        if c["linguistic"]["codebook"] + c["semantic"]["codebook"] != AUDIO_SIZE:
            raise ArtifactMismatch(f"tokenizer {tok_v} has {c['linguistic']['codebook']}+{c['semantic']['codebook']} "
                                   f"ids, the LLM's audio block {AUDIO_SIZE}")
        # bf16 weights on CUDA: the decode runs under bf16 autocast and its static KV cache takes the
        # model's dtype, which must be the dtype of the keys and values written into it
        model, vocab = llm_model.load(llm_dir, dtype="bfloat16" if str(dev).startswith("cuda") else "float32")
        if quantize == "int8":
            from editor.llm.quantize import quantize_int8
            quantize_int8(model)
        elif quantize is not None:
            raise ValueError(f"quantize={quantize!r}: choose None or 'int8'")
        ed = cls(model.to(dev), vocab, codec)
        ed.piece_s = piece_seconds(llm_dir)
        ed.speed_ratio = speed_ratios(llm_dir)
        ed.guidance, ed.guided_iterations = guidance_of(llm_dir), guided_iterations_of(llm_dir)
        if continuous_rows:
            ed.use_continuous(continuous_rows, continuous_cache_len)
        return ed

    def use_continuous(self, rows: int, cache_len: int = 1024) -> None:
        """Decode through one continuous batch of `rows` rows (editor/llm/continuous.py) from now on:
        requests join free rows between steps and leave as they end, and `start` may be called from
        several threads at once, so a server keeps more batches in flight than it has model calls.
        An answer whose prompt and limit do not fit cache_len slots is decoded in a batch of its own,
        as before (a long piece: a trim's, a paralinguistic edit's)."""
        if rows < 2 or cache_len < 64:
            raise ValueError(f"continuous decoding: rows {rows} (at least 2: a guided request takes two) "
                             f"and cache_len {cache_len} (at least 64)")
        self.close()
        self.continuous = ContinuousDecoder(self.model, self.vocab, rows, cache_len, self.sample, self.layout,
                                            cuda_graphs=self.cuda_graphs)

    @property
    def concurrent_start(self) -> bool:
        """Whether `start` may run in several threads at once (continuous decoding on)."""
        return self.continuous is not None

    def close(self) -> None:
        """Stop the continuous decoder's thread, if any (requests still queued fail)."""
        if self.continuous is not None:
            self.continuous.close()
            self.continuous = None

    # ---- generation ------------------------------------------------------------------------------
    def _generate(self, prompts, max_new, seeds, temps, refs=None, sink=None, keys=None, min_new=None,
                  negatives=None, guidance=None) -> list[np.ndarray]:
        """Decode in batches of similar prompt length, or through the continuous decoder when it is on
        (the answers that fit it); results in input order. min_new[i]: the fewest answer tokens of
        request i (default none); negatives[i], guidance[i]: its guidance (None, 1: none).
        With a sink (`_AudioSink`), each finished batch's answers go to the codec at once (refs[i]: the
        voice reference of request i; keys[i], default i: its key in the sink) while the next batch generates."""
        out = [None] * len(prompts)
        min_new = min_new or [0] * len(prompts)
        negatives, guidance = negatives or [None] * len(prompts), guidance or [1.0] * len(prompts)
        put = lambda idx, res: sink.put([keys[i] if keys else i for i in idx], res, [refs[i] for i in idx])
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        joined = {}
        if self.continuous is not None:
            reqs = {i: Request(prompts[i], max_new[i], seeds[i], temps[i], min_new[i], negatives[i], guidance[i])
                    for i in order}
            fit = [i for i, r in reqs.items() if self.continuous.fits(r)]
            joined = dict(zip(fit, self.continuous.submit_many([reqs[i] for i in fit])))
            order = [i for i in order if i not in joined]
        with self._batch_lock:
            for k in range(0, len(order), self.batch_size):
                idx = order[k:k + self.batch_size]
                args = (self.model, self.vocab, [prompts[i] for i in idx], [max_new[i] for i in idx],
                        [seeds[i] for i in idx], [temps[i] for i in idx], self.sample, self.layout)
                res = generate(*args, cuda_graphs=self.cuda_graphs,   # falls back to eager itself
                               min_new_tokens=[min_new[i] for i in idx], negatives=[negatives[i] for i in idx],
                               guidance=[guidance[i] for i in idx])
                for i, r in zip(idx, res):
                    out[i] = r
                if sink is not None:
                    put(idx, res)
        if joined:
            for i, fut in joined.items():
                out[i] = fut.result()
            if sink is not None:       # one codec batch: its decode is as long for one answer as for many
                put(list(joined), [out[i] for i in joined])
        return out

    def _limit(self, n: float) -> int:
        b = self.layout.block
        return int(math.ceil((n + self.margin_tokens) / b) * b)

    def _fit(self, bounds: tuple[int, int], prompt_len: int, later: bool = False) -> tuple[int, int]:
        """An edit's (fewest, most) answer tokens within the model's context after its prompt. A later
        iteration, fed a long answer, is held to the room there is (its floor lowered) rather than refused."""
        room = self._room(prompt_len)
        if later and room > 0:
            return min(bounds[0], room), min(bounds[1], room)
        if bounds[0] > room or room == 0:
            raise ValueError(f"wav: its prompt ({prompt_len} tokens) leaves {room} of the model's "
                             f"{self.model.config.max_position_embeddings} for an answer of at least {max(bounds[0], 1)}: "
                             "edit a shorter clip")
        return bounds[0], min(bounds[1], room)

    def _edit_bounds(self, edit_type: str, edit_info, n_src: int) -> tuple[int, int]:
        """(fewest, most) answer tokens of an edit of n_src source tokens: a speed edit whose tag has a
        taught ratio within duration_window of it; an edit that says the same words at least
        min_length_share of the source; at most twice the source plus margin_tokens (room for "more
        slower", a bound on run-away output)."""
        b = self.layout.block
        ratio = self.speed_ratio.get(edit_info) if edit_type == "speed" and self.duration_window else None
        if ratio is None:
            share = self.min_length_share if edit_type in SAME_WORDS else None
            return (int(share * n_src // b * b) if share else 0), self._limit(2 * n_src)
        want, w = ratio * n_src, self.duration_window
        lo = int(math.ceil(want * (1 - w) / b) * b)        # whole blocks, rounded inwards: never wider than w
        return lo, max(lo, b, int(want * (1 + w) // b * b))

    def _analyze_encode(self, wavs) -> tuple[list[np.ndarray], list]:
        """(interleaved ids, frames) per clip: the frames the tokenizer reads are also the voice
        reference the decoder takes, so each clip is analysed once."""
        frames = self.codec.analyze_many(wavs)
        return self._encode(frames), frames

    def _encode(self, frames, inputs=None) -> list[np.ndarray]:
        """Frames (and their encoder inputs, when made already) -> interleaved ids. On CUDA on a stream of
        its own: `analyse` runs it in a server's other thread while a batch before it decodes."""
        with torch.cuda.stream(self._encode_stream):      # None (CPU): no stream
            return [self.codec.tokenizer.interleave(l, s) for l, s in self.codec.encode_frames(frames, inputs)]

    # ---- phases: analyse (CPU, tokenizer), start (LLM), finish (codec decode) ----------------------
    def analyse(self, kind: str, requests: list[dict]) -> "Analysed":
        """Requests checked, split at pauses and their audio analysed; on CUDA also tokenized (on a stream
        of its own) with the prompts of the first decode built: everything before the LLM, so that a
        server does it for the next batch while `start` decodes this one, and `start` finds the model's
        next batch ready. On the CPU `start` tokenizes, as the tokenizer beside a decode would only share
        the same cores. Touches nothing the LLM's decode uses; safe beside `start`."""
        if kind == "clone":
            reqs = _checked(clone_request, requests)
            items = [{"req": i, "wav": r["prompt_wav"]} for i, r in enumerate(reqs)]
        elif kind == "edit":
            reqs = _checked(edit_request, requests)
            items = self._edit_items(reqs)
        else:
            raise ValueError(f"kind={kind!r}: choose 'clone' or 'edit'")
        kept = [it for it in items if it.get("kept")]
        items = [it for it in items if not it.get("kept")]
        wavs = [it["wav"] for it in items]
        if not (items and self._analyse_tokenizes()):
            return Analysed(kind, reqs, items, self.codec.analyze_many(wavs), kept=kept)
        frames, inputs = zip(*self.codec.analyze_for_encoding(wavs))
        a = Analysed(kind, reqs, items, list(frames), kept=kept)
        self._prepare(a, list(inputs))
        return a

    def _analyse_tokenizes(self) -> bool:
        return self.codec.device.type == "cuda"

    def _prepare(self, a: "Analysed", inputs=None) -> None:
        """The analysed items' ids, and the rows of the first decode."""
        a.ids = self._encode(a.frames, inputs)
        a.first = self._clone_rows(a) if a.kind == "clone" else self._edit_rows(a, a.items, a.ids, 0)

    def run(self, a: "Analysed") -> list:
        """clone_many's or edit_many's result for analysed requests."""
        return self.start(a)()

    def start(self, a: "Analysed") -> Callable[[], list]:
        """Generate every answer of an analysed batch and hand them to the codec; returns the function
        that waits for their audio and gives run()'s result. One caller at a time until start returns
        (any number with continuous decoding on: `concurrent_start`); after that the model is free: on
        CUDA the codec decodes on its own thread and stream, so a server starts the next batch's
        generation while this batch's audio is decoded."""
        if not a.items:
            return lambda: []
        if a.first is None:
            self._prepare(a)
        return self._start_clones(a) if a.kind == "clone" else self._start_edits(a)

    def _decode(self, ids_list, refs) -> list[np.ndarray]:
        """Interleaved ids + reference frames -> audio; empty outputs stay empty. On CUDA always on the
        codec's stream, from whichever thread (the codec's, or a stream's caller): the codec's cached
        device constants are then made and freed on the one stream that reads them."""
        keep = [i for i, ids in enumerate(ids_list) if len(ids)]
        out = [np.zeros(0, np.float32) for _ in ids_list]
        if not keep:
            return out
        with torch.cuda.stream(self._decode_stream):     # None (CPU): no stream
            wavs = self.codec.decode([self.codec.tokenizer.deinterleave(ids_list[i]) for i in keep], [refs[i] for i in keep],
                                     batch_size=max(16, len(keep)))
        for i, w in zip(keep, wavs):
            out[i] = np.asarray(w, np.float32)
        return out

    def _sink(self) -> "_AudioSink":
        return _AudioSink(self)

    # ---- clone -----------------------------------------------------------------------------------
    def clone(self, prompt_wav, prompt_text, text, prompt_sr=16000, speaker_name="speaker", seed=0,
              temperature=0.7) -> np.ndarray:
        return self.clone_many([dict(prompt_wav=prompt_wav, prompt_text=prompt_text, text=text, prompt_sr=prompt_sr,
                                     speaker_name=speaker_name, seed=seed, temperature=temperature)])[0]

    def clone_many(self, requests: list[dict]) -> list[np.ndarray]:
        return self.run(self.analyse("clone", requests))

    def _clone_rows(self, a: "Analysed") -> dict:
        """_generate's per-row arguments of analysed clones."""
        prompts, limits = zip(*[self._clone_prompt(r, p) for r, p in zip(a.reqs, a.ids)])
        # a guided clone decodes against the same speaker block with no text to say: w > 1 leans on the words
        w = float(self.guidance.get("clone", 1.0))
        negatives = [self._clone_prompt({**r, "text": ""}, p)[0] for r, p in zip(a.reqs, a.ids)] if w != 1.0 else None
        return dict(prompts=list(prompts), max_new=list(limits), seeds=[_seed(r["seed"]) for r in a.reqs],
                    temps=[r["temperature"] for r in a.reqs], negatives=negatives, guidance=[w] * len(prompts))

    def _start_clones(self, a: "Analysed") -> Callable[[], list[np.ndarray]]:
        sink = self._sink()
        self._generate(**a.first, refs=a.frames, sink=sink)

        def finish():
            audio = sink.collect()
            return [audio[i] for i in range(len(a.reqs))]
        return finish

    def _clone_prompt(self, r: dict, prompt_ids: np.ndarray) -> tuple[np.ndarray, int]:
        ex = {"system": "clone", "speaker": {"name": r["speaker_name"], "prompt_text": r["prompt_text"]},
              "source_tokens": prompt_ids, "target_text": r["text"]}
        prompt = chat.build_prompt(ex, self.vocab)
        # the prompt's speaking rate (at most MAX_CHAR_S a character), doubled: room for a slow reading,
        # still a bound on run-away output; the text must fit the model's context at that rate undoubled
        tps = self.codec.tokenizer.tokens_per_second()["interleaved"]
        per_char = min(len(prompt_ids) / len(r["prompt_text"]), MAX_CHAR_S * tps)
        expected, room = per_char * len(r["text"]), self._room(len(prompt))
        if expected > room:
            raise ValueError(f"text: {len(r['text'])} characters take about {expected / tps:.0f} s at the voice "
                             f"prompt's speaking rate; one clone answer holds at most {room / tps:.0f} s: "
                             "clone the text in parts")
        return prompt, min(self._limit(2 * expected), room)

    def _room(self, prompt_len: int) -> int:
        """The most answer tokens after a prompt of prompt_len: the model's context, in whole blocks."""
        b = self.layout.block
        return max(0, (int(self.model.config.max_position_embeddings) - prompt_len) // b * b)

    # ---- edit ------------------------------------------------------------------------------------
    def edit(self, wav, text, edit_type, edit_info=None, n_iter=1, prompt_fixed=False, sr=16000, seed=0,
             temperature=0.7) -> list[np.ndarray]:
        return self.edit_many([dict(wav=wav, text=text, edit_type=edit_type, edit_info=edit_info, n_iter=n_iter,
                                    prompt_fixed=prompt_fixed, sr=sr, seed=seed, temperature=temperature)])[0]

    def _edit_prompt(self, edit_type, edit_info, text, source_ids) -> np.ndarray:
        return edit_prompt(self.vocab, edit_type, edit_info, text, source_ids)

    def _guide(self, edit_type, text, source_ids) -> tuple[np.ndarray | None, float]:
        """The negative prompt and weight of an edit's guidance (None, 1.0: not guided)."""
        w = float(self.guidance.get(edit_type, 1.0))
        if w == 1.0:
            return None, 1.0
        return negative_prompt(self.vocab, edit_type, text, source_ids), w

    def _speech(self, x: np.ndarray) -> list[tuple[int, int]]:
        """[start, end) sample spans of speech (Silero VAD)."""
        from silero_vad import get_speech_timestamps, load_silero_vad
        if self._vad is None:
            self._vad = load_silero_vad(onnx=True)
        return [(a["start"], a["end"]) for a in get_speech_timestamps(torch.from_numpy(x), self._vad, sampling_rate=SR)]

    def _chunks(self, x: np.ndarray, max_s: float) -> tuple[list[tuple[int, int]], list[int]]:
        """(pieces of at most max_s cut at pauses, samples of speech in each)."""
        if len(x) <= max_s * SR:
            return [(0, len(x))], [len(x)]
        speech = self._speech(x)
        pauses = [(a[1] + b[0]) // 2 for a, b in zip(speech[:-1], speech[1:])]
        spans = split_points(x, max_s, pauses, min_s=min(1.0, max_s / 4))
        said = [sum(max(0, min(b, e) - max(a, s)) for s, e in speech) for a, b in spans]
        return spans, said if any(said) else [b - a for a, b in spans]     # no speech found: by length

    def edit_many(self, requests: list[dict]) -> list[list[np.ndarray]]:
        """Each request: edit()'s keyword arguments as a dict. All rows of one iteration decode together."""
        return self.run(self.analyse("edit", requests))

    def _edit_items(self, reqs: list[dict]) -> list[dict]:
        """One item per (request, piece): audio over its edit type's piece_s is split at pauses, its text shared out."""
        items = []
        for ri, r in enumerate(reqs):
            para = r["edit_type"] == "paralinguistic"
            spans, said = self._chunks(r["wav"], self.max_chunk_s if para else self.piece_s[r["edit_type"]])
            if len(spans) > 1 and para:
                raise ValueError(f"request {ri}: paralinguistic edits need audio of at most {self.max_chunk_s:g} s "
                                 "(the tagged text cannot be split with the audio); split it yourself")
            texts = split_text(r["text"], said)
            for ci, ((a, b), t, n) in enumerate(zip(spans, texts, said)):
                # a piece with no speech in an emotion or style edit has nothing to voice: it is kept as it is
                keep = n == 0 and r["edit_type"] in KEPT_WHEN_SILENT
                items.append({"req": ri, "chunk": ci, "wav": r["wav"][a:b], "text": t, "kept": keep})
        return items

    def _edit_rows(self, a: "Analysed", todo: list[dict], fed_ids: list, k: int) -> dict:
        """_generate's per-row arguments of iteration k of the edit items `todo`, each fed fed_ids[i]:
        the source's ids (todo[i]["src"]) or the answer it is to edit next."""
        reqs = a.reqs
        rows = dict(prompts=[], max_new=[], min_new=[], negatives=[], guidance=[],
                    seeds=[_seed(reqs[it["req"]]["seed"], it["chunk"], k) for it in todo],
                    temps=[reqs[it["req"]]["temperature"] for it in todo])
        guided = self.guided_iterations is None or k < self.guided_iterations
        for it, fed in zip(todo, fed_ids):
            r = reqs[it["req"]]
            text = it["text"]
            if r["edit_type"] == "paralinguistic" and k > 0 and not r["prompt_fixed"]:
                text = r["edit_info"]       # the fed audio already says the tagged text
            prompt = self._edit_prompt(r["edit_type"], r["edit_info"], text, fed)
            neg, w = self._guide(r["edit_type"], text, fed) if guided else (None, 1.0)
            rows["prompts"].append(prompt), rows["negatives"].append(neg), rows["guidance"].append(w)
            longest = max(len(prompt), len(neg) if neg is not None else 0)      # a guided row's partner decodes as long
            lo, hi = self._fit(self._edit_bounds(r["edit_type"], r["edit_info"], len(fed)), longest, later=k > 0)
            rows["min_new"].append(lo), rows["max_new"].append(hi)
        return rows

    def _start_edits(self, a: "Analysed") -> Callable[[], list[list[np.ndarray]]]:
        reqs = a.reqs
        items = [{**it, "src": i, "outs": [], "ref": fr} for it, i, fr in zip(a.items, a.ids, a.frames)]
        sink = self._sink()
        for k in range(max(r["n_iter"] for r in reqs)):
            todo = [it for it in items if reqs[it["req"]]["n_iter"] > k and (k == 0 or len(it["outs"][-1]))]
            if k == 0:
                rows = a.first
            else:
                fed = [it["src"] if reqs[it["req"]]["prompt_fixed"] else it["outs"][-1] for it in todo]
                rows = self._edit_rows(a, todo, fed, k)
            res = self._generate(**rows, refs=[it["ref"] for it in todo], sink=sink, keys=[(id(it), k) for it in todo])
            for it, answer in zip(todo, res):
                it["outs"].append(answer)
            for it in items:      # rows that stopped early (an empty answer) stay empty
                if reqs[it["req"]]["n_iter"] > k and len(it["outs"]) < k + 1:
                    it["outs"].append(np.zeros(0, np.int32))

        def finish():
            audio = sink.collect()
            result = [[[] for _ in range(r["n_iter"])] for r in reqs]
            for it in items:
                for k in range(len(it["outs"])):
                    result[it["req"]][k].append((it["chunk"], audio.get((id(it), k), np.zeros(0, np.float32))))
            said = [[any(len(p) for _, p in pieces) for pieces in iters] for iters in result]
            for it in a.kept:          # pieces without speech, the same in every iteration
                for k in range(reqs[it["req"]]["n_iter"]):
                    if said[it["req"]][k]:      # an iteration whose edited pieces said nothing stays empty
                        result[it["req"]][k].append((it["chunk"], it["wav"]))
            return [[crossfade_join([p for _, p in sorted(pieces, key=lambda c: c[0])]) for pieces in iters]
                    for iters in result]
        return finish


    # ---- streaming -------------------------------------------------------------------------------
    def clone_stream(self, prompt_wav, prompt_text, text, prompt_sr=16000, speaker_name="speaker", seed=0,
                     temperature=0.7, chunk_s=1.0) -> Iterator[np.ndarray]:
        """clone() as 16 kHz chunks given out while the answer is generated (editor/llm/streaming.py);
        the same tokens as clone() with the same seed."""
        r = _call(clone_request, dict(prompt_wav=prompt_wav, prompt_text=prompt_text, text=text, prompt_sr=prompt_sr,
                                       speaker_name=speaker_name, seed=seed, temperature=temperature))
        (ids,), (ref,) = self._analyze_encode([r["prompt_wav"]])
        prompt, limit = self._clone_prompt(r, ids)
        w = float(self.guidance.get("clone", 1.0))        # guided as clone() guides it
        negative = self._clone_prompt({**r, "text": ""}, ids)[0] if w != 1.0 else None
        return self._stream(prompt, (0, limit), _seed(r["seed"]), r["temperature"], ref, chunk_s, negative, w)

    def edit_stream(self, wav, text, edit_type, edit_info=None, sr=16000, seed=0, temperature=0.7,
                    chunk_s=1.0) -> Iterator[np.ndarray]:
        """One iteration of edit() as 16 kHz chunks given out while the answer is generated; the same
        tokens as edit()'s first iteration with the same seed. Audio up to max_chunk_s (edit() splits
        longer audio at pauses and is not streamed)."""
        r = _call(edit_request, dict(wav=wav, text=text, edit_type=edit_type, edit_info=edit_info, sr=sr, seed=seed,
                                      temperature=temperature))
        if len(r["wav"]) > self.max_chunk_s * SR:
            raise ValueError(f"wav: {len(r['wav']) / SR:.1f} s; a streamed edit takes at most {self.max_chunk_s:g} s "
                             "(edit() splits longer audio at pauses)")
        (src,), (ref,) = self._analyze_encode([r["wav"]])
        prompt = self._edit_prompt(r["edit_type"], r["edit_info"], r["text"], src)
        neg, w = self._guide(r["edit_type"], r["text"], src)
        longest = max(len(prompt), len(neg) if neg is not None else 0)
        bounds = self._fit(self._edit_bounds(r["edit_type"], r["edit_info"], len(src)), longest)
        return self._stream(prompt, bounds, _seed(r["seed"], 0, 0), r["temperature"], ref, chunk_s, neg, w)

    def _stream(self, prompt, bounds, seed, temperature, ref, chunk_s, negative=None, guidance=1.0) -> Iterator[np.ndarray]:
        """bounds: (fewest, most) answer tokens; negative, guidance: see _guide."""
        tps = self.codec.tokenizer.tokens_per_second()["interleaved"]
        audio = AudioStream(lambda ids: self._decode([ids], [ref])[0], tps, chunk_s)
        answers = generate_stream(self.model, self.vocab, [prompt], [bounds[1]], [seed], [temperature], self.sample,
                                  self.layout, cuda_graphs=self.cuda_graphs, every=4 * self.layout.block,
                                  min_new_tokens=[bounds[0]], negatives=[negative], guidance=[guidance])
        return stream(answers, audio)


@dataclass
class Analysed:
    """Requests after Editor.analyse: checked (reqs), one item per clip to encode (an edit's audio over
    piece_s is several), each item's frames (the tokenizer's input and the decoder's voice) and ids, and
    the rows of the first decode."""
    kind: str
    reqs: list[dict]
    items: list[dict]
    frames: list
    ids: list | None = None       # each item's interleaved source ids
    first: dict | None = None     # _generate's per-row arguments of the first decode
    kept: list = field(default_factory=list)   # pieces of long edits passed through unedited (no speech)


class _AudioSink:
    """Answers handed to the codec as the LLM finishes each batch. On CUDA the decodes run on the
    editor's codec thread and CUDA stream, so the codec decodes batch k while the LLM generates
    batch k+1 and the two overlap on the GPU; elsewhere they run at once in the caller's thread
    (two compute-bound threads on the same CPU cores gain nothing)."""

    def __init__(self, editor: "Editor"):
        self.editor, self.jobs = editor, []

    def put(self, keys, ids_list, refs) -> None:
        ed = self.editor
        if ed._decode_pool is None:
            done = Future()
            try:
                done.set_result(ed._decode(ids_list, refs))
            except Exception as e:        # raised in collect(), as a worker's error would be
                done.set_exception(e)
            self.jobs.append((keys, done))
        else:
            self.jobs.append((keys, ed._decode_pool.submit(ed._decode, ids_list, refs)))

    def collect(self) -> dict:
        """key -> 16 kHz audio, once every decode has finished (the first error is raised)."""
        out = {}
        for keys, job in self.jobs:
            out.update(zip(keys, job.result()))
        return out


def _call(fn, r):
    if not isinstance(r, dict):
        raise ValueError(f"a request must be a dict of keyword arguments, got {type(r).__name__}")
    try:
        inspect.signature(fn).bind(**r)
    except TypeError as e:    # unknown or missing keys
        raise ValueError(f"bad request keys {sorted(r)}: {e}") from None
    return fn(**r)


def _checked(fn, requests: list) -> list[dict]:
    """Every request through fn; in a batch of several, an error names the request by its index."""
    out = []
    for i, r in enumerate(requests):
        try:
            out.append(_call(fn, r))
        except ValueError as e:
            raise ValueError(f"request {i}: {e}" if len(requests) > 1 else str(e)) from None
    return out


def _whole(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _common(seed, temperature):
    if not _whole(seed) or seed < 0:
        raise ValueError(f"seed: must be a non-negative int, got {seed!r}")
    if (isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real)
            or not math.isfinite(temperature) or temperature < 0):
        raise ValueError(f"temperature: must be a number >= 0 (0 = greedy), got {temperature!r}")


def clone_seconds(prompt_wav: np.ndarray, prompt_text: str, text: str) -> float:
    """About how long a clone says `text`: at the voice prompt's speaking rate (seconds per character),
    at most MAX_CHAR_S a character."""
    return min(len(prompt_wav) / SR / len(prompt_text), MAX_CHAR_S) * len(text)


def check_clone_length(prompt_wav: np.ndarray, prompt_text: str, text: str) -> None:
    s = clone_seconds(prompt_wav, prompt_text, text)
    if s > Editor.max_chunk_s:
        raise ValueError(f"text: {len(text)} characters take about {s:.0f} s at the voice prompt's speaking rate; "
                         f"one clone says at most {Editor.max_chunk_s:g} s: clone the text in parts")


def clone_request(prompt_wav, prompt_text, text, prompt_sr=16000, speaker_name="speaker", seed=0, temperature=0.7):
    """clone()'s arguments checked and normalised (16 kHz audio, stripped text), or a ValueError that
    starts with the bad argument's name; nothing is loaded, so callers check before the model loads."""
    _common(seed, temperature)
    r = dict(prompt_wav=check_audio(prompt_wav, prompt_sr, "prompt_wav", max_s=Editor.max_chunk_s),
             prompt_text=check_text(prompt_text, "prompt_text"), text=check_text(text, "text"),
             speaker_name=check_text(speaker_name, "speaker_name"), seed=int(seed), temperature=float(temperature))
    check_clone_length(r["prompt_wav"], r["prompt_text"], r["text"])
    return r


def edit_request(wav, text, edit_type, edit_info=None, n_iter=1, prompt_fixed=False, sr=16000, seed=0, temperature=0.7):
    """edit()'s arguments, as clone_request does clone()'s."""
    _common(seed, temperature)
    check_edit(edit_type, edit_info)
    if not _whole(n_iter) or not 1 <= n_iter <= MAX_ITER:
        raise ValueError(f"n_iter: must be an int from 1 to {MAX_ITER}, got {n_iter!r}")
    if not isinstance(prompt_fixed, (bool, np.bool_)):
        raise ValueError(f"prompt_fixed: must be True or False, got {prompt_fixed!r}")
    text = check_text(text, "text", required=edit_type not in ("denoise", "vad"))
    return dict(wav=check_audio(wav, sr, "wav", max_s=Editor.max_edit_s), text=text, edit_type=edit_type, edit_info=edit_info,
                n_iter=int(n_iter), prompt_fixed=bool(prompt_fixed), seed=int(seed), temperature=float(temperature))
