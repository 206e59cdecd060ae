// `verifier eval`: offline scoring of a JSONL dataset (DESIGN.md §4).
//
// One output line per input line, same order:
//   {"reward": float, "verdict": str, "details": {...}}
// A malformed line (bad JSON, not an object) is reported on the error
// stream as "<file>: line N: <reason>" and gets an "invalid_input" output
// line, so line numbers keep matching; with `strict` the run stops there.
// Lines are read and scored in chunks, so memory stays bounded for any
// file size.
#ifndef CASCADE_SERVICES_VERIFIER_VERIFIER_EVAL_H_
#define CASCADE_SERVICES_VERIFIER_VERIFIER_EVAL_H_

#include <iosfwd>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/verifier/verifier_core.h"

namespace cascade::verifier {

struct EvalOptions {
  // Backend name ("math", "if", "code", "swe").
  std::string backend;
  // Name of the input in messages (the file path, or "<stdin>").
  std::string input_name = "<stdin>";
  // Stop at the first malformed line instead of going on.
  bool strict = false;
  // Lines scored per batch.
  int chunk_lines = 512;
  // Per-item time limit; zero uses the verifier default.
  absl::Duration item_timeout = absl::ZeroDuration();
};

struct EvalSummary {
  int64_t lines = 0;
  // Lines that were not a JSON object (or whose item was invalid).
  int64_t malformed = 0;
  double reward_sum = 0.0;
  std::map<std::string, int64_t> verdicts;
  double seconds = 0.0;
};

// Scores every line of `in`, writing results to `out` and problems to `err`.
// Returns an error only when the run could not go on (unknown backend, or
// `strict` and a malformed line).
absl::StatusOr<EvalSummary> RunEval(VerifierCore& core, const EvalOptions& options,
                                    std::istream& in, std::ostream& out, std::ostream& err);

// "scored 204 lines in 0.31 s (658/s): mean reward 0.61; correct 124, ..."
std::string FormatEvalSummary(const EvalSummary& summary);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_VERIFIER_EVAL_H_
