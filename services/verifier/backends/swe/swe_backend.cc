#include "services/verifier/backends/swe/swe_backend.h"

#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "services/verifier/backends/swe/search_replace.h"
#include "services/verifier/backends/swe/sequence_matcher.h"
#include "services/verifier/backends/swe/unified_diff.h"

namespace cascade::verifier {
namespace {

using FileTexts = std::map<std::string, std::string>;

enum class Similarity { kLexical, kSemantic };

// What the response did, before scoring.
struct Prediction {
  std::optional<std::string> error;  // set: unparseable
  bool noop = false;
  FileTexts texts;  // per-file text to compare
};

bool StartsLikeDiff(absl::string_view text) {
  text = absl::StripLeadingAsciiWhitespace(text);
  return absl::StartsWith(text, "diff --git ") || absl::StartsWith(text, "--- ") ||
         absl::StartsWith(text, "Index: ") || absl::StartsWith(text, "From ");
}

// The text between the first `open` and the following `close`, if both occur.
std::optional<absl::string_view> Between(absl::string_view text, absl::string_view open,
                                         absl::string_view close) {
  size_t begin = text.find(open);
  if (begin == absl::string_view::npos) return std::nullopt;
  begin += open.size();
  size_t end = text.find(close, begin);
  if (end == absl::string_view::npos) return std::nullopt;
  return text.substr(begin, end - begin);
}

// Fenced blocks of a diff language, or whose content starts like a diff.
std::vector<std::string> DiffFences(absl::string_view text) {
  std::vector<std::string> blocks;
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view open = absl::StripLeadingAsciiWhitespace(lines[i]);
    if (!absl::ConsumePrefix(&open, "```")) continue;
    const std::string info = absl::AsciiStrToLower(absl::StripAsciiWhitespace(open));
    std::vector<absl::string_view> body;
    size_t j = i + 1;
    for (; j < lines.size(); ++j) {
      absl::string_view close = absl::StripAsciiWhitespace(lines[j]);
      if (absl::StartsWith(close, "```") &&
          close.find_first_not_of('`') == absl::string_view::npos) {
        break;
      }
      body.push_back(lines[j]);
    }
    std::string content = absl::StrJoin(body, "\n");
    if (info == "diff" || info == "patch" || info == "udiff" || StartsLikeDiff(content)) {
      if (!content.empty()) content += '\n';
      blocks.push_back(std::move(content));
    }
    i = j;
  }
  return blocks;
}

absl::StatusOr<PatchFormat> ParseFormat(const Json& item, const JsonPath& path) {
  ASSIGN_OR_RETURN(std::string format, GetString(item, "format", path));
  if (format == "unidiff") return PatchFormat::kUnifiedDiff;
  if (format == "search_replace") return PatchFormat::kSearchReplace;
  return path.Key("format").Error(
      absl::StrCat("unknown format \"", format, "\" (expected one of: unidiff, search_replace)"));
}

absl::StatusOr<Similarity> ParseSimilarity(const Json& item, const JsonPath& path) {
  ASSIGN_OR_RETURN(std::string similarity, GetStringOr(item, "similarity", path, "lexical"));
  if (similarity == "lexical") return Similarity::kLexical;
  if (similarity == "semantic") return Similarity::kSemantic;
  return path.Key("similarity")
      .Error(absl::StrCat("unknown similarity \"", similarity,
                          "\" (expected one of: lexical, semantic)"));
}

bool Present(const Json& item, absl::string_view key) {
  auto it = item.find(key);
  return it != item.end() && !it->is_null();
}

// A JSON object of path -> string (or null, when `allow_null`).
absl::StatusOr<FileChanges> ReadFileMap(const Json& item, absl::string_view key,
                                        const JsonPath& path, bool allow_null) {
  ASSIGN_OR_RETURN(const Json* object, GetObject(item, key, path));
  FileChanges files;
  for (auto it = object->begin(); it != object->end(); ++it) {
    if (it->is_string()) {
      files[it.key()] = it->get<std::string>();
    } else if (allow_null && it->is_null()) {
      files[it.key()] = std::nullopt;
    } else {
      return path.Key(key).Key(it.key()).Error(absl::StrCat("expected the file content as a string",
                                                            allow_null ? " (or null: deleted)" : "",
                                                            ", got ", JsonTypeName(*it)));
    }
  }
  return files;
}

// Parses a patch of `format` and applies it to `context`.
absl::StatusOr<FileChanges> ApplyText(absl::string_view text, PatchFormat format,
                                      const FileContents& context, const CancelToken& cancel) {
  if (format == PatchFormat::kUnifiedDiff) {
    ASSIGN_OR_RETURN(Patch patch, ParseUnifiedDiff(text));
    return ApplyPatch(patch, context, cancel);
  }
  ASSIGN_OR_RETURN(std::vector<SearchReplaceEdit> edits, ParseSearchReplace(text));
  return ApplySearchReplace(edits, context, cancel);
}

// SWE-RL's get_normalized_patch: per changed file, the unified diff of its
// old and new content; files whose lines did not change are left out.
absl::StatusOr<FileTexts> NormalizedPatches(const FileContents& context, const FileChanges& changes,
                                            size_t diff_context, const CancelToken& cancel) {
  FileTexts patches;
  for (const auto& [path, content] : changes) {
    auto original = context.find(path);
    absl::string_view old_text =
        original == context.end() ? absl::string_view() : absl::string_view(original->second);
    ASSIGN_OR_RETURN(std::string diff,
                     UnifiedDiffBody(old_text, content.value_or(""), diff_context, cancel));
    if (!diff.empty()) patches[path] = std::move(diff);
  }
  return patches;
}

// Turns an error about the response into an "unparseable" prediction, and
// lets deadline (and other non-format) errors through.
absl::StatusOr<Prediction> Unparseable(const absl::Status& status) {
  if (!absl::IsInvalidArgument(status)) return status;
  Prediction prediction;
  prediction.error = std::string(status.message());
  return prediction;
}

std::string FencedChanges(const FileTexts& changes) {
  if (changes.empty()) return "(no change)\n";
  std::string out;
  for (const auto& [path, text] : changes) {
    absl::StrAppend(&out, "### ", path, "\n```diff\n", text, "\n```\n");
  }
  return out;
}

class SweBackend final : public Backend {
 public:
  explicit SweBackend(SweBackendOptions options) : options_(std::move(options)) {}

  absl::string_view name() const override { return "swe"; }

  absl::StatusOr<CheckResult> Check(const Json& item, const JsonPath& path,
                                    const CancelToken& cancel) const override {
    RETURN_IF_ERROR(ExpectObject(item, path));
    ASSIGN_OR_RETURN(std::string response, GetString(item, "response", path));
    ASSIGN_OR_RETURN(PatchFormat format, ParseFormat(item, path));
    ASSIGN_OR_RETURN(Similarity similarity, ParseSimilarity(item, path));
    if (similarity == Similarity::kSemantic && options_.judge == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          path.Key("similarity").ToString(),
          ": semantic similarity needs a reward_model judge; configure one for the swe backend "
          "(SweBackendOptions.judge, the reward_model service address) or use "
          "similarity=lexical"));
    }

    const bool has_ground_truth = Present(item, "ground_truth");
    const bool has_oracle = Present(item, "oracle_new_content");
    const bool has_context = Present(item, "code_context");
    if (has_ground_truth == has_oracle) {
      return path.Error(has_oracle ? "give either ground_truth or oracle_new_content, not both"
                                   : "missing the gold change: ground_truth (the gold patch) or "
                                     "oracle_new_content (path -> new content)");
    }
    if (!has_context && (has_oracle || format == PatchFormat::kSearchReplace)) {
      return path.Key("code_context")
          .Error(absl::StrCat("required with ",
                              has_oracle ? "oracle_new_content" : "format search_replace",
                              " (path -> original content)"));
    }

    CheckResult result;
    result.details["format"] = format == PatchFormat::kUnifiedDiff ? "unidiff" : "search_replace";
    result.details["similarity"] = similarity == Similarity::kLexical ? "lexical" : "semantic";
    result.details["mode"] = has_context ? "content" : "patch";

    FileTexts gold;
    Prediction prediction;
    if (has_context) {
      ASSIGN_OR_RETURN(FileChanges raw_context, ReadFileMap(item, "code_context", path,
                                                            /*allow_null=*/false));
      FileContents context;
      for (auto& [file, content] : raw_context) context[file] = std::move(*content);
      FileChanges gold_changes;
      if (has_oracle) {
        ASSIGN_OR_RETURN(gold_changes, ReadFileMap(item, "oracle_new_content", path,
                                                   /*allow_null=*/true));
      } else {
        ASSIGN_OR_RETURN(std::string gold_text, GetString(item, "ground_truth", path));
        absl::StatusOr<FileChanges> applied = ApplyText(gold_text, format, context, cancel);
        if (!applied.ok()) {
          if (!absl::IsInvalidArgument(applied.status())) return applied.status();
          return path.Key("ground_truth")
              .Error(absl::StrCat("the gold patch does not apply to code_context: ",
                                  applied.status().message()));
        }
        gold_changes = *std::move(applied);
      }
      ASSIGN_OR_RETURN(gold,
                       NormalizedPatches(context, gold_changes, options_.diff_context, cancel));
      ASSIGN_OR_RETURN(prediction, PredictByContent(response, format, context, cancel));
    } else {
      ASSIGN_OR_RETURN(std::string gold_text, GetString(item, "ground_truth", path));
      absl::StatusOr<Patch> gold_patch = ParseUnifiedDiff(gold_text);
      if (!gold_patch.ok()) {
        return path.Key("ground_truth")
            .Error(absl::StrCat("the gold patch does not parse: ", gold_patch.status().message()));
      }
      gold = FileLevelDiffs(*gold_patch);
      ASSIGN_OR_RETURN(prediction, PredictByPatch(response));
    }

    if (prediction.error.has_value()) {
      result.reward = -1.0;
      result.verdict = std::string(kVerdictUnparseable);
      result.details["error"] = *prediction.error;
      return result;
    }
    if (prediction.noop) {
      result.reward = 0.0;
      result.verdict = std::string(kVerdictNoop);
      return result;
    }
    if (prediction.texts == gold) {
      result.reward = 1.0;
      result.verdict = std::string(kVerdictIdentical);
      return result;
    }

    // The union of files; one side missing scores 0, as in SWE-RL. Sorted by
    // path so the floating-point sum is reproducible.
    std::map<std::string, double> ratios;
    for (const auto& [file, text] : gold) ratios[file] = 0.0;
    for (const auto& [file, text] : prediction.texts) ratios[file] = 0.0;
    Json files = Json::array();
    double sum = 0.0;
    for (auto& [file, ratio] : ratios) {
      auto predicted = prediction.texts.find(file);
      auto expected = gold.find(file);
      if (predicted != prediction.texts.end() && expected != gold.end() &&
          !predicted->second.empty() && !expected->second.empty()) {
        // SWE-RL: SequenceMatcher(None, pred_change, oracle_change), in that
        // order — the ratio is not symmetric when matches tie.
        ASSIGN_OR_RETURN(ratio, StringSimilarity(predicted->second, expected->second, cancel));
      }
      sum += ratio;
      files.push_back({{"path", file}, {"similarity", ratio}});
    }
    const double lexical = ratios.empty() ? 0.0 : sum / static_cast<double>(ratios.size());
    result.details["files"] = std::move(files);
    result.verdict = std::string(kVerdictSimilar);
    result.reward = lexical;
    if (similarity == Similarity::kSemantic) {
      const std::string question = SemanticJudgeQuestion(gold, prediction.texts);
      absl::StatusOr<double> p_yes = options_.judge->ProbabilityYes(question, cancel);
      if (!p_yes.ok()) {
        // The item is not at fault when the judge fails: keep the judge's
        // code (UNAVAILABLE, DEADLINE_EXCEEDED...) but never INVALID_ARGUMENT,
        // which would be reported as an invalid item.
        absl::StatusCode code = p_yes.status().code();
        if (code == absl::StatusCode::kInvalidArgument) code = absl::StatusCode::kInternal;
        return absl::Status(code, absl::StrCat("semantic judge: ", p_yes.status().message()));
      }
      if (!std::isfinite(*p_yes) || *p_yes < 0.0 || *p_yes > 1.0) {
        return absl::InternalError(
            absl::StrCat("semantic judge returned P(yes) = ", *p_yes, ", outside [0, 1]"));
      }
      result.details["lexical_similarity"] = lexical;
      result.details["p_yes"] = *p_yes;
      result.reward = *p_yes;
    }
    return result;
  }

 private:
  absl::StatusOr<Prediction> PredictByContent(absl::string_view response, PatchFormat format,
                                              const FileContents& context,
                                              const CancelToken& cancel) const {
    absl::StatusOr<std::string> text = ExtractPatchText(response, format);
    if (!text.ok()) return Unparseable(text.status());
    absl::StatusOr<FileChanges> changes = ApplyText(*text, format, context, cancel);
    if (!changes.ok()) return Unparseable(changes.status());
    Prediction prediction;
    ASSIGN_OR_RETURN(prediction.texts,
                     NormalizedPatches(context, *changes, options_.diff_context, cancel));
    prediction.noop = prediction.texts.empty();
    return prediction;
  }

  absl::StatusOr<Prediction> PredictByPatch(absl::string_view response) const {
    absl::StatusOr<std::string> text = ExtractPatchText(response, PatchFormat::kUnifiedDiff);
    if (!text.ok()) return Unparseable(text.status());
    absl::StatusOr<Patch> patch = ParseUnifiedDiff(*text);
    if (!patch.ok()) return Unparseable(patch.status());
    Prediction prediction;
    prediction.noop = true;
    for (const FilePatch& file : patch->files) {
      if (file.HasEffect()) prediction.noop = false;
    }
    prediction.texts = FileLevelDiffs(*patch);
    return prediction;
  }

  const SweBackendOptions options_;
};

}  // namespace

absl::StatusOr<std::string> ExtractPatchText(absl::string_view response, PatchFormat format) {
  absl::string_view text = response;
  // The answer follows the reasoning; a think block that never closes means
  // the response was cut before any answer.
  if (size_t close = text.rfind("</think>"); close != absl::string_view::npos) {
    text.remove_prefix(close + 8);
  } else if (text.find("<think>") != absl::string_view::npos) {
    return absl::InvalidArgumentError("the <think> block is never closed: no answer after it");
  }
  if (std::optional<absl::string_view> solution = Between(text, "<solution>", "</solution>")) {
    text = *solution;
  }
  if (format == PatchFormat::kSearchReplace) return std::string(text);
  std::vector<std::string> fences = DiffFences(text);
  if (!fences.empty()) return absl::StrJoin(fences, "");
  if (StartsLikeDiff(text)) return std::string(absl::StripLeadingAsciiWhitespace(text));
  return absl::InvalidArgumentError(
      "no diff found (expected a ```diff block, or text starting with \"diff --git\" or "
      "\"---\")");
}

std::string SemanticJudgeQuestion(const std::map<std::string, std::string>& gold_changes,
                                  const std::map<std::string, std::string>& predicted_changes) {
  return absl::StrCat(
      "Two patches were written for the same issue in the same repository.\n\n"
      "Reference patch:\n",
      FencedChanges(gold_changes), "\nCandidate patch:\n", FencedChanges(predicted_changes),
      "\nDoes the candidate patch make the same change as the reference patch, so that it "
      "fixes the issue in the same way? Answer yes or no.");
}

std::unique_ptr<Backend> NewSweBackend(SweBackendOptions options) {
  return std::make_unique<SweBackend>(std::move(options));
}

}  // namespace cascade::verifier
