"""pipeline=emotion_triplets: neutral vs emotional clones of the same text and speaker."""
from pipelines import triplets


def run(cfg):
    return triplets.run(cfg, "emotion")
