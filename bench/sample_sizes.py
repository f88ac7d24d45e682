"""Bytes per sample of released pipelines, by member (docs/samples.md, "Size").

    .venv/bin/python bench/sample_sizes.py outputs/emotion_triplets outputs/speed_triplets ...

Prints one markdown row per pipeline directory: samples, tar bytes per sample (headers included)
and the mean bytes of each member."""
import sys
import tarfile
from collections import Counter
from pathlib import Path


def sizes(pipeline_dir: Path) -> tuple[int, int, dict]:
    members, n, total = Counter(), 0, 0
    for shard in sorted((pipeline_dir / "shards").glob("*.tar")):
        total += shard.stat().st_size
        with tarfile.open(shard) as t:
            for m in t.getmembers():
                suffix = m.name.split(".", 1)[1]
                members[suffix] += m.size
                n += suffix == "json"
    return n, total // max(n, 1), {k: v // max(n, 1) for k, v in sorted(members.items())}


def main(dirs: list[str]):
    print("| pipeline | samples | tar bytes/sample | bytes/sample by member |\n|---|---|---|---|")
    for d in dirs:
        n, per, by = sizes(Path(d))
        print(f"| {Path(d).name} | {n} | {per:,} | {', '.join(f'{k} {v:,}' for k, v in by.items())} |")


if __name__ == "__main__":
    main(sys.argv[1:])
