"""pipeline=edit data=RELEASE: the audio LLM edits every sample of a split (pipelines/llm_over_release.py)."""
from pipelines import llm_over_release


def run(cfg):
    return llm_over_release.run(cfg, "edit")
