#!/usr/bin/env bash
# One call on the H200 GPU machine for speed only: the LLM's generation speed per decode-step mode
# (eager, CUDA graph, compiled + graph), batch 1 and batched, the codec's decode alone, and training
# throughput/MFU per attention kernel for packed rows (sdpa mask, flex). Run as:
#   run(command="OUT=$OUT LLM=editor/artifacts/editor-llm-v2 bash bench/editor_llm_gpu_speed.sh", carry=[".gpu_data", ".whl"])
set -eo pipefail
OUT=${OUT:-/tmp/out}
LLM=${LLM:-editor/artifacts/editor-llm-v2}
mkdir -p "$OUT" /tmp/res
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee /tmp/res/gpu.txt
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a /tmp/res/gpu.txt
DATA=$(ls -d .gpu_data/tokens/* | paste -sd, -)
timeout 300 python3 bench/editor_llm_speed.py --llm "$LLM" --data "$DATA" --batch 64 256 \
  --out "$OUT/speed_h200.json" 2>&1 | grep -v Warning | tail -5 || echo "speed bench failed or timed out"
for a in ${ATTN:-sdpa flex}; do
  timeout 120 python3 bench/llm_throughput.py base_0p5b 2048 16 20 1 $a 2>&1 | grep -v -i warn | tail -3 | tee -a "$OUT/llm_throughput.txt"
done
ls -la "$OUT"
