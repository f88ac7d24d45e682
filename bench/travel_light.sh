#!/usr/bin/env bash
# The tracked tree is over the 64 MiB that travel to the GPU machine (the codec and LLM weights, ~58 MB).
# Before a device call, move what that call does not read out of the tree; after it, move it back.
#   bash bench/travel_light.sh out llm     # an LLM training call: the codec's and the shipped LLM's weights go
#   bash bench/travel_light.sh out codec   # a codec training call: every editor artifact goes
#   bash bench/travel_light.sh out serve   # a serving call (the shipped editor runs): results and plots go
#   bash bench/travel_light.sh back        # restore (also after a failed call)
# Big benchmark results go in every case, and so do editor/candidates (GPU-made weights kept in git but not
# shipped, committed as soon as they come back since the development machine is wiped between sessions).
# Files wait in $STASH (default /tmp/travel_stash); `git status`
# shows them deleted until `back`.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=${STASH:-/tmp/travel_stash}
CANDIDATES=$(ls -d editor/candidates 2>/dev/null || true)
RESULTS="bench/results/benchmark/results.json bench/results/benchmark_v3/results.json
bench/results/benchmark_v3_n5/results.json bench/results/preference/pairs.parquet $CANDIDATES"
case "${1:-}:${2:-}" in
  out:llm)   files="$RESULTS $(ls -d editor/artifacts/tokenizer-v* editor/artifacts/decoder-v* editor/artifacts/editor-llm-v*)" ;;
  out:codec) files="$RESULTS editor/artifacts" ;;
  out:serve) files="bench/results $CANDIDATES $(git ls-files 'docs/*.png' | tr '\n' ' ')" ;;
  back:)
    [ -f "$STASH/list" ] || { echo "nothing stashed in $STASH"; exit 0; }
    for f in $(cat "$STASH/list"); do mkdir -p "$(dirname "$f")"; rm -rf "$f"; mv "$STASH/$f" "$f"; done
    rm -rf "$STASH"; git status --short | head; exit 0 ;;
  *) echo "usage: bash bench/travel_light.sh out llm|codec|serve  |  bash bench/travel_light.sh back" >&2; exit 2 ;;
esac
[ ! -f "$STASH/list" ] || { echo "$STASH already holds a stash: run 'back' first" >&2; exit 2; }
# a Python job of this tree still running (a factory or tokenize run reads the shipped tokenizer, an
# evaluation the editor) would lose the files under it: wait for it, or FORCE=1
here=$(pwd -P)
for pid in $(pgrep python || true); do
  if [ -z "${FORCE:-}" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$here" ]; then
    echo "a Python job of this tree is running (pid $pid: $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-120)); the files moved out would vanish under it: wait for it, or FORCE=1" >&2
    exit 2
  fi
done
for f in $files; do mkdir -p "$STASH/$(dirname "$f")"; mv "$f" "$STASH/$f"; done
echo $files > "$STASH/list"
echo "what travels of the tracked tree: $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes (limit 67108864 with .whl and the carried data)"
echo "the stashed files read as deleted: commit nothing before 'bash bench/travel_light.sh back'" >&2
