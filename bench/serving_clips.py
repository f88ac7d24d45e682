"""The clips the serving benches read (bench/serving_gpu.py, bench/long_edit.py, bench/f0_decimation.py --clips):
clean speech of speakers no model trained on, as NAME.flac (16 kHz) + NAME.json ({"text", "speaker",
"language", "key"}), a folder small enough to travel to the GPU machine.

    python bench/serving_clips.py RELEASE OUT_DIR [--per-language 2] [--split test|any] [--min-s 2.5 --max-s 4.0]

RELEASE: any factory release with clean speech, e.g. outputs/speed_triplets (its tgt is the clip as
spoken) or outputs/emotion_triplets (its src, the neutral prompt's text). One clip per speaker, the
first in manifest order whose length is within [min_s, max_s]; per-language speakers in sorted order,
so the same release always gives the same folder."""
import argparse
import json
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.reader import Release  # noqa: E402
from editor.corpus import decode_audio  # noqa: E402

SR = 16000
CLEAN_IS_TARGET = ("speed_edit", "silence_trim", "denoise")   # their src is the altered clip


def pick(release: str, per_language: int, split: str, min_s: float, max_s: float) -> list[dict]:
    rel = Release(release)
    rows = rel.select(split=split)
    picks = []
    for language in sorted(rows["language"].dropna().unique()):
        chosen = {}
        for key, task, speaker in rows[rows["language"] == language][["key", "task", "speaker"]].itertuples(index=False):
            if len(chosen) == per_language:
                break
            if speaker in chosen:
                continue
            member = "tgt.flac" if task in CLEAN_IS_TARGET else "src.flac"
            if member not in rel.locate(key):
                continue
            wav = decode_audio(rel.read(key, member))
            if min_s <= len(wav) / SR <= max_s:
                s = rel.sample(key, members=[])
                chosen[speaker] = {"wav": wav, "text": s.json["text"], "speaker": speaker, "language": language, "key": key}
        if len(chosen) < per_language:
            raise ValueError(f"{release}: only {len(chosen)} {language} speaker(s) of split {split} have a clip of "
                             f"{min_s:g}-{max_s:g} s; {per_language} wanted")
        picks += [chosen[s] for s in sorted(chosen)]
    return picks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("release"), ap.add_argument("out")
    ap.add_argument("--per-language", type=int, default=2)
    ap.add_argument("--split", default="test", help="a split, or 'any' (a release made with splits off)")
    ap.add_argument("--min-s", type=float, default=2.5), ap.add_argument("--max-s", type=float, default=4.0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for c in pick(a.release, a.per_language, None if a.split == "any" else a.split, a.min_s, a.max_s):
        name = f"{c['language']}_{c['speaker']}"
        sf.write(out / f"{name}.flac", c.pop("wav"), SR)
        (out / f"{name}.json").write_text(json.dumps(c, ensure_ascii=False))
        print(f"{name}: {c['text']}")


if __name__ == "__main__":
    main()
