#!/usr/bin/env bash
# Train a codec (tokenizer, then decoder) from a corpus .npz in one call on the GPU machine and send the
# artifacts back under $OUT (each weight file under the 16 MiB a file may have; the rest in one tar).
#   run(command="VERSION=v4 bash bench/codec_gpu.sh .editor_data/corpus_engines.npz", carry=[".editor_data/corpus_engines.npz", ".whl"])
# The tree must travel without editor/artifacts (64 MiB in all with the corpus). Time caps: TOK_MIN and
# DEC_MIN minutes (the two stages and the set-up stay within the 10 minutes a call may run).
set -eo pipefail
CORPUS=${1:?corpus .npz}; shift
OUT=${OUT:-/tmp/out}; V=${VERSION:-v4}; R=/tmp/codec
mkdir -p "$OUT" $R
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
send() {   # artifact dir -> its weights and a tar of the rest under $OUT
  for f in "$1"/*.safetensors; do cp "$f" "$OUT/$(basename "$1")-$(basename "$f")"; done
  (cd "$1" && tar cf "$OUT/$(basename "$1")-files.tar" --exclude='*.safetensors' .)
}
set -- editor.tokenizer.version=tokenizer-$V editor.decoder.version=decoder-$V "$@"
STAGES=tokenizer bash bench/editor_gpu.sh $R "$CORPUS" editor.joint.max_minutes=${TOK_MIN:-3.5} "$@" 2>&1 \
  | grep -v '^{' | tee "$OUT/codec_gpu.log"
send $R/tokenizer
STAGES=decoder bash bench/editor_gpu.sh $R "$CORPUS" editor.train.max_minutes=${DEC_MIN:-3.0} "$@" 2>&1 \
  | grep -v '^{' | tee -a "$OUT/codec_gpu.log"
send $R/decoder
ls -la "$OUT"
