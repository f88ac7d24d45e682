#!/usr/bin/env bash
# The served editor's rows (bench/serving_gpu.py, SERVING_ROWS=1) for an earlier commit's editor and this
# tree's, in one call on the same machine: before, after, before again (the machine's drift), then this
# tree's timeline of 64 clients (SERVING_TIMELINE=1). The earlier editor's code travels as a tarball:
#   git archive -o .gpu_data/before.tar.gz COMMIT editor/*.py editor/llm editor/serve core $(git ls-tree -r --name-only COMMIT tts scorers | grep "\.py$")
#   bash bench/travel_light.sh out serve
#   run(command="bash bench/serving_before_after.sh", carry=[".gpu_data/clips", ".gpu_data/before.tar.gz", the five wheels])
#   bash bench/travel_light.sh back
# Both trees run this tree's bench script and the same artifacts (editor/artifacts, linked into the earlier tree).
source bench/gpu_codec_env.sh
BEFORE=/tmp/before
mkdir -p $BEFORE/bench && tar xzf .gpu_data/before.tar.gz -C $BEFORE
ln -sfn "$PWD/editor/artifacts" $BEFORE/editor/artifacts
cp bench/serving_gpu.py bench/long_edit.py $BEFORE/bench/
# PASSES and TIMELINE (1 or 0) shorten a call that would not fit the 10 minutes a device call may take
for pass in ${PASSES:-before after before_again}; do
  tree=$([ $pass = after ] && echo "$PWD" || echo $BEFORE)
  mkdir -p "$OUT/$pass"
  (cd "$tree" && SERVING_ROWS=1 PYTHONPATH=/tmp/site:$tree python3 bench/serving_gpu.py "$OLDPWD/.gpu_data/clips" "$OUT/$pass") 2>&1 \
    | grep -v "Loading weights\|pkg_resources\|UserWarning\|warnings.warn" | tee "$OUT/$pass/serving_gpu.log"
done
if [ "${TIMELINE:-1}" = 1 ]; then
  mkdir -p "$OUT/timeline"
  SERVING_TIMELINE=1 python3 bench/serving_gpu.py .gpu_data/clips "$OUT/timeline" 2>&1 | grep "^timeline"
fi
rm -f "$OUT/gpu.txt"     # at most 8 files come back; each serving_gpu.json names the GPU
