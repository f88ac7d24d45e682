#!/usr/bin/env bash
# One call on the H200 GPU machine: tokenizer throughput on the GPU, training throughput of the LLM
# presets (compiled), the shipped LLM's training (`python run.py pipeline=train_editor`, the same
# command as anywhere) and its generation speed. Ray cannot travel there, so everything runs in one
# process (editor.train.workers=1). Prepared here by bench/editor_llm_gpu_prepare.sh, run as:
#   run(command="OUT=$OUT bash bench/editor_llm_gpu.sh", carry=[".gpu_data", ".whl"])
# Results come back under $OUT: the LLM (safetensors shards + llm_files.tar) and results.tar.
set -eo pipefail
OUT=${OUT:-/tmp/out}
MINUTES=${MINUTES:-5.0}
EXTRA=${EXTRA:-}         # more train_editor overrides, e.g. "pipeline.train.eval_every=50"
mkdir -p "$OUT" /tmp/res
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
for TOKENS in .gpu_data/tokens.tar.xz .gpu_data/tokens.tar.gz; do [ -f $TOKENS ] && break; done  # the prepare script's .xz, or an older .gz
python3 bench/untar.py $TOKENS .gpu_data
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee /tmp/res/gpu.txt
if [ -z "$SKIP_BENCH" ]; then  # SKIP_BENCH=1: only train and time generation
  python3 bench/tokenize_throughput.py --data .gpu_data/audio --device cuda --max-samples 100 \
    --out /tmp/res/tokenize_h200.json 2>&1 | tail -20
  for p in "small 2048 32 30 1" "base_0p5b 2048 16 20 1"; do
    python3 bench/llm_throughput.py $p 2>&1 | tail -2 | tee -a /tmp/res/llm_throughput.txt
  done
fi
# DATA_DIRS: which of the output dirs that travelled this training reads, comma-separated (default all)
DATA=$(for o in $(echo "${DATA_DIRS:-$(ls .gpu_data/tokens)}" | tr , ' '); do ls -d .gpu_data/tokens/$o/*_tokens; done | paste -sd, -)
LLM=/tmp/o/${VERSION:-editor-llm-v11}
# CANDIDATES: training settings to compare, '|' between sets (e.g. "pipeline.train.lr=0.0005|pipeline.train.lr=0.001");
# each trains for MINUTES and the one with the lowest validation loss is published as $LLM
IFS='|' read -ra CANDS <<< "${CANDIDATES:- }"
train() {  # train ARTIFACT_DIR [overrides...]
  local dir=$1; shift
  python3 run.py pipeline=train_editor "data=[$DATA]" output_dir=/tmp/o pipeline.artifact_out=$dir pipeline.version=${VERSION:-editor-llm-v11} \
    pipeline.checkpoint_dir=$dir.checkpoints editor.device=cuda pipeline.train.max_minutes=$MINUTES $EXTRA "$@" 2>&1 \
    | tee -a /tmp/res/train.log | grep -v "^{" | tail -20
}
i=0
rm -rf /tmp/o/cand*     # a warm machine may hold an earlier call's candidates (KEEP_ALL would send them back)
for c in "${CANDS[@]}"; do
  i=$((i+1)); echo "== candidate $i: $c" | tee -a /tmp/res/train.log
  rm -rf /tmp/o/cand$i /tmp/o/cand$i.checkpoints /tmp/res/training_cand$i.json
  train /tmp/o/cand$i $c || { echo "== training with attention=flex failed: once more with the mask"
                              train /tmp/o/cand$i $c pipeline.train.attention=mask; }
  cp /tmp/o/cand$i/training.json /tmp/res/training_cand$i.json || true
done
best=$(python3 -c "
import json, glob
r = [(json.load(open(f)).get('best_val_loss') or 1e9, f) for f in glob.glob('/tmp/res/training_cand*.json')]
print(min(r)[1].split('training_')[1][:-5])")
echo "== published: $best" | tee -a /tmp/res/train.log
rm -rf $LLM && mv /tmp/o/$best $LLM      # a warm machine may still hold an earlier call's $LLM
tail -3 /tmp/res/train.log
cp $LLM/*.safetensors "$OUT/"
(cd $LLM && tar cf "$OUT/llm_files.tar" --exclude='*.safetensors' .)
if [ -n "$KEEP_ALL" ]; then  # KEEP_ALL=1: every other candidate comes back too, under $OUT/candN (at most
  for d in /tmp/o/cand*; do  # 8 files come back: two candidates of the small size fit, three do not)
    [ -f "$d/training.json" ] || continue
    mkdir -p "$OUT/$(basename $d)" && cp $d/*.safetensors "$OUT/$(basename $d)/"
    (cd $d && tar cf "$OUT/$(basename $d)/llm_files.tar" --exclude='*.safetensors' .)
  done
fi
(cd /tmp/res && tar cf "$OUT/results.tar" .)    # the model is safe now; the speed bench comes after
# SPEED_ARGS: the speed bench's options (e.g. "--codec none --guidance 1.5": the LLM alone, guided and not)
[ -n "$SKIP_SPEED" ] || timeout ${SPEED_S:-240} python3 bench/editor_llm_speed.py --llm $LLM --data "$DATA" \
  ${SPEED_ARGS:---batch 64 256 512} --out /tmp/res/speed_h200.json 2>&1 | grep -v Warn | tail -5 || echo "speed bench failed or timed out"
(cd /tmp/res && tar cf "$OUT/results.tar" .)
ls -la "$OUT"
