#!/usr/bin/env bash
# The editing benchmark of the shipped editor with the shipped judge on CPU, small n (docs/benchmark.md).
#   bash bench/edit_benchmark_cpu.sh [N]    (EDITOR=DIR, RES=results dir, PYTHON=interpreter, OUT_DIR=output
#   dir, EXTRA="more pipeline overrides", e.g. "pipeline.generalisation=[base_voice,other_engine]")
# The release goes to $OUT_DIR/edit_benchmark/latest (outputs_bench); its tables, results, plots and the
# log are copied to $RES (bench/results/benchmark/).
set -euo pipefail
N=${1:-2}
PY=${PYTHON:-.venv/bin/python}
RES=${RES:-bench/results/benchmark}
OUT_DIR=${OUT_DIR:-outputs_bench}
read -ra EXTRA_ARGS <<< "${EXTRA:-}"
mkdir -p "$RES"
CMD=("$PY" run.py pipeline=edit_benchmark pipeline.editor=${EDITOR:-editor/artifacts/editor-llm-v12}
     pipeline.judge=scorers/artifacts/judge-v2 "pipeline.n=$N" pipeline.device=cpu "output_dir=$OUT_DIR" ray.progress=false "${EXTRA_ARGS[@]}")
echo "command: RAY_AUTH_MODE=disabled ${CMD[*]}" | tee "$RES/run.log"
start=$(date +%s)
RAY_AUTH_MODE=disabled "${CMD[@]}" 2>&1 | grep --line-buffered -v "pkg_resources\|UserWarning" | tee -a "$RES/run.log"
echo "wall: $(( $(date +%s) - start )) s on $(nproc) cores" | tee -a "$RES/run.log"
REL=$OUT_DIR/edit_benchmark/latest
cp "$REL"/tables.md "$REL"/results.json "$REL"/manifest.json "$REL"/rejects.json "$REL"/run.json "$REL"/*.png "$RES"/
