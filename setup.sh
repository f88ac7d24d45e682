#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine (idempotent): system tools, then .venv with pinned deps.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v sox >/dev/null || need+=(sox libsox-fmt-all)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v flite >/dev/null || need+=(flite)
command -v text2wave >/dev/null || need+=(festival)
# festival's English voices (docs/voices.md): data packages, so asked of dpkg (a removed one may keep its status)
for p in festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
# a C++ compiler: pyworld builds from source, and a test runs the trainer's compiled step (inductor) on the CPU
command -v g++ >/dev/null || need+=(g++)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q -U pip "setuptools<81" wheel
  .venv/bin/pip install -q torch==2.13.0   # first, so nothing resolves a CUDA build
  .venv/bin/pip install -q -e ".[test]"
  rm -f .venv/.installed-*; touch "$stamp"
fi
