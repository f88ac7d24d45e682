#!/usr/bin/env bash
# The preference pairs of the first real run (docs/preference.md); D holds the token releases.
set -euo pipefail
cd /work/main
export RAY_AUTH_MODE=disabled
D=/work/data/pref
nice -n 5 .venv/bin/python run.py pipeline=preference_pairs editor=editor/artifacts/editor-llm-v10 \
  "data=[$D/emotion_triplets_tokens,$D/style_triplets_tokens]" pipeline.tasks=[emotion_edit,style_edit,clone] \
  pipeline.prompts_per_task=40 pipeline.k=8 pipeline.threshold=3 writer.max_samples_per_shard=10 \
  output_dir=$D ray.enabled=false ray.progress=false
