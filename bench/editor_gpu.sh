#!/usr/bin/env bash
# Train the default codec on one GPU and time it (what bench/RESULTS.md's editor rows come from).
#   bench/editor_gpu.sh OUT_DIR CORPUS.npz [config overrides for both stages...]
# On a bare machine first install the wheels in .whl (pyworld from its sdist; see docs/editor.md).
# Speed is a separate command on the trained pair:
#   python bench/editor_speed.py --tokenizer OUT_DIR/tokenizer-v2 --decoder OUT_DIR/decoder-v2 \
#     --audio .editor_data/bench_audio --device cuda --out OUT_DIR/speed_gpu.json
set -euo pipefail
OUT=${1:?output dir}; CORPUS=${2:?corpus .npz}; shift 2
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
date -u +"start %T"
python3 run.py pipeline=train_tokenizer data="$CORPUS" output_dir="$OUT" pipeline.artifact_out="$OUT/tokenizer-v2" "$@"
python3 run.py pipeline=train_decoder data="$CORPUS" output_dir="$OUT" pipeline.tokenizer="$OUT/tokenizer-v2" \
  pipeline.artifact_out="$OUT/decoder-v2" "$@"
date -u +"trained %T"
