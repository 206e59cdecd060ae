#!/usr/bin/env bash
# Builds and runs every benchmark against its peer; each one's output goes
# to bench/results/<name>.txt. bench/README.md summarizes them. Measure on a
# quiet machine: the ratios come from the same run, the absolute rates do not
# survive load.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p bench/results
for bench in build/bin/*_bench; do
  name=$(basename "$bench")
  echo "== $name"
  "$bench" 2>&1 | tee "bench/results/$name.txt"
done
