#!/usr/bin/env bash
# One call on the H200 GPU machine for speed only: the LLM's generation speed (eager and compiled +
# CUDA graph), batch 1, batched, and a request stream through the Editor with the codec decode
# overlapping generation; the codec's decode alone; the trainer itself at ~0.4B (TRAIN_0P5B=1: a
# few hundred steps of pipeline=train_editor llm=base_0p5b, its logged MFU); and, with ATTN="sdpa flex",
# the bare training step per attention kernel for packed rows. Run as:
#   run(command="OUT=$OUT TRAIN_0P5B=1 bash bench/editor_llm_gpu_speed.sh", carry=[".gpu_data", ".whl"])
set -eo pipefail
OUT=${OUT:-/tmp/out}
LLM=${LLM:-editor/artifacts/editor-llm-v12}
mkdir -p "$OUT" /tmp/res
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
for TOKENS in .gpu_data/tokens.tar.xz .gpu_data/tokens.tar.gz; do [ -f $TOKENS ] && break; done  # the prepare script's .xz, or an older .gz
python3 bench/untar.py $TOKENS .gpu_data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee /tmp/res/gpu.txt
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a /tmp/res/gpu.txt
DATA=$(ls -d .gpu_data/tokens/* | paste -sd, -)
timeout ${SPEED_S:-300} python3 bench/editor_llm_speed.py --llm "$LLM" --data "$DATA" --batch 64 256 512 \
  --out "$OUT/speed_h200.json" 2>&1 | grep -v Warning | tail -5 || echo "speed bench failed or timed out"
if [ -n "$TRAIN_0P5B" ]; then   # the trainer itself at ~0.4B: a few hundred steps, its logged MFU (weights not kept)
  timeout ${TRAIN_0P5B_S:-170} python3 run.py pipeline=train_editor "data=[$DATA]" output_dir=/tmp/o05 llm=base_0p5b \
    editor.device=cuda pipeline.train.steps=200 pipeline.train.max_minutes=1.5 pipeline.train.log_every=25 \
    pipeline.train.eval_every=1000 pipeline.train.ckpt_every=1000 2>&1 | tail -30 | tee "$OUT/train_0p5b.txt" || true
  cp /tmp/o05/editor/*/training_log.jsonl "$OUT/train_0p5b_log.jsonl" 2>/dev/null || \
    find /tmp/o05 -name training_log.jsonl -exec cp {} "$OUT/train_0p5b_log.jsonl" \; || true
fi
for a in ${ATTN:-}; do
  timeout 120 python3 bench/llm_throughput.py base_0p5b 2048 16 20 1 $a 2>&1 | grep -v -i warn | tail -3 | tee -a "$OUT/llm_throughput.txt"
done
ls -la "$OUT"
