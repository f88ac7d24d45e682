#!/usr/bin/env bash
# What travels to the GPU machine for bench/editor_llm_gpu.sh (ignored paths, carried): the token
# releases (.gpu_data/tokens/<pipeline>_tokens, their latest release), one audio shard of the default
# run for the tokenizer's throughput (.gpu_data/audio), and the wheels that machine lacks (.whl:
# hydra-core, omegaconf, antlr4 sdist, soundfile, cffi, pycparser, soxr, pyworld sdist).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs}
rm -rf .gpu_data && mkdir -p .gpu_data/tokens .gpu_data/audio
for d in "$OUT"/*_tokens; do cp -rL "$d/latest" ".gpu_data/tokens/$(basename "$d")"; done
cp "$(ls "$OUT"/emotion_triplets/latest/shards/*.tar | head -1)" .gpu_data/audio/
du -sh .gpu_data .whl
