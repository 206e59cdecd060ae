// The interface every verifier backend implements (math, if, code, swe).
//
// A backend checks one model response at a time. Items arrive as the JSON
// object of one `verifier eval` input line (DESIGN.md §4), whether they came
// from a JSONL file or from a gRPC VerifyItem, so both paths share one parser.
//
// Thread-safety: Check() is const and is called concurrently from the
// backend's worker pool; implementations keep no mutable shared state (or
// guard it).
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_BACKEND_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"
#include "common/json_util.h"

namespace cascade::verifier {

// Verdicts shared by every backend. Backends add their own (math:
// "no_answer"; swe: "identical", "noop", "similar", "unparseable"; code: the
// per-test verdicts).
inline constexpr absl::string_view kVerdictCorrect = "correct";
inline constexpr absl::string_view kVerdictIncorrect = "incorrect";
// The item itself was malformed (missing field, wrong type): reward 0 and the
// error text in details.error. The batch goes on.
inline constexpr absl::string_view kVerdictInvalidInput = "invalid_input";
// The per-item time limit expired before the check finished: reward 0.
inline constexpr absl::string_view kVerdictTimeout = "timeout";
// The backend failed for a reason unrelated to the response (a bug, a
// dependency down): reward 0, and counted apart so it can be alerted on.
inline constexpr absl::string_view kVerdictInternalError = "internal_error";

// The outcome of checking one response.
struct CheckResult {
  double reward = 0.0;   // the RL reward for this response
  std::string verdict;   // one short word; see the constants above
  Json details = Json::object();  // backend-specific explanation
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The name users give in `--backend` and in cascade.json ("math", "if", ...).
  virtual absl::string_view name() const = 0;

  // Checks one item. `item` is a JSON object holding at least "response";
  // `path` names it in error messages (e.g. "in.jsonl: line 7").
  //
  // Returns INVALID_ARGUMENT (naming the JSON path) when the item itself is
  // malformed; any verdict about the *response* — wrong, unparseable,
  // no answer — is a CheckResult, not an error. Long-running work polls
  // `cancel` and returns DEADLINE_EXCEEDED once it expires.
  virtual absl::StatusOr<CheckResult> Check(const Json& item, const JsonPath& path,
                                            const CancelToken& cancel) const = 0;
};

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_BACKEND_H_
