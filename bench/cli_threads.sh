#!/usr/bin/env bash
# The command line's generation time by torch thread count (its --threads), on this machine as it is.
#   bash bench/cli_threads.sh CLIP.wav "what CLIP says" [THREADS...]      (default threads: 1 2)
# Each setting: an emotion edit (sad, seed 0) three times; prints the CLI's own timing line per run.
# HOGS=N runs N busy-looping processes beside it (a machine busy with other work).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIP=${1:?clip}; TEXT=${2:?text}; shift 2
[ $# -gt 0 ] || set -- 1 2
echo "command: HOGS=${HOGS:-0} bash bench/cli_threads.sh $CLIP \"$TEXT\" $*; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
hogs=()
for _ in $(seq 1 "${HOGS:-0}"); do python3 -c "while True: pass" & hogs+=($!); done
trap '[ ${#hogs[@]} -eq 0 ] || kill "${hogs[@]}"' EXIT
for t in "$@"; do
  for run in 1 2 3; do
    line=$(.venv/bin/python -m editor edit --input="$CLIP" --text="$TEXT" --edit-type emotion --edit-info sad \
           --device cpu --threads "$t" -o /tmp/cli_threads.wav | grep "^timing:")
    echo "threads $t run $run: $line"
  done
done
