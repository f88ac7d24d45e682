#!/usr/bin/env bash
# int8 beside bf16 on the benchmark's prompts, judged by judge-v2, on the GPU machine
# (bench/int8_quality_gpu.py).
#   run(command="bash bench/int8_quality_gpu.sh", carry=[".gpu_data/bench_iter0", ".whl"])
# (the tree and what is carried must stay under 64 MiB: for the call, bench/results/ and the .whl wheels
# other than soundfile, cffi, pycparser, soxr and pyworld were moved out of the working tree)
# .gpu_data/bench_iter0: the Iter0 clips of the prompts *-000 of the shipped editor's benchmark run
# (pipeline.n=3, emotions and styles; audio/editor/own/<id>/iter0.flac) as <id>.flac, the manifest.json
# of those 24, and mel_basis.npy (scorers/judge/logmel.py's filters: no librosa there); 1.5 MB. Made on the
# CPU: python bench/int8_quality_gpu.py --make-clips OUT_DIR/edit_benchmark/latest .gpu_data/bench_iter0
source bench/gpu_codec_env.sh
python3 bench/int8_quality_gpu.py .gpu_data/bench_iter0 "$OUT" "$@" 2>&1 | grep -v "Loading weights" | tee "$OUT/int8_quality_gpu.log"
