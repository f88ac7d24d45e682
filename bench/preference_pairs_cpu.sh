#!/usr/bin/env bash
# The preference pairs of the shipped editor (docs/preference.md): D holds the token releases that
# bench/preference_data_cpu.sh makes. usage: bash bench/preference_pairs_cpu.sh [D]   (~14 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=disabled
D=${1:-/work/data/pref}
nice -n 5 .venv/bin/python run.py pipeline=preference_pairs editor=editor/artifacts/editor-llm-v12 \
  "data=[$D/emotion_triplets_tokens,$D/style_triplets_tokens]" pipeline.tasks=[emotion_edit,style_edit,clone] \
  pipeline.prompts_per_task=40 pipeline.k=8 pipeline.threshold=3 writer.max_samples_per_shard=10 \
  output_dir=$D ray.enabled=false ray.progress=false
