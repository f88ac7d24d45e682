#!/usr/bin/env bash
# The data behind the shipped audio LLM: every factory pipeline over a voice bank of
# 18 speakers per language (voice_bank.per_language=18: the hash split then leaves two test speakers
# per language, en_f1 en_f2 zh_m1 zh_fd7, that the LLM never trains on), emotions and styles held to
# the seed benchmark's categories, each release tokenized into a token release. 2-core machine; the
# log is bench/results/editor_llm/data_v3.log (v2 was the same recipe at half the
# texts: emotion 4, style 2, paralinguistic 1 per tag, 6 source texts per speaker; a rerun renders only what
# is new, the factory reuses finished samples). Usage: bash bench/editor_llm_data.sh [output_dir]
# Growing it (v4's data): SRC_TEXTS=N source texts per speaker for speed/denoise/trim (12), EXTRA_DIR=DIR
# adds DIR/<language>/neutral.txt to their sentence pool (python -m tts.sentence_maker writes one),
# TOKENIZE=0 leaves the tokenizing for later (another codec). More emotion and style text (v5's data):
# TAG_DIR=DIR adds DIR/<language>/<tag>.txt to the emotion and style sentences (python -m tts.sentence_maker
# --tags writes them) and turns on texts.rotate_per_speaker; EMO_TEXTS / STYLE_TEXTS texts per tag and
# speaker (8 / 4); PARA_TEXTS texts per paralinguistic tag (2); ONLY="emotion_triplets style_triplets" runs
# just those pipelines. editor-llm-v5 and v10 learnt from: TAG_DIR=data/tag_texts EMO_TEXTS=12 STYLE_TEXTS=8
# SRC_TEXTS=18 EXTRA_DIR=data/extra_texts bash bench/editor_llm_data.sh outputs_v5 (log data_v5.log);
# editor-llm-v12 from about twice the pairs per speaker, the same voices and tag texts (log v12/data_v6.log):
# TAG_DIR=data/tag_texts EMO_TEXTS=24 STYLE_TEXTS=16 SRC_TEXTS=30 PARA_TEXTS=4 EXTRA_DIR=data/extra_texts
# TOKENIZER=editor/artifacts/tokenizer-v10 bash bench/editor_llm_data.sh outputs_v6
# outputs_v7 (log v14/data_v7.log) grows a copy of outputs_v6 the same way (each speaker's window of its tag's
# texts only lengthens, so every finished sample is reused): EMO_TEXTS=36 STYLE_TEXTS=32 SRC_TEXTS=45 PARA_TEXTS=4.
# TAG_LATER=DIR adds a later generation of tag sentences (texts.later_dirs; python -m tts.sentence_maker
# --tags --skip 2220 wrote data/tag_texts_2 after data/tag_texts), said after each speaker's texts of TAG_DIR,
# so EMO_TEXTS / STYLE_TEXTS past that window's end (56 English, 49 Mandarin per train speaker) bring new texts.
# outputs_v8 (log v15/data_v8.log) grows a copy of outputs_v7 so: ONLY="emotion_triplets style_triplets"
# TAG_DIR=data/tag_texts TAG_LATER=data/tag_texts_2 EMO_TEXTS=66 STYLE_TEXTS=62 (the other releases stay v7's).
# Other banks: VOICES speakers per language (18), LANGS (en,zh), BANK_EXTRA more overrides, TOKENIZER
# another codec's tokenizer; outputs_v7en (docs/llm.md, "Next") is the diverse English bank without flite:
# LANGS=en BANK_EXTRA="voice_bank=generated_engines voice_bank.base_voices.en=[piper:joe,festival:kal_diphone,
# festival:ked_diphone,festival:cmu_us_slt_arctic_hts]" TOKENIZER=.editor_data/codec_v6/tokenizer-v6 (one word, no break).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs}
PY=.venv/bin/python
export RAY_AUTH_MODE=disabled
BANK="voice_bank.per_language=${VOICES:-18} languages=[${LANGS:-en,zh}] source.texts_per_speaker=${SRC_TEXTS:-12} ${BANK_EXTRA:-}"
SRC="${EXTRA_DIR:+texts.extra_dir=$EXTRA_DIR}"
TAGS="${TAG_DIR:+texts.extra_dir=$TAG_DIR texts.rotate_per_speaker=true}${TAG_LATER:+ texts.later_dirs=[$TAG_LATER]}"
# step NAME CMD...: the run's summary lines here, its whole output in $OUT/logs/NAME.log; a failed run
# is named with its last lines, the next pipelines still run, and the script exits non-zero at the end
FAILED=""
step() {
  local name=$1; shift
  mkdir -p "$OUT/logs"
  if "$@" > "$OUT/logs/$name.log" 2>&1; then
    grep -E "^(==|   |error)" "$OUT/logs/$name.log" || true
  else
    echo "== $name FAILED (exit $?), the end of $OUT/logs/$name.log:"; tail -5 "$OUT/logs/$name.log"
    FAILED="$FAILED $name"
  fi
}
for p in "emotion_triplets texts_per_tag=${EMO_TEXTS:-8} emotions=[happy,angry,sad,fear,surprised] $TAGS" \
         "style_triplets texts_per_tag=${STYLE_TEXTS:-4} styles=[child,older,exaggerated,recite,generous,act_coy,whisper] $TAGS" \
         "speed_triplets $SRC" "denoise_triplets $SRC" "trim_triplets $SRC" "paralinguistic_quadruplets pipeline.texts_per_tag=${PARA_TEXTS:-2}"; do
  set -- $p
  [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]] || continue
  echo "== $(date -u +%H:%M:%S) $p"
  step $1 $PY run.py pipeline=$1 "${@:2}" $BANK output_dir=$OUT ray.progress=false
  # a failed factory run is not tokenized: its output dir may hold an earlier run's release
  [ "${TOKENIZE:-1}" = 0 ] || [[ " $FAILED " == *" $1 "* ]] || step ${1}_tokens $PY run.py pipeline=tokenize data=$OUT/$1 output_dir=$OUT ${TOKENIZER:+pipeline.tokenizer=$TOKENIZER} ray.progress=false
done
echo "== $(date -u +%H:%M:%S) done${FAILED:+; FAILED:$FAILED}"
du -sh $OUT/*_tokens/latest/shards 2>/dev/null || true
[ -z "$FAILED" ]
