#!/usr/bin/env bash
# Train the default codec on one GPU and time it (what bench/RESULTS.md's editor rows come from).
#   bench/editor_gpu.sh OUT_DIR CORPUS.npz BENCH_AUDIO_DIR
# On a bare machine first install the wheels in .whl (pyworld from its sdist; see docs/editor.md).
set -euo pipefail
OUT=${1:?output dir}; CORPUS=${2:?corpus .npz}; AUDIO=${3:?folder of 16 kHz clips}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
date -u +"start %T"
python3 run.py pipeline=train_tokenizer data="$CORPUS" output_dir="$OUT" pipeline.artifact_out="$OUT/tokenizer-v1"
python3 run.py pipeline=train_decoder data="$CORPUS" output_dir="$OUT" pipeline.tokenizer="$OUT/tokenizer-v1" \
  pipeline.artifact_out="$OUT/decoder-v1"
date -u +"trained %T"
python3 bench/editor_speed.py --tokenizer "$OUT/tokenizer-v1" --decoder "$OUT/decoder-v1" --audio "$AUDIO" \
  --device cuda --out "$OUT/speed_gpu.json"
date -u +"end %T"
