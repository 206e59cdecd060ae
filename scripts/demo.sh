#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job. Until the
# orchestrator lands, the main job is the verifier scoring the bundled
# example datasets of every backend (examples/verifier/*.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh verifier
mkdir -p out/demo
for backend in math if swe code; do
  echo "== verifier eval --backend $backend (examples/verifier/$backend.jsonl)"
  build/bin/verifier eval --backend "$backend" --input "examples/verifier/$backend.jsonl" \
    --output "out/demo/$backend.jsonl"
  head -n 3 "out/demo/$backend.jsonl"
done
echo "results in out/demo/"
