"""pipeline=style_triplets: neutral vs speaking-style clones of the same text and speaker."""
from pipelines import triplets


def run(cfg):
    return triplets.run(cfg, "style")
