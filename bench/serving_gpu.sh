#!/usr/bin/env bash
# The serving benchmark on the GPU machine (bench/serving_gpu.py): bf16 and int8, batch 1 with the
# streamed first chunk, 16 and 64 requests at once, a 2-minute edit and its seams.
#   run(command="bash bench/serving_gpu.sh", carry=[".gpu_data/clips", ".whl"])
#   SERVING_F0_ONLY=1 bash bench/serving_gpu.sh    # bf16, only the F0-search rows (f0_decimation 1 and 4): a short call
#   SERVING_BATCH1=1 bash bench/serving_gpu.sh    # bf16 and int8: batch 1, first chunk, the 2-minute edit, peak memory: a short call
#   SERVING_AB=attention bash bench/serving_gpu.sh # the decode attention, both ways (bench/serving_gpu.py says which rows)
#   SERVING_TIMELINE=1 bash bench/serving_gpu.sh   # 64 clients under the profiler: the GPU streams' timeline and overlap
# (the tree and what is carried must stay under 64 MiB: `bash bench/travel_light.sh out serve` first,
# `back` after)
# .gpu_data/clips: 4 clean clips of test-split speakers (2 en, 2 zh) as NAME.flac + NAME.json ({"text": ...}),
# 270 KB, so they travel with the tree; made on the CPU from a release: python bench/serving_clips.py
# outputs/speed_triplets .gpu_data/clips
source bench/gpu_codec_env.sh
python3 bench/serving_gpu.py .gpu_data/clips "$OUT" "$@" 2>&1 | grep -v "Loading weights" | tee "$OUT/serving_gpu.log"
