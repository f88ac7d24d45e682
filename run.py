"""Entry point: python run.py pipeline=NAME [overrides]."""
import importlib
import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIGS = Path(__file__).resolve().parent / "configs"


# pipelines whose model is given as editor=DIR (and judge=DIR, reward=DIR) on the command line
MODEL_SHORTHAND = ("edit_benchmark", "preference_pairs", "train_reward", "train_dpo", "train_ppo")
# pipelines whose audio LLM is given as llm=DIR
LLM_SHORTHAND = ("demo",)


def model_shorthand(argv: list[str]) -> list[str]:
    """`pipeline=edit_benchmark editor=DIR judge=DIR`, as such a command is usually written:
    `editor` is also the codec's config group, so there editor=X, judge=X, reward=X and pairs=X mean
    pipeline.editor, pipeline.judge, pipeline.reward and pipeline.pairs, unless X names one of the
    group's configs (configs/editor/X.yaml). Likewise `pipeline=demo llm=DIR`: `llm` is also the
    group of LLM size presets (configs/llm/X.yaml)."""
    keys = set()
    if any(f"pipeline={name}" in argv for name in MODEL_SHORTHAND):
        keys |= {"editor", "judge", "reward", "pairs"}
    if any(f"pipeline={name}" in argv for name in LLM_SHORTHAND):
        keys.add("llm")
    out = []
    for a in argv:
        key, _, value = a.partition("=")
        if key in keys and not (key in ("editor", "llm") and (CONFIGS / key / f"{value}.yaml").is_file()):
            a = f"pipeline.{key}={value}"
        out.append(a)
    return out


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        module = importlib.import_module(f"pipelines.{cfg.pipeline.name}")
    except ModuleNotFoundError as e:
        sys.exit(f"error: unknown pipeline {cfg.pipeline.name!r} ({e})")
    try:
        module.run(cfg)
    except ValueError as e:  # bad configuration or input: say what, no traceback
        sys.exit(f"error: {e}")


# pyworld's import warns that pkg_resources is deprecated, in every process that reads audio: noise
# that a new user takes for a failure. Set in the environment, so that local Ray workers inherit it.
QUIET = "ignore:pkg_resources is deprecated:UserWarning"

if __name__ == "__main__":
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), QUIET)))
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    sys.argv[1:] = model_shorthand(sys.argv[1:])
    main()
