// The verifier's instruction-following backend, "if": IFEval's 25
// verifiable instruction types (google-research instruction_following_eval).
//
// Item (DESIGN.md §4):
//   response             string, the model's answer
//   instruction_id_list  array of registered instruction ids
//   kwargs               array of objects (or nulls), one per instruction;
//                        may be omitted when no instruction takes arguments
//   prompt               optional string; combination:repeat_prompt uses it
//                        when its kwargs lack prompt_to_repeat
//   options.scoring      optional "strict" (default) | "loose": which of
//                        IFEval's two accuracies sets the reward
//
// Result: reward 1.0 ("correct") when every instruction passes under the
// chosen scoring, else 0.0 ("incorrect"). details:
//   {"instructions": [{"id", "strict", "loose"}], "strict_all", "loose_all",
//    "scoring"}
// Loose scoring (IFEval's): an instruction passes if it passes on any of the
// response, the response without its first line, without its last line,
// without both, and each of those with every '*' removed. As upstream, a
// response that is empty or only whitespace passes nothing.
//
// Thread-safe: Check() is const and keeps no mutable state.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_BACKEND_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"
#include "services/verifier/backends/backend.h"
#include "services/verifier/backends/ifeval/ifeval_instructions.h"

namespace cascade::verifier {

std::unique_ptr<Backend> NewIfEvalBackend();

namespace ifeval {

// The response variants IFEval's loose scoring tries, in upstream's order.
std::vector<std::string> LooseResponseVariants(absl::string_view response);

// IFEval's strict and loose verdicts for one instruction.
struct InstructionVerdict {
  bool strict = false;
  bool loose = false;
};
absl::StatusOr<InstructionVerdict> ScoreInstruction(const Instruction& instruction,
                                                    absl::string_view response,
                                                    const CancelToken& cancel);

}  // namespace ifeval
}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_BACKEND_H_
