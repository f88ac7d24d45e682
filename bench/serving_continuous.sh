#!/usr/bin/env bash
# Clients that wait for their answers (16 and 64, unguided and guided as shipped) against the served
# editor decoding in batches and decoding continuously (editor/llm/continuous.py), bf16, then int8
# continuously: bench/serving_gpu.py with SERVING_CONTINUOUS=1, in one device call:
#   bash bench/travel_light.sh out serve
#   run(command="bash bench/serving_continuous.sh", carry=[".gpu_data/clips", the five wheels])
#   bash bench/travel_light.sh back
# SERVING_MODES="bf16" SERVING_FLIGHTS="2" shorten the call (the second run of 2026-12-06 ran so)
source bench/gpu_codec_env.sh
mkdir -p "$OUT/continuous"
SERVING_CONTINUOUS=1 python3 bench/serving_gpu.py .gpu_data/clips "$OUT/continuous" 2>&1 \
  | grep -v "Loading weights\|pkg_resources\|UserWarning\|warnings.warn" | tee "$OUT/continuous/serving_gpu.log"
rm -f "$OUT/gpu.txt"     # serving_gpu.json names the GPU
