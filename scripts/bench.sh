#!/usr/bin/env bash
# Builds and runs the benchmarks against their peers; results go to
# bench/results/ (JSON) and are summarized by hand in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p bench/results
for bench in build/bin/*_bench; do
  name=$(basename "$bench")
  echo "== $name"
  "$bench" --benchmark_out="bench/results/$name.json" --benchmark_out_format=json
done
