#include "services/orchestrator/dataset.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace cascade::orchestrator {
namespace {

using absl::StrCat;

// The fields a verifier backend reads from a row (DESIGN.md §4).
std::vector<std::string> SpecFields(RewardType reward) {
  switch (reward) {
    case RewardType::kMath: return {"ground_truth", "options"};
    case RewardType::kIf:
    case RewardType::kIfPlusRm: return {"instruction_id_list", "kwargs"};
    case RewardType::kCode: return {"tests", "language", "limits"};
    case RewardType::kSwe:
      return {"format", "ground_truth", "oracle_new_content", "code_context", "similarity"};
    case RewardType::kRewardModel: return {};
  }
  return {};
}

// Fields without which no item of the reward can be scored.
std::vector<std::string> RequiredFields(RewardType reward) {
  switch (reward) {
    case RewardType::kMath: return {"ground_truth"};
    case RewardType::kIf:
    case RewardType::kIfPlusRm: return {"instruction_id_list", "kwargs"};
    case RewardType::kCode: return {"tests"};
    case RewardType::kSwe: return {"format"};
    case RewardType::kRewardModel: return {};
  }
  return {};
}

// The row's value for Cascade field `name` (mapped, dotted paths walk nested
// objects); null when absent.
const Json* Lookup(const Json& row, const DatasetSpec& spec, const std::string& name,
                   std::string* source_name) {
  auto mapped = spec.fields.find(name);
  *source_name = mapped == spec.fields.end() ? name : mapped->second;
  const Json* at = &row;
  for (absl::string_view part : absl::StrSplit(*source_name, '.')) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(std::string(part));
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at->is_null() ? nullptr : at;
}

}  // namespace

absl::StatusOr<std::vector<Example>> LoadDataset(const DatasetSpec& spec, StageKind kind,
                                                 RewardType reward, const std::string& system_prompt) {
  std::ifstream in(spec.path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(spec.path, ": cannot read the dataset"));
  const std::string stem = std::filesystem::path(spec.path).stem().string();
  std::vector<Example> examples;
  std::set<std::string> ids;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = StrCat(spec.path, ": line ", line_number);
    ASSIGN_OR_RETURN(Json row, ParseJson(line, where));
    if (!row.is_object()) return absl::InvalidArgumentError(StrCat(where, ": expected a JSON object"));
    auto field_error = [&](const std::string& source, absl::string_view message) {
      return absl::InvalidArgumentError(StrCat(where, ": ", source, ": ", message));
    };
    Example example;
    std::string source;
    if (const Json* id = Lookup(row, spec, "id", &source)) {
      example.id = id->is_string() ? id->get<std::string>() : id->dump();
    } else {
      example.id = StrCat(stem, ":", line_number);
    }
    if (!ids.insert(example.id).second) return field_error(source, StrCat("duplicate id \"", example.id, "\""));

    if (const Json* messages = Lookup(row, spec, "messages", &source)) {
      if (!messages->is_array() || messages->empty()) {
        return field_error(source, "expected a non-empty list of {role, content} messages");
      }
      for (size_t i = 0; i < messages->size(); ++i) {
        const Json& m = (*messages)[i];
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
            !m.contains("content") || !m["content"].is_string()) {
          return field_error(StrCat(source, "[", i, "]"), "expected {\"role\": string, \"content\": string}");
        }
        const std::string role = m["role"].get<std::string>();
        if (role != "system" && role != "user" && role != "assistant") {
          return field_error(StrCat(source, "[", i, "].role"),
                             StrCat("unknown role \"", role, "\" (expected system, user or assistant)"));
        }
        example.messages.push_back({role, m["content"].get<std::string>()});
      }
      if (example.messages.back().role != "user") {
        return field_error(source, "the last message must be the user's (the response answers it)");
      }
    } else if (const Json* prompt = Lookup(row, spec, "prompt", &source)) {
      if (!prompt->is_string() || prompt->get<std::string>().empty()) {
        return field_error(source, "expected a non-empty string");
      }
      example.messages.push_back({"user", prompt->get<std::string>()});
    } else {
      return field_error(spec.fields.count("prompt") ? spec.fields.at("prompt") : "prompt",
                         "missing (each row needs \"prompt\" or \"messages\"; map other names with "
                         "datasets.*.fields)");
    }
    if (!system_prompt.empty() && example.messages.front().role != "system") {
      example.messages.insert(example.messages.begin(), {"system", system_prompt});
    }

    if (kind == StageKind::kSft) {
      const Json* response = Lookup(row, spec, "response", &source);
      if (response == nullptr || !response->is_string()) {
        return field_error(source, "an sft row needs the assistant's \"response\" string");
      }
      example.response = response->get<std::string>();
    } else {
      for (const std::string& name : SpecFields(reward)) {
        if (const Json* value = Lookup(row, spec, name, &source)) example.spec[name] = *value;
      }
      for (const std::string& name : RequiredFields(reward)) {
        if (!example.spec.contains(name)) {
          Lookup(row, spec, name, &source);
          return field_error(source, StrCat("missing (the ", RewardTypeName(reward), " reward needs it)"));
        }
      }
      // The if backend checks some instructions against the prompt text.
      if ((reward == RewardType::kIf || reward == RewardType::kIfPlusRm) && !example.spec.contains("prompt")) {
        example.spec["prompt"] = example.messages.back().content;
      }
    }
    examples.push_back(std::move(example));
    if (spec.limit > 0 && static_cast<int64_t>(examples.size()) >= spec.limit) break;
  }
  if (examples.empty()) return absl::InvalidArgumentError(StrCat(spec.path, ": no rows"));
  return examples;
}

}  // namespace cascade::orchestrator
