#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test with CTest.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Real tokenizer files and the JavaScript tokenizers the tests compare against.
bash scripts/fetch-tokenizers.sh
bash scripts/build.sh
# Tests that start servers or sandboxes are told apart by label; all run here.
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure --timeout 900 -j "${JOBS:-2}"
