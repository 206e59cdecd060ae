#!/usr/bin/env bash
# Fails when a Catch2 test name holds ';': CTest splits such a name into
# pieces that match no test, and those pieces then "pass" without running.
#   scripts/check-test-names.sh BIN_DIR
set -euo pipefail
bin=${1:?usage: check-test-names.sh BIN_DIR}
bad=0
checked=0
for test in "$bin"/*_test; do
  [[ -x $test ]] || continue
  # Catch2 v2 exits with the number of tests listed, so the status says nothing.
  names=$("$test" --list-test-names-only || true)
  [[ -n $names ]] || { echo "$test: lists no tests" >&2; exit 1; }
  checked=$((checked + 1))
  while IFS= read -r name; do
    [[ $name == *";"* ]] || continue
    echo "$(basename "$test"): test name with ';' (CTest would not run it): $name" >&2
    bad=1
  done <<<"$names"
done
[[ $checked -gt 0 ]] || { echo "no *_test binaries in $bin" >&2; exit 1; }
echo "test names of $checked binaries checked"
exit $bad
