"""pipeline=clone data=RELEASE: the audio LLM clones every sample's text in its voice prompt
(pipelines/llm_over_release.py)."""
from pipelines import llm_over_release


def run(cfg):
    return llm_over_release.run(cfg, "clone")
