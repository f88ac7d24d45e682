#!/usr/bin/env bash
# What travels to the GPU machine for bench/editor_llm_gpu.sh (ignored paths, carried): the token
# releases (.gpu_data/tokens.tar.xz: <pipeline>_tokens, their latest release; xz -9 shrinks the tar
# shards of small .npy and .json members about 7x, 43 % smaller than gzip: outputs_v7's are 22.8 MB
# against 39.8 MB, which leaves room under the 64 MiB that travel), one audio shard of the default
# run for the tokenizer's throughput (.gpu_data/audio; not with SKIP_BENCH=1), and the wheels that machine lacks (.whl:
# hydra-core, omegaconf, antlr4 sdist, soundfile, cffi, pycparser, soxr, pyworld sdist).
set -euo pipefail
cd "$(dirname "$0")/.."
# Several output dirs (bash bench/editor_llm_gpu_prepare.sh outputs_v5t6 outputs_v7en) travel side by
# side as tokens/<dir>/<pipeline>_tokens; the GPU call's DATA_DIRS picks which of them one training reads.
[ $# -gt 0 ] || set -- outputs
OUT=$1
# .gpu_data/clips (the serving call's) stays
rm -rf .gpu_data/tokens.tar.gz .gpu_data/tokens.tar.xz .gpu_data/tokens.tar.xz.tmp .gpu_data/audio /tmp/gpu_tokens && mkdir -p .gpu_data/audio /tmp/gpu_tokens/tokens
for o in "$@"; do
  for d in "$o"/*_tokens; do
    mkdir -p "/tmp/gpu_tokens/tokens/$(basename "$o")"
    cp -rL "$d/latest" "/tmp/gpu_tokens/tokens/$(basename "$o")/$(basename "$d")"
  done
done
# written under a temporary name: a stopped run leaves no half tarball that reads as ready to carry
XZ_OPT="-9 -T2" tar cJf .gpu_data/tokens.tar.xz.tmp -C /tmp/gpu_tokens tokens && mv .gpu_data/tokens.tar.xz.tmp .gpu_data/tokens.tar.xz && rm -rf /tmp/gpu_tokens
# SKIP_BENCH=1 (a training-only call): no audio shard, it only feeds the tokenizer's throughput bench
[ -n "${SKIP_BENCH:-}" ] || cp "$(ls "$OUT"/emotion_triplets/latest/shards/*.tar | head -1)" .gpu_data/audio/
du -sh .gpu_data .whl
