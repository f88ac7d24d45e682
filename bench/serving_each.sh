#!/usr/bin/env bash
# Clients answered per request (Editor.start_each, as editor/serve/app.py now answers them) against the
# batch-per-call loop, both on the continuous decoder (128 rows), 16 and 64 clients, unguided and guided as
# shipped: bench/serving_gpu.py with SERVING_EACH=1, in one device call:
#   bash bench/travel_light.sh out serve
#   run(command="bash bench/serving_each.sh", carry=[".gpu_data/clips", the five wheels])
#   bash bench/travel_light.sh back
source bench/gpu_codec_env.sh
mkdir -p "$OUT/each"
SERVING_EACH=1 python3 bench/serving_gpu.py .gpu_data/clips "$OUT/each" 2>&1 \
  | grep -v "Loading weights\|pkg_resources\|UserWarning\|warnings.warn" | tee "$OUT/each/serving_gpu.log"
rm -f "$OUT/gpu.txt"     # serving_gpu.json names the GPU
