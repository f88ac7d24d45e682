#!/usr/bin/env bash
# Train the default codec on one GPU and time it (what bench/RESULTS.md's editor rows come from).
#   [STAGES="tokenizer decoder"] bench/editor_gpu.sh OUT_DIR CORPUS.npz [config overrides for both stages...]
# Artifacts: OUT_DIR/tokenizer and OUT_DIR/decoder. STAGES runs one stage per call (the device tool
# limits a command to 10 minutes; the decoder stage reads OUT_DIR/tokenizer from an earlier call).
# On a bare machine first install the wheels in .whl (pyworld from its sdist; see docs/editor.md).
# Speed is a separate command on the trained pair:
#   python bench/editor_speed.py --tokenizer OUT_DIR/tokenizer --decoder OUT_DIR/decoder \
#     --audio .editor_data/bench_audio --device cuda --out OUT_DIR/speed_gpu.json
set -euo pipefail
OUT=${1:?output dir}; CORPUS=${2:?corpus .npz}; shift 2
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for stage in ${STAGES:-tokenizer decoder}; do
  date -u +"start $stage %T"
  case $stage in
    tokenizer) python3 run.py pipeline=train_tokenizer data="$CORPUS" output_dir="$OUT" pipeline.artifact_out="$OUT/tokenizer" "$@" ;;
    decoder) python3 run.py pipeline=train_decoder data="$CORPUS" output_dir="$OUT" pipeline.tokenizer="$OUT/tokenizer" \
               pipeline.artifact_out="$OUT/decoder" "$@" ;;
    *) echo "STAGES: unknown stage $stage (tokenizer, decoder)" >&2; exit 2 ;;
  esac
  date -u +"trained $stage %T"
done
