#!/usr/bin/env bash
# The small releases behind the preference run (docs/preference.md): emotion and style triplets of 4 tags
# each (the tags the first run's pairs covered), a voice bank of 18 speakers per language (the hash split then
# leaves en_f1 en_f2 zh_m1 zh_fd7 as test speakers), tokenized with the shipped codec; and a small
# speed_triplets run whose clean test-split clips the serving benches read (bench/serving_clips.py).
#   bash bench/preference_data_cpu.sh [D]      (default /work/data/pref; ~15 min on the 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-/work/data/pref}
PY=.venv/bin/python
export RAY_AUTH_MODE=disabled
BANK="voice_bank.per_language=18 languages=[en,zh] output_dir=$D ray.progress=false"
for p in "emotion_triplets texts_per_tag=3 emotions=[happy,angry,sad,surprised]" \
         "style_triplets texts_per_tag=2 styles=[child,older,exaggerated,whisper]" \
         "speed_triplets"; do
  set -- $p
  echo "== $(date -u +%H:%M:%S) $p"
  $PY run.py pipeline=$1 "${@:2}" $BANK 2>&1 | grep -E "^(==|   |error)" || true
done
for r in emotion_triplets style_triplets; do
  echo "== $(date -u +%H:%M:%S) tokenize $r"
  $PY run.py pipeline=tokenize data=$D/$r output_dir=$D ray.progress=false 2>&1 | grep -E "^(==|   |error)" || true
done
$PY bench/serving_clips.py $D/speed_triplets .gpu_data/clips
echo "== $(date -u +%H:%M:%S) done"
