// The `swe` backend: execution-free rewards for code patches, after SWE-RL.
//
// Item fields (DESIGN.md §4):
//   response            the model output holding the patch (think block and
//                       fences allowed)
//   format              "unidiff" | "search_replace"
//   ground_truth        the gold patch, in the same format as the response
//   oracle_new_content  path -> gold content after the change (null: deleted)
//   code_context        path -> original content
//   similarity          "lexical" (default) | "semantic"
// One of ground_truth / oracle_new_content is required; oracle_new_content
// and search_replace need code_context.
//
// Two ways of comparing, picked by the presence of code_context:
//  * content (code_context given): both patches are applied to the context
//    and each changed file becomes SWE-RL's normalized patch, the body of
//    difflib.unified_diff(old.splitlines(), new.splitlines(), n=3).
//  * patch (unidiff without code_context): each file becomes SWE-RL's
//    file-level diff text (its hunks, plus a rename line).
// Reward: -1 "unparseable" when the response holds no patch or it does not
// parse or apply; 0 "noop" when it changes nothing; 1 "identical" when the
// per-file texts equal the gold's; otherwise "similar" with, per file of the
// union of both sides, difflib's SequenceMatcher ratio (a file present on
// one side only scores 0), averaged — or, with similarity=semantic, the
// judge's P(yes).
//
// Thread-safety: Check() is const and keeps no mutable state; the judge must
// be thread-safe itself.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SWE_BACKEND_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SWE_BACKEND_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"
#include "services/verifier/backends/backend.h"

namespace cascade::verifier {

inline constexpr absl::string_view kVerdictIdentical = "identical";
inline constexpr absl::string_view kVerdictNoop = "noop";
inline constexpr absl::string_view kVerdictUnparseable = "unparseable";
inline constexpr absl::string_view kVerdictSimilar = "similar";

// A yes/no LLM judge (the reward_model service) for semantic similarity.
// Implementations must be thread-safe: Check() calls it concurrently.
class SemanticJudge {
 public:
  virtual ~SemanticJudge() = default;
  // The probability in [0, 1] that the judge answers "yes" to `question`.
  virtual absl::StatusOr<double> ProbabilityYes(absl::string_view question,
                                                const CancelToken& cancel) const = 0;
};

struct SweBackendOptions {
  // Judge for items with similarity="semantic"; null (the default) makes
  // such items fail with FAILED_PRECONDITION rather than fall back silently.
  std::shared_ptr<const SemanticJudge> judge;
  // Context lines of the normalized per-file diffs (SWE-RL uses 3).
  size_t diff_context = 3;
};

std::unique_ptr<Backend> NewSweBackend(SweBackendOptions options = {});

// The patch text inside a model response: the <think> block removed, the
// inside of <solution> tags if any, then (for unified diffs) the ```diff /
// ```patch fenced blocks joined, or the text itself when it starts like a
// diff. INVALID_ARGUMENT explains why nothing was found.
enum class PatchFormat { kUnifiedDiff, kSearchReplace };
absl::StatusOr<std::string> ExtractPatchText(absl::string_view response, PatchFormat format);

// The yes/no question put to the judge: the per-file changes of the gold
// and the predicted patch, and whether the prediction makes the same change.
std::string SemanticJudgeQuestion(const std::map<std::string, std::string>& gold_changes,
                                  const std::map<std::string, std::string>& predicted_changes);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_SWE_SWE_BACKEND_H_
