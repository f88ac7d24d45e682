#!/usr/bin/env bash
# One call on the GPU machine: the reward model, DPO and PPO on the shipped SFT editor
# (editor/artifacts/editor-llm-v12), one process each, no Ray or Hydra (bench/preference_gpu.py):
#   run(command="PAIRS=bench/results/preference/pairs.parquet bash bench/preference_gpu.sh ppo.max_minutes=4")
# PAIRS empty: a planted preference (chosen answers all low codec ids, rejected all high), a speed check.
set -eo pipefail
OUT=${OUT:-/tmp/out}
PAIRS=${PAIRS:-}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ -z "$PAIRS" ]; then
  python3 bench/planted_pairs.py /tmp/planted && PAIRS=/tmp/planted/pairs.parquet
fi
python3 bench/preference_gpu.py "$PAIRS" /tmp/pref "$OUT" "$@" 2>&1 | grep -v "Loading weights\|Writing model" \
  | tee "$OUT/preference_gpu.log"
