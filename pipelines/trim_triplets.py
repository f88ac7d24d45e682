"""pipeline=trim_triplets (see pipelines/augment.py)."""
from pipelines import augment


def run(cfg):
    return augment.run(cfg, "trim")
