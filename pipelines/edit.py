"""pipeline=edit data=RELEASE: the audio LLM edits every sample of a split, each with its own edit; or
pipeline=edit source=folder source.root=DIR pipeline.edit_type=T pipeline.edit_info=I: every clip of a
folder gets that one edit (pipelines/llm_over_release.py)."""
from pipelines import llm_over_release


def run(cfg):
    return llm_over_release.run(cfg, "edit")
