// The IFEval instruction checkers: the 25 instruction types of upstream's
// instructions_registry (google-research instruction_following_eval), plus
// the four checker classes upstream defines but does not register
// (ConstrainedStartChecker, KeySentenceChecker, RephraseChecker,
// RephraseParagraph), kept so upstream's own unit tests can be replayed.
//
// Each checker reproduces upstream's check_following(); kwargs are validated
// up front (upstream draws random values for missing ones; here a missing or
// ill-typed kwarg is INVALID_ARGUMENT naming its JSON path).
//
// Thread-safety: instruction types are immutable; an Instruction is
// immutable after BuildInstruction and may be checked from many threads.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_INSTRUCTIONS_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_INSTRUCTIONS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"
#include "common/json_util.h"

namespace cascade::verifier::ifeval {

enum class KwargType {
  kInt,         // a non-negative integer
  kString,      // any string
  kStringList,  // a non-empty array of strings
  kRelation,    // "less than" | "at least"
};

struct KwargSpec {
  absl::string_view name;
  KwargType type;
};

// Validated kwargs of one instruction, by name.
struct InstructionArgs {
  std::map<std::string, int64_t, std::less<>> ints;
  std::map<std::string, std::string, std::less<>> strings;
  std::map<std::string, std::vector<std::string>, std::less<>> lists;

  int64_t Int(absl::string_view name) const { return ints.find(name)->second; }
  const std::string& String(absl::string_view name) const { return strings.find(name)->second; }
  const std::vector<std::string>& List(absl::string_view name) const {
    return lists.find(name)->second;
  }
};

// upstream check_following(): whether `response` follows the instruction.
using CheckFn = absl::StatusOr<bool> (*)(const InstructionArgs& args,
                                         absl::string_view response,
                                         const CancelToken& cancel);

struct InstructionType {
  absl::string_view id;          // e.g. "keywords:existence"
  absl::string_view class_name;  // upstream checker class, e.g. "KeywordChecker"
  bool registered;               // one of the 25 ids the backend accepts
  std::vector<KwargSpec> kwargs;
  CheckFn check;
};

// Every checker, registered ones first in upstream's registry order.
const std::vector<InstructionType>& AllInstructionTypes();
// A registered type by id; nullptr when unknown.
const InstructionType* FindRegisteredInstruction(absl::string_view id);
// Any type by upstream class name; nullptr when unknown.
const InstructionType* FindInstructionByClass(absl::string_view class_name);
// The registered ids, comma-separated, for error messages.
std::string RegisteredInstructionIds();

class Instruction {
 public:
  Instruction(const InstructionType* type, InstructionArgs args)
      : type_(type), args_(std::move(args)) {}

  absl::string_view id() const { return type_->id; }
  const InstructionArgs& args() const { return args_; }

  absl::StatusOr<bool> Follows(absl::string_view response, const CancelToken& cancel) const {
    return type_->check(args_, response, cancel);
  }

 private:
  const InstructionType* type_;
  InstructionArgs args_;
};

// Validates `kwargs` (an object, or null for none) for `type`. Null-valued
// keys count as absent (upstream drops falsy kwargs); keys the type does not
// take are rejected. `prompt` is the item's prompt: combination:repeat_prompt
// falls back to it when kwargs lack prompt_to_repeat.
absl::StatusOr<Instruction> BuildInstruction(const InstructionType& type, const Json& kwargs,
                                             const JsonPath& path,
                                             const std::optional<std::string>& prompt);

}  // namespace cascade::verifier::ifeval

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_IFEVAL_IFEVAL_INSTRUCTIONS_H_
