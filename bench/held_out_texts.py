"""Do earlier data sets' validation and test texts stay out of a grown data set's training texts? A model
trained on the grown data is evaluated on the earlier test split, which is only fair if it never trained
on those sentences. Reads the factory's manifests (every *_triplets and the paralinguistic release).

    python bench/held_out_texts.py --train outputs_v8 --held outputs_v5,outputs_v6,outputs_v7 [--out FILE.json]

Exits non-zero when any held-out text is a training text."""
import argparse
import glob
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

PIPELINES = ("*_triplets", "paralinguistic_quadruplets")


def texts(out_dir: str, split: str) -> set[str]:
    manifests = [m for p in PIPELINES for m in glob.glob(f"{out_dir}/{p}/manifest.parquet")]
    if not manifests:
        raise SystemExit(f"{out_dir}: no factory manifest (*_triplets/manifest.parquet)")
    out = set()
    for m in manifests:
        t = pq.read_table(m, columns=["split", "text"]).to_pandas()
        out |= set(t[t.split == split].text)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="the grown output dir")
    ap.add_argument("--held", required=True, help="earlier output dirs, comma-separated")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    train = texts(a.train, "train")
    report = {"train": a.train, "train_texts": len(train), "held": {}}
    for d in a.held.split(","):
        for split in ("validation", "test"):
            held = texts(d, split)
            report["held"][f"{d}/{split}"] = {"texts": len(held), "in_training": len(held & train)}
    print(json.dumps(report, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return 1 if any(v["in_training"] for v in report["held"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
