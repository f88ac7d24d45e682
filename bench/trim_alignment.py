"""Is a silence-trim answer a copy of its source in token ids? Joins on the token grid against plain joins.

    python bench/trim_alignment.py OUT_JSON --release TRIM_RELEASE [--n 12] [--tokenizer DIR]

For English silence-trim pairs of a release, the source (speech with silences put in) is joined again
from its stored VAD segments (core/augment.py JoinSegments) in two ways: gaps of exactly padding_s
(align_s = 0, the factory's joins until align_s), and gaps lengthened so that every segment moves by whole
120 ms token blocks (align_s = 0.12, the factory's default since). Each answer is encoded with the
tokenizer, as it is and with the speech frames of its speech mean taken within 30 dB of the loudest
(tokenizer inputs speech_db = 30: appended or removed silence no longer moves that mean), and scored as
the share of its ids found in order in its source's ids (longest common subsequence / answer length, per
stream; bench/token_stability.py --pairs). A copy in ids gives about 1; what the LLM can learn to copy.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from core import augment  # noqa: E402
from core.reader import Release  # noqa: E402
from editor import features  # noqa: E402
from editor.corpus import decode_audio  # noqa: E402
from editor.tokenizer import DualCodebookTokenizer  # noqa: E402
from token_stability import lcs_share, trim_keys  # noqa: E402

STREAMS = ("linguistic", "semantic")


def pairs(path: str, n: int) -> list[tuple[np.ndarray, dict]]:
    rel = Release(path)
    return [(decode_audio(rel.read(k, "src.flac")), rel.sample(k).json) for k in trim_keys(rel, n)]


def shares(tok: DualCodebookTokenizer, src: np.ndarray, answers: dict[str, np.ndarray]) -> dict[str, list[float]]:
    s_ids = tok.encode([features.analyze(src, tok.block)])[0]
    out = {}
    for name, y in answers.items():
        t_ids = tok.encode([features.analyze(y, tok.block)])[0]
        out[name] = [lcs_share(t_ids[k], s_ids[k]) for k in range(2)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--release", required=True)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--tokenizer", default="editor/artifacts/tokenizer-v10")
    a = ap.parse_args()
    data = pairs(a.release, a.n)
    if not data:
        raise SystemExit(f"--release {a.release}: no English silence_trim samples")
    report = {"command": " ".join(["python bench/trim_alignment.py", *sys.argv[1:]]), "pairs": len(data)}
    for inputs in ("as trained", "speech_db 30"):
        tok = DualCodebookTokenizer.load(a.tokenizer)
        if inputs != "as trained":
            tok.cfg["inputs"] = {**(tok.cfg.get("inputs") or {}), "speech_db": 30.0}
        rows = []
        for src, j in data:
            pad = next(d["padding_s"] for d in j["recipe"] if d["op"] == "join_segments")
            segs = j["vad_segments_s"]
            rows.append(shares(tok, src, {
                "plain joins (align_s 0)": augment.JoinSegments(segs, pad)(src, features.SAMPLE_RATE),
                "joins on the token grid (align_s 0.12)": augment.JoinSegments(segs, pad, 0.12)(src, features.SAMPLE_RATE),
            }))
        report[f"{tok.cfg['version']}, inputs {inputs}"] = {
            name: {s: round(float(np.median([r[name][k] for r in rows])), 3) for k, s in enumerate(STREAMS)}
            for name in rows[0]}
        print(inputs, json.dumps(report[f"{tok.cfg['version']}, inputs {inputs}"]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
