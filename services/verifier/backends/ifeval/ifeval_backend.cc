#include "services/verifier/backends/ifeval/ifeval_backend.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "services/verifier/backends/ifeval/ifeval_text.h"

namespace cascade::verifier {
namespace ifeval {

std::vector<std::string> LooseResponseVariants(absl::string_view response) {
  std::vector<std::string> lines = PySplit(response, "\n");
  auto join = [&](size_t begin, size_t end) {
    if (begin >= end) return std::string();
    return PyStrip(absl::StrJoin(lines.begin() + begin, lines.begin() + end, "\n"));
  };
  const size_t n = lines.size();
  std::string remove_first = join(1, n);
  std::string remove_last = join(0, n - 1);
  std::string remove_both = join(1, n - 1);
  return {std::string(response),
          PyReplace(response, "*", ""),
          remove_first,
          remove_last,
          remove_both,
          PyReplace(remove_first, "*", ""),
          PyReplace(remove_last, "*", ""),
          PyReplace(remove_both, "*", "")};
}

absl::StatusOr<InstructionVerdict> ScoreInstruction(const Instruction& instruction,
                                                    absl::string_view response,
                                                    const CancelToken& cancel) {
  // Upstream: `response.strip() and instruction.check_following(response)`.
  auto passes = [&](absl::string_view text) -> absl::StatusOr<bool> {
    RETURN_IF_ERROR(cancel.Check());
    if (PyStrip(text).empty()) return false;
    return instruction.Follows(text, cancel);
  };
  InstructionVerdict verdict;
  ASSIGN_OR_RETURN(verdict.strict, passes(response));
  if (verdict.strict) {
    // The original response is the first loose variant.
    verdict.loose = true;
    return verdict;
  }
  std::vector<std::string> variants = LooseResponseVariants(response);
  for (size_t i = 1; i < variants.size() && !verdict.loose; ++i) {
    ASSIGN_OR_RETURN(verdict.loose, passes(variants[i]));
  }
  return verdict;
}

}  // namespace ifeval

namespace {

using ifeval::BuildInstruction;
using ifeval::FindRegisteredInstruction;
using ifeval::Instruction;
using ifeval::InstructionType;

class IfEvalBackend : public Backend {
 public:
  absl::string_view name() const override { return "if"; }

  absl::StatusOr<CheckResult> Check(const Json& item, const JsonPath& path,
                                    const CancelToken& cancel) const override {
    RETURN_IF_ERROR(ExpectObject(item, path));
    ASSIGN_OR_RETURN(std::string raw_response, GetString(item, "response", path));
    ASSIGN_OR_RETURN(const Json* ids, GetArray(item, "instruction_id_list", path));
    if (ids->empty()) {
      return path.Key("instruction_id_list").Error("must list at least one instruction");
    }
    const Json* kwargs = nullptr;
    if (item.contains("kwargs") && !item["kwargs"].is_null()) {
      ASSIGN_OR_RETURN(kwargs, GetArray(item, "kwargs", path));
      if (kwargs->size() != ids->size()) {
        return path.Key("kwargs").Error(absl::StrCat(
            "expected ", ids->size(), " entries (one per instruction_id_list entry), got ",
            kwargs->size()));
      }
    }
    std::optional<std::string> prompt;
    if (item.contains("prompt") && !item["prompt"].is_null()) {
      ASSIGN_OR_RETURN(prompt, GetString(item, "prompt", path));
    }
    std::string scoring = "strict";
    if (item.contains("options") && !item["options"].is_null()) {
      ASSIGN_OR_RETURN(const Json* options, GetObject(item, "options", path));
      ASSIGN_OR_RETURN(scoring, GetStringOr(*options, "scoring", path.Key("options"), "strict"));
      if (scoring != "strict" && scoring != "loose") {
        return path.Key("options").Key("scoring").Error(
            absl::StrCat("expected \"strict\" or \"loose\", got \"", scoring, "\""));
      }
    }

    // Validate every instruction before scoring any.
    std::vector<Instruction> instructions;
    static const Json& kNoKwargs = *new Json(nullptr);
    for (size_t i = 0; i < ids->size(); ++i) {
      const JsonPath id_path = path.Key("instruction_id_list").Index(i);
      const Json& id = (*ids)[i];
      if (!id.is_string()) {
        return id_path.Error(absl::StrCat("expected a string, got ", JsonTypeName(id)));
      }
      const InstructionType* type = FindRegisteredInstruction(id.get<std::string>());
      if (type == nullptr) {
        return id_path.Error(absl::StrCat("unknown instruction \"", id.get<std::string>(),
                                          "\" (expected one of: ",
                                          ifeval::RegisteredInstructionIds(), ")"));
      }
      const Json& args = kwargs != nullptr ? (*kwargs)[i] : kNoKwargs;
      ASSIGN_OR_RETURN(Instruction instruction,
                       BuildInstruction(*type, args, path.Key("kwargs").Index(i), prompt));
      instructions.push_back(std::move(instruction));
    }

    // Ill-formed UTF-8 would make the pattern matcher refuse the text; score
    // what a Python decoder with errors="replace" would see.
    const std::string response = ifeval::ToValidUtf8(raw_response);
    CheckResult result;
    Json verdicts = Json::array();
    bool strict_all = true, loose_all = true;
    for (const Instruction& instruction : instructions) {
      ASSIGN_OR_RETURN(ifeval::InstructionVerdict verdict,
                       ifeval::ScoreInstruction(instruction, response, cancel));
      strict_all &= verdict.strict;
      loose_all &= verdict.loose;
      verdicts.push_back(
          {{"id", instruction.id()}, {"strict", verdict.strict}, {"loose", verdict.loose}});
    }
    const bool passed = scoring == "strict" ? strict_all : loose_all;
    result.reward = passed ? 1.0 : 0.0;
    result.verdict = std::string(passed ? kVerdictCorrect : kVerdictIncorrect);
    result.details = {{"instructions", std::move(verdicts)},
                      {"strict_all", strict_all},
                      {"loose_all", loose_all},
                      {"scoring", scoring}};
    return result;
  }
};

}  // namespace

std::unique_ptr<Backend> NewIfEvalBackend() { return std::make_unique<IfEvalBackend>(); }

}  // namespace cascade::verifier
