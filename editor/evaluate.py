"""Round-trip quality of the codec on held-out speakers: audio -> tokens -> audio.

    python -m editor.evaluate --tokenizer DIR --decoder DIR --data RELEASE [--speakers en_f2,en_m2] \
        [--max-clips 60] [--vocoder harmonic_gl|griffin_lim|source_filter] [--out docs/editor_roundtrip.json]

The held-out speakers are the release's test split, unless --speakers names others (a release made
without splits has none: name them). For every clip of theirs (identical audio once), three
reconstructions are scored
against the original:
  vocoder the vocoder from the original's own frames (log-mel, F0), no tokens: its ceiling;
  self    tokens decoded with the clip itself as the voice reference (the editing case: the source
          clip is the timbre prompt);
  other   tokens decoded with another clip of the same speaker as the reference.
Metrics: pocketsphinx WER (English clips; corpus-level, and its increase over the original's),
resemblyzer speaker similarity to the original, Pearson correlation of F0 on frames voiced in both,
and mel-cepstral distortion (c1..c24 of the 80-band log-mel, speech frames, dB).
"""
import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.reader import Release
from editor import corpus, features
from editor.codec import Codec, synthesize
from editor.features import Frames
from editor.tokenizer import speech_mask
from editor.vocoder import DEFAULT_VOCODER, VOCODERS

TARGETS = {"wer_delta_max": 0.10, "speaker_sim_min": 0.80, "f0_corr_min": 0.8}
MCD_DIMS = 24


def heldout_clips(data: str, speakers: set[str] | None, max_clips: int, seed: int = 0) -> list[tuple[np.ndarray, dict]]:
    """A seeded pick of max_clips distinct clips of the speakers (None: the test split's speakers)."""
    if speakers is None:
        speakers = set(corpus.split_speakers(data, "test"))
    seen, out = set(), []
    for raw, meta in corpus.audio_members(Release(data)):
        digest = hashlib.sha1(raw).hexdigest()
        if meta["speaker"] in speakers and digest not in seen:
            seen.add(digest)
            out.append((corpus.decode_audio(raw), meta))
    if not out:
        raise ValueError(f"data={data}: no clips of speakers {sorted(speakers)}")
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(out))[:max_clips]
    return [out[i] for i in sorted(pick)]


def english_clips(data: str, speakers: str, max_clips: int) -> list[tuple[np.ndarray, dict]]:
    """The English ones among heldout_clips of the comma-separated speakers (for WER-only benches)."""
    return [(x, m) for x, m in heldout_clips(data, set(speakers.split(",")), max_clips) if m["language"] == "en"]


def f0_corr(a: np.ndarray, b: np.ndarray) -> float | None:
    fa, fb = features.f0_track(a), features.f0_track(b)
    n = min(len(fa), len(fb))
    both = (fa[:n] > 0) & (fb[:n] > 0)
    if both.sum() < 10:
        return None  # too few frames voiced in both to correlate
    return float(np.corrcoef(fa[:n][both], fb[:n][both])[0, 1])


def mcd(a: Frames, b: Frames) -> float:
    n = min(len(a), len(b))
    speech = speech_mask(a.mel[:n])
    # conventional cepstral scale (log spectrum = c0 + 2 sum c_k cos(k w)): the orthonormal DCT over
    # N bands is sqrt(2N) times larger
    scale = np.sqrt(2.0 * a.mel.shape[1])
    ca, cb = features.cepstrum(a.mel[:n], MCD_DIMS + 1) / scale, features.cepstrum(b.mel[:n], MCD_DIMS + 1) / scale
    d = (ca - cb)[speech, 1:]
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * (d ** 2).sum(1))))


def stored_tokens(codec: Codec, clips, tokens: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each clip's ids as a token release stores them (pipeline=tokenize), for the round trip of
    the tokens the audio LLM reads instead of a fresh encoding."""
    from core.sample import token_member
    rel = Release(tokens)
    out = []
    for _, m in clips:
        key, suffix = m["member"].split(".", 1)
        ids = np.load(io.BytesIO(rel.read(key, token_member(suffix))), allow_pickle=False)
        out.append(codec.tokenizer.deinterleave(ids))
    return out


def evaluate(codec: Codec, clips, vocoder: str = DEFAULT_VOCODER, log=print, tokens: str | None = None) -> dict:
    from resemblyzer import VoiceEncoder

    from scorers import asr
    from scorers.margin import speaker_similarity
    enc = VoiceEncoder("cpu", verbose=False)
    frames = [codec.analyze(x) for x, _ in clips]
    tokens = stored_tokens(codec, clips, tokens) if tokens else codec.encode_frames(frames)
    by_speaker: dict[str, list[int]] = {}
    for i, (_, m) in enumerate(clips):
        by_speaker.setdefault(m["speaker"], []).append(i)
    other = [next((j for j in by_speaker[m["speaker"]] if j != i), i) for i, (_, m) in enumerate(clips)]
    recon = {"vocoder": synthesize(frames, vocoder, codec.device),
             "self": codec.decode(tokens, frames, vocoder),
             "other": codec.decode(tokens, [frames[j] for j in other], vocoder)}
    rows = []
    for i, (x, m) in enumerate(clips):
        row = {"member": m["member"], "speaker": m["speaker"], "language": m["language"]}
        english = m["language"] == "en" and m["text"]
        if english:
            row["n_words"] = len(asr.words(m["text"]))
            row["wer_original"] = asr.wer_of(x, features.SAMPLE_RATE, m["text"])
        for name, ys in recon.items():
            y = ys[i][: len(x)]
            row[f"{name}_speaker_sim"] = speaker_similarity(x, y, features.SAMPLE_RATE, enc)
            row[f"{name}_f0_corr"] = f0_corr(x, y)
            row[f"{name}_mcd_db"] = mcd(frames[i], features.analyze(y, codec.tokenizer.block))
            if english:
                row[f"{name}_wer"] = asr.wer_of(y, features.SAMPLE_RATE, m["text"])
        rows.append(row)
        if (i + 1) % 10 == 0:
            log(f"evaluate: {i + 1}/{len(clips)} clips")
    return summarize(rows)


def summarize(rows: list[dict]) -> dict:
    en = [r for r in rows if "n_words" in r]
    words = sum(r["n_words"] for r in en) or 1
    corpus_wer = lambda k: sum(r[k] * r["n_words"] for r in en) / words
    out = {"clips": len(rows), "english_clips": len(en), "speakers": sorted({r["speaker"] for r in rows})}
    if en:
        out["wer_original"] = round(corpus_wer("wer_original"), 4)
    for name in ("vocoder", "self", "other"):
        f0 = [r[f"{name}_f0_corr"] for r in rows if r[f"{name}_f0_corr"] is not None]
        s = {"speaker_sim": round(float(np.mean([r[f"{name}_speaker_sim"] for r in rows])), 4),
             "f0_corr": round(float(np.mean(f0)), 4) if f0 else None,
             "mcd_db": round(float(np.mean([r[f"{name}_mcd_db"] for r in rows])), 3)}
        if en:
            s["wer"] = round(corpus_wer(f"{name}_wer"), 4)
            s["wer_delta"] = round(s["wer"] - out["wer_original"], 4)
        s["meets_targets"] = bool(s["speaker_sim"] >= TARGETS["speaker_sim_min"] and (s["f0_corr"] or 0) >= TARGETS["f0_corr_min"]
                                  and s.get("wer_delta", 0.0) <= TARGETS["wer_delta_max"])
        out[name] = s
    out["targets"] = TARGETS
    out["per_clip"] = rows
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--data", required=True, help="the release (or shards) with the held-out speakers' clips")
    ap.add_argument("--speakers", default=None, help="comma-separated; default: the release's test split")
    ap.add_argument("--max-clips", type=int, default=60)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--f0-decimation", type=int, default=1, help="the codec's analysis (features.f0_track)")
    ap.add_argument("--vocoder", default=DEFAULT_VOCODER, choices=sorted(VOCODERS))
    ap.add_argument("--tokens", default=None, help="a token release of --data: decode its stored ids "
                    "(pipeline=tokenize) instead of encoding the clips")
    ap.add_argument("--out", default=None, help="write the JSON report here")
    a = ap.parse_args(argv)
    t0 = time.time()
    codec = Codec.load(a.tokenizer, a.decoder, a.device, a.f0_decimation)
    clips = heldout_clips(a.data, set(a.speakers.split(",")) if a.speakers else None, a.max_clips)
    report = evaluate(codec, clips, a.vocoder, tokens=a.tokens)
    report.update({"command": " ".join(["python -m editor.evaluate", *(argv or sys.argv[1:])]),
                   "tokenizer": codec.tokenizer.cfg["version"], "decoder": codec.decoder.config.version,
                   "synthesis": a.vocoder, "f0_decimation": codec.f0_decimation,
                   "seconds": round(time.time() - t0, 1)})
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "per_clip"}, indent=1))
    return report


if __name__ == "__main__":
    main()
