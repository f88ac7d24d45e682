#!/usr/bin/env bash
# int8 beside bf16 on the benchmark's prompts, judged by judge-v2, on the GPU machine
# (bench/int8_quality_gpu.py).
#   run(command="bash bench/int8_quality_gpu.sh", carry=[".gpu_data/bench_iter0", ".whl"])
# (the tree and what is carried must stay under 64 MiB: move the per-clip bench/results/*/results.json
# out of the working tree for the call)
# .gpu_data/bench_iter0: the Iter0 clips of the prompts *-000 of the shipped editor's benchmark run
# (pipeline.n=3, emotions and styles; audio/editor/own/<id>/iter0.flac) as <id>.flac, the manifest.json
# of those 24, and mel_basis.npy (scorers/judge/logmel.py's filters: no librosa there); 1.5 MB.
set -eo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# the codec's readers and F0 (wheels in .whl, see bench/editor_llm_gpu_speed.sh); carry only these
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/soundfile-*.whl .whl/cffi-*.whl \
  .whl/pycparser-*.whl .whl/soxr-*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pyworld-*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 bench/int8_quality_gpu.py .gpu_data/bench_iter0 "$OUT" "$@" 2>&1 | grep -v "Loading weights" | tee "$OUT/int8_quality_gpu.log"
