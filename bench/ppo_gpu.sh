#!/usr/bin/env bash
# bench/ppo_gpu.py on the GPU machine (no Ray there: pipeline=train_ppo runs in one process anyway).
#   run(command="OUT=$OUT bash bench/ppo_gpu.sh pipeline.train.steps=40 pipeline.train.critic_warmup=10")
set -eo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 bench/ppo_gpu.py /tmp/ppo "$@" 2>&1 | grep -v "Loading weights\|Writing model" | tee "$OUT/ppo_gpu.log"
cp /tmp/ppo/ppo/training.json /tmp/ppo/ppo/training_log.jsonl /tmp/ppo/ppo/ppo_curve.png "$OUT/"
