#!/usr/bin/env bash
# The emotion/style benchmark of one editor for the preference comparison (docs/preference.md).
# usage: bash bench/preference_benchmark_cpu.sh NAME EDITOR_DIR   (RES: where its tables go; the first
# run's, of editor-llm-v3, went to bench/results/preference/bench_NAME)
set -euo pipefail
cd "$(dirname "$0")/.."
RES=${RES:-bench/results/preference_v10/bench_$1}; mkdir -p $RES
CMD=(.venv/bin/python run.py pipeline=edit_benchmark pipeline.editor=$2 pipeline.judge=scorers/artifacts/judge-v2
     pipeline.n=3 pipeline.paralinguistic=[] pipeline.generalisation=[] pipeline.baselines=[] pipeline.paralinguistic_baselines=false
     pipeline.device=cpu output_dir=${OUT_DIR:-/work/data/bench_$1} ray.progress=false)
echo "command: RAY_AUTH_MODE=disabled ${CMD[*]}" | tee $RES/run.log
start=$(date +%s)
RAY_AUTH_MODE=disabled "${CMD[@]}" 2>&1 | grep --line-buffered -v "pkg_resources\|UserWarning\|Loading weights" >> $RES/run.log
echo "wall: $(( $(date +%s) - start )) s on $(nproc) cores" | tee -a $RES/run.log
REL=${OUT_DIR:-/work/data/bench_$1}/edit_benchmark/latest
cp $REL/tables.md $REL/run.json $REL/results.json $RES/    # results.json: per clip, what bench/paired_benchmark.py pairs
