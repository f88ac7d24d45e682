#!/usr/bin/env bash
# The data behind the shipped audio LLM: every factory pipeline at its defaults (emotion with all 8
# texts per tag), each tokenized into a token release. 2-core machine; the log is
# bench/results/editor_llm/data.log. Usage: bash bench/editor_llm_data.sh [output_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs}
PY=.venv/bin/python
export RAY_AUTH_MODE=disabled
for p in "emotion_triplets texts_per_tag=8" style_triplets speed_triplets denoise_triplets trim_triplets \
         paralinguistic_quadruplets; do
  set -- $p
  echo "== $(date -u +%H:%M:%S) $p"
  $PY run.py pipeline=$1 "${@:2}" output_dir=$OUT ray.progress=false 2>&1 | grep -E "^(==|   )" || true
  $PY run.py pipeline=tokenize data=$OUT/$1 output_dir=$OUT ray.progress=false 2>&1 | grep -E "^(==|   )" || true
done
echo "== $(date -u +%H:%M:%S) done"
du -sh $OUT/*_tokens/latest/shards
