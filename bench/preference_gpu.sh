#!/usr/bin/env bash
# One call on the GPU machine: pipeline=train_reward and pipeline=train_dpo on the shipped SFT editor
# (editor/artifacts/editor-llm-v3), in one process without Ray (pipeline.train.workers=1), on a planted
# preference (chosen answers all low codec ids, rejected all high; prompts of real edit length) until
# real pairs exist: it measures speed and checks the GPU path end to end. As bench/editor_llm_gpu.sh:
#   run(command="OUT=$OUT bash bench/preference_gpu.sh", carry=[".whl"])
# Not run yet: on 2026-12-02 the device tool refused the call (working tree over its 64 MiB limit, with
# or without the codec artifacts), so its first real run is still to come.
set -eo pipefail
OUT=${OUT:-/tmp/out}
PAIRS=${PAIRS:-}          # real pairs tables (comma-separated); empty: the planted ones below
STEPS=${STEPS:-150}
mkdir -p "$OUT" /tmp/res
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee /tmp/res/gpu.txt
if [ -z "$PAIRS" ]; then
  python3 bench/planted_pairs.py /tmp/pairs && PAIRS=/tmp/pairs
fi
# RUNS: "artifact:pipeline:overrides" separated by '|'
RUNS=${RUNS:-"reward:train_reward:|dpo:train_dpo:"}
IFS='|' read -ra R <<< "$RUNS"
for r in "${R[@]}"; do
  IFS=':' read -r name p extra <<< "$r"
  echo "== $name: $p $extra"
  python3 run.py pipeline=$p editor=editor/artifacts/editor-llm-v3 "pairs=[$PAIRS]" output_dir=/tmp/o \
    pipeline.artifact_out=/tmp/o/$name pipeline.device=cuda pipeline.train.steps=$STEPS pipeline.train.eval_every=50 \
    $extra 2>&1 | tee /tmp/res/$name.log | grep -v "^{" | tail -4
  cp /tmp/o/$name/training.json /tmp/res/$name.training.json
  cp /tmp/o/$name/curves.png /tmp/res/$name.curves.png
done
(cd /tmp/res && tar cf "$OUT/results.tar" .)
