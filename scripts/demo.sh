#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: the tiny embedded
# cascade (examples/tiny/). A 10M-parameter Qwen3-shaped model gets an SFT
# warm-up, then GRPO stage by stage — RLHF, IF-RL, math, code, SWE — with
# every service embedded in `orchestrator run`. Results: the progress lines,
# examples/tiny/work/out/report.html (rewards, lengths, filtered fraction,
# step-time breakdown, the cross-stage eval matrix) and the checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-tokenizers.sh
bash scripts/build.sh orchestrator learner reward_model verifier
bash examples/tiny/prepare.sh
# A fresh run each time (the inputs from prepare.sh are kept).
rm -rf examples/tiny/work/out
build/bin/orchestrator run examples/tiny/cascade.json
echo "report: examples/tiny/work/out/report.html"
