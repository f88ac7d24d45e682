"""Entry point: python run.py pipeline=NAME [overrides]."""
import importlib
import logging
import sys

import hydra
from omegaconf import DictConfig


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


if __name__ == "__main__":
    main()
