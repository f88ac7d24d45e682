#!/usr/bin/env bash
# The wheels the GPU machine lacks, into .whl/ (ignored; carried with `carry=[".whl"]`): it has Python 3.12,
# torch and transformers but no registry. Binary wheels for cp312 manylinux; pyworld and antlr4 as sdists,
# built there (bench/gpu_codec_env.sh, bench/codec_gpu.sh, bench/editor_llm_gpu.sh install them to /tmp/site).
#   bash bench/gpu_wheels.sh [DIR]        (default .whl; about 3 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-.whl}
PIP=${PIP:-.venv/bin/pip}
mkdir -p "$D"
# the project's own pins are for this machine's Python; these are the GPU image's
export PIP_CONSTRAINT=
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform any -d "$D" \
  soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0 hydra-core==1.3.8 omegaconf==2.3.1 pypinyin==0.55.0
"$PIP" download -q --no-deps --no-binary=:all: --no-build-isolation -d "$D" pyworld==0.3.5 antlr4-python3-runtime==4.9.3
ls "$D"
du -sh "$D"
