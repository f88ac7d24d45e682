"""The editor's training corpus: every audio member of a release, as frames (log-mel + F0,
editor/features.py), and for English clips with a transcript, a phone label per frame by forced
alignment (editor/phones.py).

`data` is anything core/reader.py reads (a release or pipeline dir, a shards folder, one .tar, a glob,
a comma-separated list of those); or a corpus .npz written by this module (that is how the GPU machine
gets data: analysis is CPU work, done once). Members with identical audio (a triplet's source reused
across intensities) are analysed once. The analysis is cached in cache_dir under a hash of the shards'
and manifests' names, sizes and mtimes.

Each clip keeps its sample's train/validation/test `split` (None when the release was made without
splits); with_splits() applies the editor.split_* overrides, by speaker.
"""
import hashlib
import io
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.reader import Release
from core.sample import SampleError
from editor import features, phones

AUDIO_SUFFIXES = (".flac", ".wav")


@dataclass
class Corpus:
    """Utterance i has frames offsets[i]:offsets[i+1] of the flat arrays."""
    f0: np.ndarray          # (N,) float32 Hz, 0 = unvoiced
    mel: np.ndarray         # (N, N_MELS) float32 log-mel
    offsets: np.ndarray     # (U+1,) int64
    meta: list[dict]        # per utterance: member, role, speaker, language, text, instruction, split, margin, shard
    phones: np.ndarray      # (N,) int8 index into phones.PHONES, phones.UNKNOWN where unlabelled

    def __len__(self):
        return len(self.meta)

    def frames(self, i: int) -> features.Frames:
        a, b = self.offsets[i], self.offsets[i + 1]
        return features.Frames(self.f0[a:b], self.mel[a:b])

    def phone_labels(self, i: int) -> np.ndarray:
        return self.phones[self.offsets[i]:self.offsets[i + 1]]

    def select(self, keep) -> "Corpus":
        return self._take([i for i in range(len(self)) if keep(self.meta[i])])

    def _take(self, idx: list[int]) -> "Corpus":
        return from_frames([self.frames(i) for i in idx], [self.meta[i] for i in idx],
                           [self.phone_labels(i) for i in idx])

    def speakers(self) -> list[str]:
        return sorted({m["speaker"] for m in self.meta})

    def digest(self) -> str:
        """The clips by what a training run reads of them (frames, phone labels, members, speakers,
        splits): a resumed run checks it trains on the same corpus."""
        h = hashlib.sha1()
        for a in (self.offsets, self.f0, self.mel, self.phones):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(json.dumps([[m.get("member"), m.get("speaker"), m.get("split")] for m in self.meta]).encode())
        return h.hexdigest()[:16]

    def hours(self) -> float:
        return len(self.f0) * features.FRAME_MS / 1000 / 3600

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # two jobs sharing a cache never collide
        # log-mel as 8 bits over a fixed range (steps of 0.07 nepers): a quarter of float32, so an
        # hour of audio travels to the GPU machine in ~30 MB
        q = np.round((np.clip(self.mel, *MEL_RANGE) - MEL_RANGE[0]) / _MEL_STEP).astype(np.uint8)
        np.savez_compressed(tmp, f0=self.f0.astype(np.float32), mel_q=q, offsets=self.offsets,
                            phones=self.phones.astype(np.int8), meta=np.array(json.dumps(self.meta)))
        os.replace(tmp, path)  # never a half-written corpus under the final name


MEL_RANGE = (-12.0, 6.0)
_MEL_STEP = (MEL_RANGE[1] - MEL_RANGE[0]) / 255


def from_frames(parts: list[features.Frames], meta: list[dict], labels: list[np.ndarray] | None = None) -> Corpus:
    """labels: per clip phone labels (phones.align); None: no clip is labelled."""
    if not parts:
        raise ValueError("corpus is empty: no utterances left")
    lengths = np.array([len(p) for p in parts])
    if labels is not None and [len(x) for x in labels] != list(lengths):
        raise ValueError("phone labels do not match the clips' frame counts")
    flat = (np.concatenate(labels) if labels is not None else np.full(lengths.sum(), phones.UNKNOWN)).astype(np.int8)
    return Corpus(np.concatenate([p.f0 for p in parts]), np.concatenate([p.mel for p in parts]),
                  np.concatenate([[0], np.cumsum(lengths)]), meta, flat)


def load_npz(path) -> Corpus:
    z = np.load(path)
    mel = z["mel_q"].astype(np.float32) * _MEL_STEP + MEL_RANGE[0]
    labels = z["phones"] if "phones" in z.files else np.full(len(z["f0"]), phones.UNKNOWN, np.int8)  # older corpora
    return Corpus(z["f0"], mel, z["offsets"], json.loads(str(z["meta"])), labels)


SPLITS = ("train", "validation", "test")


def member_meta(name: str, sample_json: dict) -> dict:
    """Who speaks a member, and what of its sample the editor keeps: the sample's speaker, except a
    margin-bootstrap target voiced by another."""
    role = name.split(".", 1)[1].rsplit(".", 1)[0] if "." in name else ""
    speaker = sample_json.get("speaker", "unknown")
    if role == "tgt" and sample_json.get("other_speaker"):
        speaker = sample_json["other_speaker"]
    return {"member": name, "role": role, "speaker": speaker, "language": sample_json.get("language", ""),
            "text": sample_json.get("text", ""), "instruction": sample_json.get("instruction"),
            "split": sample_json.get("split"), "margin": sample_json.get("margin")}


def audio_members(release: Release):
    """(audio bytes, meta) of every audio member of the release, in manifest order."""
    for s in release.samples(decode=False):
        for suffix, data in s.members.items():
            if suffix.endswith(AUDIO_SUFFIXES):
                # each member's own transcript: a prompt.flac says the prompt's text, not the sample's
                yield data, {**member_meta(f"{s.key}.{suffix}", s.json), "text": _transcript(s, suffix),
                             "shard": s.shard.name}


def _transcript(sample, suffix: str) -> str:
    try:
        return sample.transcript(suffix) or ""
    except SampleError:  # a task this code does not know: the sample's text
        return sample.json.get("text", "")


def split_speakers(data: str, split: str) -> list[str]:
    """The speakers of one split of a release (its `split` column)."""
    rows = Release(data).select(split=split)
    return sorted(set(rows["speaker"].dropna()))


def _one_thread():
    import torch
    torch.set_num_threads(1)  # one clip per core: the pool is the parallelism


def decode_audio(data: bytes) -> np.ndarray:
    """Audio file bytes -> mono float32 at the editor's sample rate."""
    import soundfile as sf

    from core.audio import resample
    x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return resample(x.mean(axis=1), sr, features.SAMPLE_RATE)


def _analyze_bytes(args) -> tuple[features.Frames, np.ndarray] | None:
    data, block_frames, meta = args
    x = decode_audio(data)
    if len(x) < features.SAMPLE_RATE * 0.3:
        return None
    fr = features.analyze(x, block_frames)
    labels = (phones.align(x, meta["text"], len(fr)) if meta["language"] == "en"
              else np.full(len(fr), phones.UNKNOWN, np.int8))
    return fr, labels


def _cache_path(release: Release, cache_dir, block_frames: int) -> Path:
    h = hashlib.sha1(f"mel{features.N_MELS}/{block_frames}/phones{phones.VERSION}/meta2".encode())
    manifests = [r / "manifest.parquet" for r in release.roots if (r / "manifest.parquet").is_file()]
    for s in release.shards + manifests:
        st = s.stat()
        h.update(f"{s.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return Path(cache_dir) / "editor_corpus" / f"{h.hexdigest()[:16]}.npz"


def build(data: str, cache_dir, block_frames: int, workers: int | None = None) -> Corpus:
    """Analyse (or load from cache) every distinct audio member of the shards in `data`."""
    if str(data).endswith(".npz"):
        if not Path(data).is_file():
            raise ValueError(f"data={data}: no such corpus file")
        corpus = load_npz(data)
        if (np.diff(corpus.offsets) % block_frames).any():
            raise ValueError(f"data={data}: clips are not padded to {block_frames}-frame token blocks")
        return corpus
    release = Release(data)
    cache = _cache_path(release, cache_dir, block_frames)
    if cache.is_file():
        return load_npz(cache)
    seen, jobs = set(), []
    for audio_bytes, meta in audio_members(release):
        digest = hashlib.sha1(audio_bytes).hexdigest()
        if digest not in seen:
            seen.add(digest)
            jobs.append((audio_bytes, meta))
    print(f"corpus: analysing {len(jobs)} distinct clips from {len(release.shards)} shards")
    # spawn, not fork: a forked child of a threaded parent (torch, Ray) can deadlock in its first torch op
    with ProcessPoolExecutor(workers or os.cpu_count(), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_one_thread) as pool:
        done = list(pool.map(_analyze_bytes, [(b, block_frames, m) for b, m in jobs], chunksize=8))
    kept = [(d, m) for d, (_, m) in zip(done, jobs) if d is not None]
    corpus = from_frames([d[0] for d, _ in kept], [m for _, m in kept], [d[1] for d, _ in kept])
    print(f"corpus: {phones.coverage(corpus.phones):.0%} of frames phone-labelled")
    corpus.save(cache)
    # read back: the cache keeps the log-mel in 8 bits, and a first run must train on what every later
    # run (and its resume, which checks the corpus by digest) reads
    return load_npz(cache)


def with_warped_voices(c: Corpus, factors: list[float]) -> Corpus:
    """The corpus plus one vocal-tract-length-perturbed copy per factor, each a new speaker
    ('en_f1~vtlp1.1'): more voices for a decoder that must take timbre from the reference."""
    if not factors:
        return c
    parts = [c.frames(i) for i in range(len(c))]
    meta = list(c.meta)
    for a in factors:
        parts += [features.warp_voice(c.frames(i), a) for i in range(len(c))]
        meta += [{**m, "speaker": f"{m['speaker']}~vtlp{a:g}"} for m in c.meta]
    labels = [c.phone_labels(i) for i in range(len(c))]
    return from_frames(parts, meta, labels * (1 + len(factors)))   # durations kept: so are the phones


def with_eq_voices(c: Corpus, copies: int, max_db: float, seed: int = 0) -> Corpus:
    """The corpus plus `copies` copies of every clip under a random smooth spectral tilt and EQ, each copy
    of a speaker one new speaker ('en_f1~eq1'): other microphones, rooms and engines colour the whole
    spectrum, and a codec that met only one engine's spectra loses voices it has not heard (docs/voices.md).
    Per copy and speaker one curve over the mel bands: a tilt plus two cosine bumps, at most max_db
    (seeded, so a run is replayable); F0 and durations are kept."""
    if copies < 1:
        return c
    parts = [c.frames(i) for i in range(len(c))]
    meta = list(c.meta)
    for k in range(1, copies + 1):
        curves = {}
        for i in range(len(c)):
            spk = c.meta[i]["speaker"]
            if spk not in curves:
                curves[spk] = eq_curve(np.random.default_rng([seed, k, _stable(spk)]), max_db)
            fr = c.frames(i)
            parts.append(features.Frames(fr.f0, (fr.mel + curves[spk]).astype(np.float32)))
            meta.append({**c.meta[i], "speaker": f"{spk}~eq{k}"})
    labels = [c.phone_labels(i) for i in range(len(c))]
    return from_frames(parts, meta, labels * (1 + copies))


def with_room_voices(c: Corpus, copies: int, rt60_s=(0.2, 0.8), drr_db=(0.0, 10.0), noise_below_db=(35.0, 55.0),
                     seed: int = 0) -> Corpus:
    """The corpus plus `copies` copies of every clip as heard in a room: a reverberant tail and a noise
    floor, each copy of a speaker one new speaker ('en_f1~room1'), one room per speaker and copy. Users'
    recordings have both and the factory's engines neither; a codec that met only dry, clean speech
    spends its ids on them badly. Made on the log-mel, like the warped and EQ voices, so nothing more
    travels to the GPU machine: per band an exponential energy tail (RT60 drawn from rt60_s, shorter in
    the high bands, as air and walls absorb them) drr_db under the direct sound, then white noise drawn
    noise_below_db under the clip's loudest value (features.noisy_view). F0 and durations are kept."""
    if copies < 1:
        return c
    parts = [c.frames(i) for i in range(len(c))]
    meta = list(c.meta)
    band = np.linspace(0.0, 1.0, features.N_MELS)
    for k in range(1, copies + 1):
        rooms = {}
        for i in range(len(c)):
            spk = c.meta[i]["speaker"]
            if spk not in rooms:
                r = np.random.default_rng([seed, k, _stable(spk), 1])
                rooms[spk] = (r.uniform(*rt60_s) * (1.0 - 0.5 * band), r.uniform(*drr_db),
                              r.uniform(*noise_below_db))
            rt60, drr, below = rooms[spk]
            fr = c.frames(i)
            wet = features.Frames(fr.f0, reverberant_mel(fr.mel, rt60, drr))
            noisy = features.noisy_view(wet, np.random.default_rng([seed, k, i, 2]), (below, below))
            parts.append(noisy)
            meta.append({**c.meta[i], "speaker": f"{spk}~room{k}"})
    labels = [c.phone_labels(i) for i in range(len(c))]
    return from_frames(parts, meta, labels * (1 + copies))


def reverberant_mel(mel: np.ndarray, rt60_s: np.ndarray, drr_db: float) -> np.ndarray:
    """Log-mel (natural-log magnitude) plus a per-band exponential energy tail: each frame's power
    decays 60 dB over rt60_s (per band) and the tail of an impulse carries drr_db less energy than it."""
    from scipy.signal import lfilter
    power = np.exp(2.0 * mel.astype(np.float64))
    decay = np.exp(-np.log(1e6) * features.FRAME_MS / 1000 / np.asarray(rt60_s, np.float64))   # per frame
    tail = np.empty_like(power)
    for b in range(power.shape[1]):              # tail[t] = decay * tail[t-1] + power[t-1]
        tail[:, b] = lfilter([0.0, 1.0], [1.0, -decay[b]], power[:, b])
    wet = power + tail * (1.0 - decay) * 10 ** (-drr_db / 10)
    return (0.5 * np.log(wet)).astype(np.float32)


def eq_curve(rng: np.random.Generator, max_db: float) -> np.ndarray:
    """(N_MELS,) a log-mel offset in nepers: a tilt across the bands plus two cosine bumps, |dB| <= max_db."""
    x = np.linspace(0.0, 1.0, features.N_MELS)
    db = rng.uniform(-1, 1) * (x - 0.5) * 2
    for _ in range(2):
        db += rng.uniform(-0.5, 0.5) * np.cos(np.pi * (rng.uniform(1, 4) * x + rng.uniform(0, 2)))
    db *= max_db / max(np.abs(db).max(), 1e-6) * rng.uniform(0.5, 1.0)
    return (db / (20 * np.log10(np.e))).astype(np.float32)


def _stable(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)


def with_splits(c: Corpus, speakers: dict[str, list[str] | None]) -> Corpus:
    """The corpus with each clip's split set: the overrides' (split -> speakers, for experiments) where
    they name its speaker, else the release's; a release made without splits trains on everything."""
    moved = {}
    known = {m["speaker"].split("~", 1)[0] for m in c.meta}
    for split, names in speakers.items():
        if split not in SPLITS:
            raise ValueError(f"split override {split!r}: the splits are {', '.join(SPLITS)}")
        for name in names or []:
            if name not in known:      # a typo would hold no one out, and the held-out voices be trained on
                raise ValueError(f"editor.split_{'val' if split == 'validation' else split}: speaker {name!r} is not "
                                 f"in the corpus; its speakers are {', '.join(sorted(known))}")
            if moved.setdefault(name, split) != split:
                raise ValueError(f"speaker {name} is given to two splits: {moved[name]} and {split}")
    meta = [{**m, "split": moved.get(m["speaker"].split("~", 1)[0], m.get("split") or "train")} for m in c.meta]
    return Corpus(c.f0, c.mel, c.offsets, meta, c.phones)


def held_out_speakers(c: Corpus) -> list[str]:
    """Speakers never trained on: those of the validation and test splits."""
    return sorted({m["speaker"] for m in c.meta if m.get("split", "train") != "train"})


def subset(c: Corpus, max_hours: float, heldout_clips: int, seed: int = 0,
           language_hours: dict[str, float] | None = None) -> Corpus:
    """At most max_hours of training-split clips (a seeded random pick) plus heldout_clips clips of the other
    splits (validation curve only): how a corpus is cut down to travel to the GPU machine. language_hours caps
    a language's share of those hours (e.g. {"en": 1.2}), so a corpus whose renders are mostly one language
    can still give the words the English recogniser measures a fixed part of the budget."""
    caps = language_hours or {}
    rng = np.random.default_rng(seed)
    lengths = np.diff(c.offsets) * features.FRAME_MS / 1000 / 3600
    is_train = [m.get("split", "train") == "train" for m in c.meta]
    train = [i for i in rng.permutation(len(c)) if is_train[i]]
    held = [i for i in rng.permutation(len(c)) if not is_train[i]][:heldout_clips]
    keep = set(held)
    hours = 0.0
    per_language: dict[str, float] = {}
    for i in train:
        if hours + lengths[i] > max_hours:
            break
        lang = c.meta[i]["language"]
        if per_language.get(lang, 0.0) + lengths[i] > caps.get(lang, math.inf):
            continue
        keep.add(i)
        hours += lengths[i]
        per_language[lang] = per_language.get(lang, 0.0) + lengths[i]
    return c._take(sorted(keep))


def language_caps(spec: str | None) -> dict[str, float]:
    """"en=1.2,zh=0.7" -> {"en": 1.2, "zh": 0.7}; a malformed entry is an error naming it."""
    caps = {}
    for part in filter(None, (spec or "").split(",")):
        lang, _, hours = part.partition("=")
        try:
            caps[lang.strip()] = float(hours)
        except ValueError:
            raise ValueError(f"--language-hours: {part!r} is not LANGUAGE=HOURS (e.g. en=1.2)") from None
        if not lang.strip() or caps[lang.strip()] < 0:
            raise ValueError(f"--language-hours: {part!r} is not LANGUAGE=HOURS with hours >= 0")
    return caps


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="Analyse shards into a corpus .npz (optionally cut down).")
    ap.add_argument("data", help="release or pipeline dir, shards folder, .tar, glob, or a comma-separated list")
    ap.add_argument("out", help="corpus .npz to write")
    ap.add_argument("--cache-dir", default=".cache")
    ap.add_argument("--block-frames", type=int, default=12)
    ap.add_argument("--max-hours", type=float, default=None)
    ap.add_argument("--language-hours", default=None,
                    help="with --max-hours: a cap per language, e.g. en=1.2,zh=0.7")
    for split in SPLITS:
        ap.add_argument(f"--{split}", default=None, help=f"speakers (comma-separated) put in the {split} split "
                                                        "instead of the release's own")
    ap.add_argument("--heldout-clips", type=int, default=60)
    a = ap.parse_args(argv)
    c = with_splits(build(a.data, a.cache_dir, a.block_frames),
                    {s: getattr(a, s).split(",") for s in SPLITS if getattr(a, s)})
    if a.max_hours is not None:
        c = subset(c, a.max_hours, a.heldout_clips, language_hours=language_caps(a.language_hours))
    c.save(a.out)
    english = [i for i in range(len(c)) if c.meta[i]["language"] == "en"]
    unaligned = sum(phones.coverage(c.phone_labels(i)) == 0 for i in english)
    print(f"{a.out}: {len(c)} clips, {c.hours():.2f} h, speakers {c.speakers()} (held out {held_out_speakers(c)}), "
          f"{phones.coverage(c.phones):.0%} of frames phone-labelled ({unaligned} of {len(english)} English clips "
          f"unaligned), {Path(a.out).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
