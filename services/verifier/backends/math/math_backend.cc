#include "services/verifier/backends/math/math_backend.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/status_macros.h"
#include "services/verifier/backends/math/equivalence.h"
#include "services/verifier/backends/math/extract.h"
#include "services/verifier/backends/math/regex_util.h"

namespace cascade::verifier {
namespace {

using math::Answer;
using math::MathOptions;

absl::StatusOr<MathOptions> ReadOptions(const Json& item, const JsonPath& path) {
  MathOptions options;
  if (!item.contains("options") || item["options"].is_null()) return options;
  JsonPath options_path = path.Key("options");
  RETURN_IF_ERROR(ExpectObject(item["options"], options_path));
  const Json& o = item["options"];
  ASSIGN_OR_RETURN(int64_t precision, GetIntOr(o, "precision", options_path, 6));
  if (precision < 0 || precision > 15) {
    return options_path.Key("precision").Error("must be between 0 and 15");
  }
  options.precision = static_cast<int>(precision);
  ASSIGN_OR_RETURN(options.strict, GetBoolOr(o, "strict", options_path, true));
  ASSIGN_OR_RETURN(options.allow_set_relation_comp,
                   GetBoolOr(o, "allow_set_relation_comp", options_path, false));
  return options;
}

// A ground truth that is one choice letter: "C", "(C)", "$\text{C}$".
std::string ChoiceLetter(absl::string_view gold) {
  static const math::Regex kLetter(
      R"(^\s*\$?\s*(?:\\(?:text|textbf|mathrm)\{)?\s*\(?([A-J])\)?\s*\}?\s*\$?\s*$)");
  math::RegexMatch match;
  if (kLetter.Find(gold, 0, &match)) return match.Group(1);
  return "";
}

// The ground truth as candidates: the whole string read as LaTeX, plus what
// extraction finds in it (a worked solution with a \boxed{} answer).
absl::StatusOr<Answer> GoldAnswer(absl::string_view gold, const CancelToken& cancel) {
  Answer answer;
  bool delimited = absl::StrContains(gold, "$") || absl::StrContains(gold, "\\boxed") ||
                   absl::StrContains(gold, "\\[") || absl::StrContains(gold, "\\(");
  if (!delimited) {
    answer.strings.emplace_back(absl::StripAsciiWhitespace(gold));
    // A ground truth that parses whole is exactly the answer; searching it
    // for numbers would let `x = 1` also stand for `1`.
    if (math::NodePtr bare = math::ParseBareLatex(gold)) {
      answer.exprs.push_back(bare);
      return answer;
    }
  }
  ASSIGN_OR_RETURN(Answer extracted, math::ExtractAnswer(gold, {}, cancel));
  answer.exprs.insert(answer.exprs.end(), extracted.exprs.begin(), extracted.exprs.end());
  answer.strings.insert(answer.strings.end(), extracted.strings.begin(), extracted.strings.end());
  return answer;
}

class MathBackend : public Backend {
 public:
  absl::string_view name() const override { return "math"; }

  absl::StatusOr<CheckResult> Check(const Json& item, const JsonPath& path,
                                    const CancelToken& cancel) const override {
    RETURN_IF_ERROR(ExpectObject(item, path));
    ASSIGN_OR_RETURN(std::string response, GetString(item, "response", path));
    ASSIGN_OR_RETURN(std::string ground_truth, GetString(item, "ground_truth", path));
    ASSIGN_OR_RETURN(MathOptions options, ReadOptions(item, path));

    CheckResult result;
    result.details = Json::object();

    std::string letter = ChoiceLetter(ground_truth);
    if (!letter.empty()) {
      math::StringExtractionConfig config;
      config.strings = {"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"};
      std::vector<std::string> choice = math::ExtractChoice(response, config);
      // A boxed letter is the clearest statement of a choice.
      ASSIGN_OR_RETURN(Answer boxed, math::ExtractAnswer(response, {true, false, 0}, cancel));
      for (const std::string& s : boxed.strings) {
        std::string boxed_letter = ChoiceLetter(s);
        if (!boxed_letter.empty()) choice = {absl::AsciiStrToLower(boxed_letter), boxed_letter};
      }
      if (choice.empty()) {
        result.verdict = std::string(kVerdictNoAnswer);
        result.details["extracted"] = Json::array();
        return result;
      }
      bool same = choice[0] == absl::AsciiStrToLower(letter);
      result.reward = same ? 1.0 : 0.0;
      result.verdict = std::string(same ? kVerdictCorrect : kVerdictIncorrect);
      result.details["extracted"] = Json::array({choice[1]});
      result.details["gold"] = Json::array({letter});
      if (same) result.details["match"] = "choice";
      return result;
    }

    ASSIGN_OR_RETURN(Answer gold, GoldAnswer(ground_truth, cancel));
    ASSIGN_OR_RETURN(Answer pred, math::ExtractAnswer(response, {}, cancel));
    Json extracted = Json::array();
    for (const auto& e : pred.exprs) extracted.push_back(math::ToString(*e));
    for (const auto& s : pred.strings) extracted.push_back(s);
    Json gold_json = Json::array();
    for (const auto& e : gold.exprs) gold_json.push_back(math::ToString(*e));
    result.details["extracted"] = extracted;
    result.details["gold"] = gold_json;
    if (pred.empty()) {
      result.verdict = std::string(kVerdictNoAnswer);
      return result;
    }
    math::MatchInfo info;
    ASSIGN_OR_RETURN(bool same, math::AnswersEquivalent(gold, pred, options, cancel, &info));
    result.reward = same ? 1.0 : 0.0;
    result.verdict = std::string(same ? kVerdictCorrect : kVerdictIncorrect);
    if (same) result.details["match"] = info.how;
    return result;
  }
};

}  // namespace

std::unique_ptr<Backend> NewMathBackend() { return std::make_unique<MathBackend>(); }

}  // namespace cascade::verifier
