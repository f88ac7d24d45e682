#!/usr/bin/env bash
# The trainer's own MFU at ~0.4 B (`pipeline=train_editor llm=base_0p5b`, FlexAttention, compiled) in one
# GPU call: several settings in turn on the same token releases, each in a process of its own from a cold
# compile. RUNS is a list of NAME or NAME:OVERRIDE,OVERRIDE... (overrides of pipeline=train_editor), e.g.
#   RUNS='look1:pipeline.train.pack_lookahead=1 look8 autotune:pipeline.train.compile_mode=max-autotune-no-cudagraphs'
# (the default is "look1:pipeline.train.pack_lookahead=1 look8"). Every run has 16 rows of 2048 tokens unless
# its overrides say otherwise; SECONDS_EACH (30) of steady training after the compiling step, RUN_LIMIT_S
# (240) for the whole process. Calls before 2026-12-08 used this script's earlier form, whose runs were
# before / after / rows32 / autotune (git show b77e928:bench/trainer_mfu_gpu.sh).
# Prepare here (token releases of a few hundred samples or more, any codec; the weights are not kept):
#   mkdir -p .gpu_data/mfu && tar czhf .gpu_data/mfu/tokens.tar.gz -C DIR emotion_triplets_tokens style_triplets_tokens
#   bash bench/travel_light.sh out llm
#   run(command="OUT=$OUT RUNS='...' bash bench/trainer_mfu_gpu.sh", carry=[".gpu_data/mfu", ".whl"])
#   bash bench/travel_light.sh back
# Each run's steady-state MFU is the median of its logged windows after the first (which compiles).
set -o pipefail
OUT=${OUT:-/tmp/out}
RUNS=${RUNS:-look1:pipeline.train.pack_lookahead=1 look8}
SECONDS_EACH=${SECONDS_EACH:-30}
mkdir -p "$OUT" /tmp/mfu
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/antlr4*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
tar xzf .gpu_data/mfu/tokens.tar.gz -C /tmp/mfu
DATA=$(ls -d /tmp/mfu/*_tokens | paste -sd, -)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
minutes=$(python3 -c "print(round($SECONDS_EACH / 60, 3))")
for run in $RUNS; do
  r=${run%%:*}; overrides=""
  [[ $run == *:* ]] && overrides=$(echo "${run#*:}" | tr ',' ' ')
  echo "=== $r: $overrides" | tee -a "$OUT/runs.log"
  # the overrides come last, so they may change the rows too
  timeout ${RUN_LIMIT_S:-240} python3 run.py pipeline=train_editor "data=[$DATA]" output_dir=/tmp/o_$r \
      llm=base_0p5b editor.device=cuda pipeline.train.rows=16 pipeline.train.steps=100000 \
      pipeline.train.max_minutes=$minutes pipeline.train.log_every=10 pipeline.train.eval_every=100000 \
      pipeline.train.ckpt_every=100000 $overrides 2>&1 | grep -v -i warn > /tmp/run_$r.txt
  # the trainer's line on the model and its examples, then how the run ended
  { grep "^LLM:" /tmp/run_$r.txt; tail -8 /tmp/run_$r.txt; } | tee -a "$OUT/runs.log"
  log=$(find /tmp/o_$r -name training_log.jsonl | head -1)
  [ -n "$log" ] && cp "$log" "$OUT/log_$r.jsonl"
  [ -n "$log" ] && python3 - "$log" "$r" <<'EOF' | tee -a "$OUT/summary.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
steady = [r for r in rows if "mfu" in r][:-1] or rows   # the last window is cut short by the budget
print(f"{sys.argv[2]}: {len(steady)} windows, MFU median {statistics.median(r['mfu'] for r in steady):.4f} "
      f"(min {min(r['mfu'] for r in steady):.4f}, max {max(r['mfu'] for r in steady):.4f}), "
      f"tokens/s median {statistics.median(r['tokens_per_s'] for r in steady):,.0f}, "
      f"rows filled {statistics.median(r.get('fill', float('nan')) for r in steady):.3f}")
EOF
  rm -rf /tmp/o_$r
done
ls -la "$OUT"
