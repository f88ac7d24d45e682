# Sourced by the GPU-machine benchmarks that run the whole editor (codec included): the codec's audio
# readers and F0 from the carried wheels in .whl (carry only these five), $OUT made, the GPU named.
set -eo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/soundfile-*.whl .whl/cffi-*.whl \
  .whl/pycparser-*.whl .whl/soxr-*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pyworld-*.tar.gz
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
