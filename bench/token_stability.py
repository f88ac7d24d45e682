"""Do the codec's ids stay the same when the audio changes in ways they should ignore?

    python bench/token_stability.py OUT_JSON TOKENIZER_DIR [TOKENIZER_DIR ...] [--clips DIR] [--release R --n 24]
        [--pairs TRIM_RELEASE --n-pairs 12]

An LLM learns to copy what a source says only if the same words give the same ids. Per clip, each
tokenizer encodes the clip and a changed copy of it, and the share of ids that agree is taken over the
speech part (frames within 30 dB of the loudest; ids aligned): white noise 80, 60 and 45 dB under the
clip's peak, 0.5 s of silence appended, one token block (120 ms) of silence put before it (ids then
shifted by one block), and the level lowered 1 dB (the semantic stream carries the level, so its ids
may change there by design). Clips: NAME.flac files of --clips, and --n clean clips (tgt.flac of
speed/trim/denoise samples, src.flac otherwise) drawn evenly over a release's speakers.
--pairs: silence-trim pairs of a release (English): the share of the clean answer's ids (tgt.flac) found
in order in its source's (src.flac, the same speech with pauses put in): longest common subsequence /
answer length, per stream; a copy in ids would give about 1.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.reader import Release  # noqa: E402
from editor import features  # noqa: E402
from editor.corpus import decode_audio  # noqa: E402
from editor.tokenizer import DualCodebookTokenizer, speech_mask  # noqa: E402

SR = 16000


def changes(x: np.ndarray, rng) -> dict[str, tuple[np.ndarray, int]]:
    """name -> (changed clip, frames of silence put before it)."""
    peak = float(np.abs(x).max()) or 1.0
    noise = lambda db: (x + rng.normal(0, peak * 10 ** (-db / 20), len(x))).astype(np.float32)
    block = 12 * features.HOP
    return {"noise_-80dB": (noise(80), 0), "noise_-60dB": (noise(60), 0), "noise_-45dB": (noise(45), 0),
            "silence_after_0.5s": (np.concatenate([x, np.zeros(SR // 2, np.float32)]), 0),
            "silence_before_1_block": (np.concatenate([np.zeros(block, np.float32), x]), 12),
            "level_-1dB": ((x * 10 ** (-1 / 20)).astype(np.float32), 0)}


def agreement(tok: DualCodebookTokenizer, x: np.ndarray, rng) -> dict[str, dict[str, float]]:
    fr = features.analyze(x, tok.block)
    base = tok.encode([fr])[0]
    speech = speech_mask(fr.mel, 30.0)
    out = {}
    for name, (y, lead) in changes(x, rng).items():
        ids = tok.encode([features.analyze(y, tok.block)])[0]
        row = {}
        for k, s in enumerate(("linguistic", "semantic")):
            hop = tok.cfg[s]["hop_frames"]
            a, b = base[k], ids[k][lead // hop:]
            n = min(len(a), len(b))
            keep = speech[: n * hop].reshape(n, hop).mean(1) > 0.5
            row[s] = float(np.mean(a[:n][keep] == b[:n][keep])) if keep.any() else float("nan")
        out[name] = row
    return out


def lcs_share(answer: np.ndarray, source: np.ndarray) -> float:
    prev = np.zeros(len(source) + 1, np.int32)
    for x in answer:
        cur = np.zeros_like(prev)
        for j, y in enumerate(source):
            cur[j + 1] = prev[j] + 1 if x == y else max(prev[j + 1], cur[j])
        prev = cur
    return float(prev[-1]) / max(1, len(answer))


def trim_keys(rel: Release, n: int) -> list[str]:
    """The first n English silence-trim samples of a release."""
    return list(rel.select(task="silence_trim", language="en")["key"][:n])


def trim_pairs(path: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rel = Release(path)
    return [tuple(decode_audio(rel.read(k, m)) for m in ("src.flac", "tgt.flac")) for k in trim_keys(rel, n)]


def release_clips(path: str, n: int) -> list[tuple[str, np.ndarray]]:
    rel = Release(path)
    by_speaker = {}
    for key, task, speaker in rel.select()[["key", "task", "speaker"]].itertuples(index=False):
        member = "tgt.flac" if task in ("speed_edit", "silence_trim", "denoise") else "src.flac"
        if member in rel.locate(key):
            by_speaker.setdefault(speaker, []).append((key, member))
    spk = sorted(by_speaker)
    picks = [by_speaker[spk[i % len(spk)]][i // len(spk)] for i in range(n)]
    return [(key, decode_audio(rel.read(key, member))) for key, member in picks]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out"), ap.add_argument("tokenizers", nargs="+")
    ap.add_argument("--clips"), ap.add_argument("--release"), ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--pairs"), ap.add_argument("--n-pairs", type=int, default=12)
    a = ap.parse_args()
    clips = [(f.stem, decode_audio(f.read_bytes())) for f in sorted(Path(a.clips).glob("*.flac"))] if a.clips else []
    if a.release:
        clips += release_clips(a.release, a.n)
    pairs = trim_pairs(a.pairs, a.n_pairs) if a.pairs else []
    res = {"command": "python " + " ".join(sys.argv), "clips": len(clips), "trim_pairs": len(pairs)}
    for t in a.tokenizers:
        tok = DualCodebookTokenizer.load(t)
        res[t] = {}
        if clips:
            rows = [agreement(tok, x, np.random.default_rng(i)) for i, (_, x) in enumerate(clips)]
            res[t] = {c: {s: round(float(np.nanmedian([r[c][s] for r in rows])), 3) for s in ("linguistic", "semantic")}
                      for c in rows[0]}
        if pairs:
            ids = [tok.encode([features.analyze(x, tok.block) for x in p]) for p in pairs]
            res[t]["trim_pairs_answer_ids_in_source_order"] = {
                s: round(float(np.median([lcs_share(tgt[k], src[k]) for src, tgt in ids])), 3)
                for k, s in enumerate(("linguistic", "semantic"))}
        print(t, json.dumps(res[t]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
