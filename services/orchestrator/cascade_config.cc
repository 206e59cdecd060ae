#include "services/orchestrator/cascade_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace cascade::orchestrator {
namespace {

namespace fs = std::filesystem;
using absl::StrCat;

const std::vector<std::string>& TopLevelKeys() {
  static const auto* keys = new std::vector<std::string>{
      "$schema", "description", "name", "model", "output_dir", "seed", "services", "defaults",
      "stages"};
  return *keys;
}
const std::vector<std::string>& ServiceKeys() {
  static const auto* keys = new std::vector<std::string>{
      "embedded", "rollout", "learner", "verifier", "reward_model", "reward_model_dir",
      "judge_dir", "threads", "call_timeout_s", "unavailable_timeout_s", "items_per_call",
      "activation_checkpointing"};
  return *keys;
}
// Keys a stage may set; "defaults" may set any of them but name.
const std::vector<std::string>& StageKeys() {
  static const auto* keys = new std::vector<std::string>{
      "name", "kind", "domain", "reward", "datasets", "system_prompt", "batch_prompts",
      "group_size", "learning_rate", "lr_schedule", "sampling", "thinking", "max_prompt_tokens",
      "max_response_tokens", "curriculum", "overlong", "dynamic_filtering", "steps", "epochs",
      "checkpoint_every", "eval_every", "eval", "micro_batch_tokens", "reset_optimizer"};
  return *keys;
}
const std::vector<std::string>& DatasetFieldNames() {
  static const auto* keys = new std::vector<std::string>{
      "id", "prompt", "messages", "response", "ground_truth", "options", "instruction_id_list",
      "kwargs", "tests", "language", "limits", "format", "code_context", "oracle_new_content",
      "similarity"};
  return *keys;
}

absl::Status CheckKeys(const Json& object, const JsonPath& path,
                       const std::vector<std::string>& allowed) {
  RETURN_IF_ERROR(ExpectObject(object, path));
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return path.Key(key).Error(
          StrCat("unknown key \"", key, "\" (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

// An enum given as a string, with the choices in the message.
template <typename T>
absl::StatusOr<T> GetChoice(const Json& object, absl::string_view key, const JsonPath& path,
                            const std::vector<std::pair<std::string, T>>& choices, T fallback,
                            bool required = false) {
  if (!object.contains(std::string(key)) || object[std::string(key)].is_null()) {
    if (required) return path.Key(key).Error("required");
    return fallback;
  }
  ASSIGN_OR_RETURN(std::string value, GetString(object, key, path));
  std::vector<std::string> names;
  for (const auto& [name, choice] : choices) {
    if (name == value) return choice;
    names.push_back(name);
  }
  return path.Key(key).Error(StrCat("unknown value \"", value, "\" (expected one of: ",
                                    absl::StrJoin(names, ", "), ")"));
}

absl::Status Expect(bool condition, const JsonPath& path, absl::string_view message) {
  return condition ? absl::OkStatus() : path.Error(message);
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(base_dir) / path).lexically_normal().string();
}

absl::Status CheckAddress(const std::string& address, const JsonPath& path) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size() ||
      address.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
    return path.Error(StrCat("\"", address, "\" is not host:port"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> GetAddresses(const Json& object, absl::string_view key,
                                                      const JsonPath& path) {
  std::vector<std::string> out;
  if (!object.contains(std::string(key))) return out;
  const Json& value = object[std::string(key)];
  const JsonPath at = path.Key(key);
  if (value.is_string()) {
    RETURN_IF_ERROR(CheckAddress(value.get<std::string>(), at));
    out.push_back(value.get<std::string>());
    return out;
  }
  if (!value.is_array()) return at.Error("expected a host:port string or a list of them, got " + JsonTypeName(value));
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) return at.Index(i).Error("expected a host:port string, got " + JsonTypeName(value[i]));
    RETURN_IF_ERROR(CheckAddress(value[i].get<std::string>(), at.Index(i)));
    out.push_back(value[i].get<std::string>());
  }
  return out;
}

absl::StatusOr<DatasetSpec> ParseDataset(const Json& value, const JsonPath& path,
                                         const std::string& base_dir) {
  DatasetSpec spec;
  if (value.is_string()) {
    spec.path = value.get<std::string>();
  } else {
    RETURN_IF_ERROR(CheckKeys(value, path, {"path", "fields", "limit"}));
    ASSIGN_OR_RETURN(spec.path, GetString(value, "path", path));
    ASSIGN_OR_RETURN(spec.limit, GetIntOr(value, "limit", path, 0));
    RETURN_IF_ERROR(Expect(spec.limit >= 0, path.Key("limit"), "must be >= 0"));
    if (value.contains("fields")) {
      const JsonPath fields_path = path.Key("fields");
      RETURN_IF_ERROR(CheckKeys(value["fields"], fields_path, DatasetFieldNames()));
      for (const auto& [key, source] : value["fields"].items()) {
        if (!source.is_string() || source.get<std::string>().empty()) {
          return fields_path.Key(key).Error("expected the row's field name (a non-empty string)");
        }
        spec.fields[key] = source.get<std::string>();
      }
    }
  }
  const JsonPath at = value.is_string() ? path : path.Key("path");
  RETURN_IF_ERROR(Expect(!spec.path.empty(), at, "expected a JSONL file path"));
  spec.path = Resolve(base_dir, spec.path);
  std::error_code error;
  if (!fs::is_regular_file(spec.path, error)) {
    return at.Error(StrCat("no such file: ", spec.path));
  }
  return spec;
}

// The field `key` of a stage, or of "defaults" when the stage leaves it out,
// with the path to name in errors.
struct StageFields {
  const Json& stage;
  const Json& defaults;
  JsonPath stage_path;
  JsonPath defaults_path;

  // The object holding `key` and its path; the stage's when neither has it.
  std::pair<const Json*, JsonPath> Holder(const std::string& key) const {
    if (stage.contains(key) || !defaults.contains(key)) return {&stage, stage_path};
    return {&defaults, defaults_path};
  }
};

absl::StatusOr<RewardSpec> ParseReward(const Json& value, const JsonPath& path) {
  RewardSpec reward;
  if (value.is_string()) {
    Json object = {{"type", value}};
    return ParseReward(object, path);
  }
  RETURN_IF_ERROR(CheckKeys(value, path, {"type", "options", "item_timeout_s", "partial_credit"}));
  ASSIGN_OR_RETURN(reward.type,
                   GetChoice<RewardType>(value, "type", path,
                                         {{"reward_model", RewardType::kRewardModel},
                                          {"if", RewardType::kIf},
                                          {"if+rm", RewardType::kIfPlusRm},
                                          {"math", RewardType::kMath},
                                          {"code", RewardType::kCode},
                                          {"swe", RewardType::kSwe}},
                                         RewardType::kMath, /*required=*/true));
  if (value.contains("options")) {
    RETURN_IF_ERROR(ExpectObject(value["options"], path.Key("options")));
    reward.backend_options = value["options"];
  }
  if (reward.type == RewardType::kSwe && reward.backend_options.contains("similarity")) {
    const Json& similarity = reward.backend_options["similarity"];
    if (similarity != "lexical" && similarity != "semantic") {
      return path.Key("options").Key("similarity").Error(
          "expected \"lexical\" or \"semantic\"");
    }
  }
  ASSIGN_OR_RETURN(reward.item_timeout_s, GetNumberOr(value, "item_timeout_s", path, 0.0));
  RETURN_IF_ERROR(Expect(reward.item_timeout_s >= 0, path.Key("item_timeout_s"), "must be >= 0"));
  ASSIGN_OR_RETURN(reward.partial_credit, GetBoolOr(value, "partial_credit", path, false));
  if (reward.partial_credit && reward.type != RewardType::kCode) {
    return path.Key("partial_credit").Error("only the code reward gives partial credit");
  }
  return reward;
}

absl::StatusOr<StageConfig> ParseStage(const StageFields& f, const std::string& base_dir) {
  StageConfig stage;
  RETURN_IF_ERROR(CheckKeys(f.stage, f.stage_path, StageKeys()));
  // Plain scalar fields, from the stage or the defaults.
  auto str = [&](const std::string& key, std::string fallback) -> absl::StatusOr<std::string> {
    auto [holder, path] = f.Holder(key);
    return GetStringOr(*holder, key, path, std::move(fallback));
  };
  auto integer = [&](const std::string& key, int64_t fallback,
                     int64_t minimum) -> absl::StatusOr<int64_t> {
    auto [holder, path] = f.Holder(key);
    ASSIGN_OR_RETURN(int64_t value, GetIntOr(*holder, key, path, fallback));
    if (value < minimum) return path.Key(key).Error(StrCat("must be >= ", minimum, ", got ", value));
    return value;
  };
  auto number = [&](const std::string& key, double fallback) -> absl::StatusOr<double> {
    auto [holder, path] = f.Holder(key);
    return GetNumberOr(*holder, key, path, fallback);
  };

  ASSIGN_OR_RETURN(stage.name, GetString(f.stage, "name", f.stage_path));
  if (stage.name.empty() ||
      stage.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
          std::string::npos) {
    return f.stage_path.Key("name").Error(
        StrCat("\"", stage.name, "\": expected letters, digits, '_', '.' or '-' (it names files)"));
  }
  {
    auto [holder, path] = f.Holder("kind");
    ASSIGN_OR_RETURN(stage.kind, GetChoice<StageKind>(*holder, "kind", path,
                                                      {{"sft", StageKind::kSft},
                                                       {"grpo", StageKind::kGrpo}},
                                                      StageKind::kGrpo));
  }
  ASSIGN_OR_RETURN(stage.domain, str("domain", stage.name));
  ASSIGN_OR_RETURN(stage.system_prompt, str("system_prompt", ""));

  {
    auto [holder, path] = f.Holder("reward");
    if (holder->contains("reward")) {
      if (stage.kind == StageKind::kSft) {
        return path.Key("reward").Error("an sft stage has no reward (remove it or use kind \"grpo\")");
      }
      ASSIGN_OR_RETURN(stage.reward, ParseReward((*holder)["reward"], path.Key("reward")));
    } else if (stage.kind == StageKind::kGrpo) {
      return f.stage_path.Key("reward").Error(
          "required for a grpo stage (one of: reward_model, if, if+rm, math, code, swe)");
    }
  }
  {
    auto [holder, path] = f.Holder("datasets");
    const JsonPath at = path.Key("datasets");
    if (!holder->contains("datasets")) return at.Error("required: {\"train\": FILE, \"eval\": FILE}");
    const Json& datasets = (*holder)["datasets"];
    RETURN_IF_ERROR(CheckKeys(datasets, at, {"train", "eval"}));
    if (!datasets.contains("train")) return at.Key("train").Error("required");
    ASSIGN_OR_RETURN(stage.train, ParseDataset(datasets["train"], at.Key("train"), base_dir));
    if (datasets.contains("eval")) {
      ASSIGN_OR_RETURN(stage.eval, ParseDataset(datasets["eval"], at.Key("eval"), base_dir));
    }
  }

  ASSIGN_OR_RETURN(stage.batch_prompts, integer("batch_prompts", 8, 1));
  ASSIGN_OR_RETURN(stage.group_size, integer("group_size", stage.kind == StageKind::kSft ? 1 : 4, 1));
  if (stage.kind == StageKind::kGrpo && stage.group_size < 2) {
    auto [holder, path] = f.Holder("group_size");
    return path.Key("group_size").Error("GRPO needs at least 2 responses per prompt");
  }
  ASSIGN_OR_RETURN(stage.learning_rate, number("learning_rate", 1e-6));
  if (!(stage.learning_rate > 0)) {
    auto [holder, path] = f.Holder("learning_rate");
    return path.Key("learning_rate").Error("must be > 0");
  }
  {
    auto [holder, path] = f.Holder("lr_schedule");
    const std::vector<std::pair<std::string, LrScheduleKind>> kinds = {
        {"constant", LrScheduleKind::kConstant},
        {"linear_warmup", LrScheduleKind::kLinearWarmup},
        {"cosine", LrScheduleKind::kCosine}};
    if (holder->contains("lr_schedule") && (*holder)["lr_schedule"].is_object()) {
      const Json& schedule = (*holder)["lr_schedule"];
      const JsonPath at = path.Key("lr_schedule");
      RETURN_IF_ERROR(CheckKeys(schedule, at, {"type", "warmup_steps", "min_lr_ratio"}));
      ASSIGN_OR_RETURN(stage.lr_schedule, GetChoice<LrScheduleKind>(schedule, "type", at, kinds,
                                                                    LrScheduleKind::kConstant));
      ASSIGN_OR_RETURN(stage.warmup_steps, GetIntOr(schedule, "warmup_steps", at, 0));
      RETURN_IF_ERROR(Expect(stage.warmup_steps >= 0, at.Key("warmup_steps"), "must be >= 0"));
      ASSIGN_OR_RETURN(stage.min_lr_ratio, GetNumberOr(schedule, "min_lr_ratio", at, 0.0));
      RETURN_IF_ERROR(Expect(stage.min_lr_ratio >= 0 && stage.min_lr_ratio <= 1,
                             at.Key("min_lr_ratio"), "must be in [0, 1]"));
    } else {
      ASSIGN_OR_RETURN(stage.lr_schedule, GetChoice<LrScheduleKind>(*holder, "lr_schedule", path,
                                                                    kinds, LrScheduleKind::kConstant));
    }
  }
  {
    auto [holder, path] = f.Holder("sampling");
    if (holder->contains("sampling")) {
      const Json& sampling = (*holder)["sampling"];
      const JsonPath at = path.Key("sampling");
      RETURN_IF_ERROR(CheckKeys(sampling, at, {"temperature", "top_p", "top_k"}));
      ASSIGN_OR_RETURN(stage.temperature, GetNumberOr(sampling, "temperature", at, 1.0));
      ASSIGN_OR_RETURN(stage.top_p, GetNumberOr(sampling, "top_p", at, 1.0));
      ASSIGN_OR_RETURN(stage.top_k, GetIntOr(sampling, "top_k", at, 0));
      RETURN_IF_ERROR(Expect(stage.temperature >= 0, at.Key("temperature"), "must be >= 0"));
      if (stage.kind == StageKind::kGrpo && stage.temperature == 0) {
        return at.Key("temperature").Error(
            "must be > 0 for GRPO: greedy decoding gives every sample of a group the same answer");
      }
      RETURN_IF_ERROR(Expect(stage.top_p > 0 && stage.top_p <= 1, at.Key("top_p"), "must be in (0, 1]"));
      RETURN_IF_ERROR(Expect(stage.top_k >= 0, at.Key("top_k"), "must be >= 0"));
    }
  }
  {
    auto [holder, path] = f.Holder("thinking");
    ASSIGN_OR_RETURN(stage.thinking, GetChoice<ThinkingMode>(*holder, "thinking", path,
                                                             {{"think", ThinkingMode::kThink},
                                                              {"no_think", ThinkingMode::kNoThink},
                                                              {"both", ThinkingMode::kBoth}},
                                                             ThinkingMode::kNoThink));
    if (stage.thinking == ThinkingMode::kBoth && stage.batch_prompts % 2 != 0) {
      return path.Key("thinking").Error(StrCat(
          "\"both\" splits the batch equally between modes: batch_prompts must be even, got ",
          stage.batch_prompts));
    }
  }
  ASSIGN_OR_RETURN(stage.max_prompt_tokens, integer("max_prompt_tokens", 1024, 1));
  ASSIGN_OR_RETURN(stage.max_response_tokens, integer("max_response_tokens", 1024, 1));
  {
    auto [holder, path] = f.Holder("overlong");
    ASSIGN_OR_RETURN(stage.overlong, GetChoice<OverlongPolicy>(*holder, "overlong", path,
                                                               {{"zero_reward", OverlongPolicy::kZeroReward},
                                                                {"exclude", OverlongPolicy::kExclude},
                                                                {"keep", OverlongPolicy::kKeep}},
                                                               OverlongPolicy::kZeroReward));
  }
  {
    auto [holder, path] = f.Holder("dynamic_filtering");
    if (holder->contains("dynamic_filtering")) {
      const Json& filtering = (*holder)["dynamic_filtering"];
      const JsonPath at = path.Key("dynamic_filtering");
      if (filtering.is_boolean()) {
        stage.filtering.enabled = filtering.get<bool>();
      } else {
        RETURN_IF_ERROR(CheckKeys(filtering, at,
                                  {"enabled", "max_refill_rounds", "retire_solved", "retire_unsolved"}));
        ASSIGN_OR_RETURN(stage.filtering.enabled, GetBoolOr(filtering, "enabled", at, true));
        ASSIGN_OR_RETURN(stage.filtering.max_refill_rounds,
                         GetIntOr(filtering, "max_refill_rounds", at, 0));
        RETURN_IF_ERROR(Expect(stage.filtering.max_refill_rounds >= 0 &&
                                   stage.filtering.max_refill_rounds <= 64,
                               at.Key("max_refill_rounds"), "must be in [0, 64]"));
        ASSIGN_OR_RETURN(stage.filtering.retire_solved, GetBoolOr(filtering, "retire_solved", at, false));
        ASSIGN_OR_RETURN(stage.filtering.retire_unsolved,
                         GetBoolOr(filtering, "retire_unsolved", at, false));
      }
    }
  }
  {
    auto [steps_holder, steps_path] = f.Holder("steps");
    auto [epochs_holder, epochs_path] = f.Holder("epochs");
    const bool has_steps = steps_holder->contains("steps");
    const bool has_epochs = epochs_holder->contains("epochs");
    if (has_steps == has_epochs) {
      return f.stage_path.Key("steps").Error(has_steps ? "set steps or epochs, not both"
                                                       : "required (or epochs)");
    }
    ASSIGN_OR_RETURN(stage.steps, integer("steps", 0, has_steps ? 1 : 0));
    ASSIGN_OR_RETURN(stage.epochs, integer("epochs", 0, has_epochs ? 1 : 0));
  }
  ASSIGN_OR_RETURN(stage.checkpoint_every, integer("checkpoint_every", 0, 0));
  ASSIGN_OR_RETURN(stage.eval_every, integer("eval_every", 0, 0));
  ASSIGN_OR_RETURN(stage.micro_batch_tokens, integer("micro_batch_tokens", 0, 0));
  {
    auto [holder, path] = f.Holder("reset_optimizer");
    ASSIGN_OR_RETURN(stage.reset_optimizer, GetBoolOr(*holder, "reset_optimizer", path, true));
  }
  {
    auto [holder, path] = f.Holder("eval");
    if (holder->contains("eval")) {
      const JsonPath at = path.Key("eval");
      const Json& eval = (*holder)["eval"];
      RETURN_IF_ERROR(CheckKeys(eval, at, {"limit", "temperature"}));
      ASSIGN_OR_RETURN(stage.eval_limit, GetIntOr(eval, "limit", at, 0));
      RETURN_IF_ERROR(Expect(stage.eval_limit >= 0, at.Key("limit"), "must be >= 0"));
      ASSIGN_OR_RETURN(stage.eval_temperature, GetNumberOr(eval, "temperature", at, 0.0));
      RETURN_IF_ERROR(Expect(stage.eval_temperature >= 0, at.Key("temperature"), "must be >= 0"));
    }
  }
  {
    auto [holder, path] = f.Holder("curriculum");
    if (holder->contains("curriculum")) {
      const JsonPath at = path.Key("curriculum");
      const Json& phases = (*holder)["curriculum"];
      if (!phases.is_array() || phases.empty()) {
        return at.Error("expected a non-empty list of {max_response_tokens, steps} phases");
      }
      int64_t total = 0;
      for (size_t i = 0; i < phases.size(); ++i) {
        const JsonPath p = at.Index(i);
        RETURN_IF_ERROR(CheckKeys(phases[i], p, {"max_response_tokens", "max_prompt_tokens", "steps"}));
        CurriculumPhase phase;
        ASSIGN_OR_RETURN(phase.max_response_tokens,
                         GetIntOr(phases[i], "max_response_tokens", p, stage.max_response_tokens));
        ASSIGN_OR_RETURN(phase.max_prompt_tokens,
                         GetIntOr(phases[i], "max_prompt_tokens", p, stage.max_prompt_tokens));
        ASSIGN_OR_RETURN(phase.steps, GetIntOr(phases[i], "steps", p, 0));
        RETURN_IF_ERROR(Expect(phase.max_response_tokens >= 1, p.Key("max_response_tokens"), "must be >= 1"));
        RETURN_IF_ERROR(Expect(phase.max_prompt_tokens >= 1, p.Key("max_prompt_tokens"), "must be >= 1"));
        const bool last = i + 1 == phases.size();
        if (phase.steps < (last ? 0 : 1)) {
          return p.Key("steps").Error(last ? "must be >= 0 (0: until the stage ends)"
                                           : "must be >= 1 (only the last phase may run to the end)");
        }
        if (i > 0 && phase.max_response_tokens < stage.curriculum.back().max_response_tokens) {
          return p.Key("max_response_tokens").Error("a curriculum only lengthens: must not shrink");
        }
        total += phase.steps;
        stage.curriculum.push_back(phase);
      }
      if (stage.steps > 0 && total > stage.steps) {
        return at.Error(StrCat("phases add up to ", total, " steps, more than the stage's ", stage.steps));
      }
    }
  }
  return stage;
}

}  // namespace

absl::string_view RewardTypeName(RewardType type) {
  switch (type) {
    case RewardType::kRewardModel: return "reward_model";
    case RewardType::kIf: return "if";
    case RewardType::kIfPlusRm: return "if+rm";
    case RewardType::kMath: return "math";
    case RewardType::kCode: return "code";
    case RewardType::kSwe: return "swe";
  }
  return "?";
}

absl::string_view StageKindName(StageKind kind) { return kind == StageKind::kSft ? "sft" : "grpo"; }

std::string VerifierBackendFor(RewardType type) {
  switch (type) {
    case RewardType::kRewardModel: return "";
    case RewardType::kIf:
    case RewardType::kIfPlusRm: return "if";
    case RewardType::kMath: return "math";
    case RewardType::kCode: return "code";
    case RewardType::kSwe: return "swe";
  }
  return "";
}

CurriculumPhase StageConfig::LimitsAt(int64_t step) const {
  CurriculumPhase limits{max_response_tokens, max_prompt_tokens, 0};
  int64_t start = 0;
  for (const CurriculumPhase& phase : curriculum) {
    limits = phase;
    if (phase.steps == 0 || step < start + phase.steps) break;
    start += phase.steps;
  }
  return limits;
}

absl::StatusOr<CascadeConfig> ParseCascadeConfig(absl::string_view text, const std::string& source,
                                                 const std::string& base_dir) {
  ASSIGN_OR_RETURN(Json document, ParseJson(text, source));
  const JsonPath root(source);
  RETURN_IF_ERROR(CheckKeys(document, root, TopLevelKeys()));
  CascadeConfig config;
  config.source = source;
  config.document = document;
  ASSIGN_OR_RETURN(config.name, GetStringOr(document, "name", root, "cascade"));
  ASSIGN_OR_RETURN(config.model, GetString(document, "model", root));
  config.model = Resolve(base_dir, config.model);
  {
    std::error_code error;
    if (!fs::is_regular_file(fs::path(config.model) / "config.json", error)) {
      return root.Key("model").Error(
          StrCat("\"", config.model, "\" is not a model directory (no config.json)"));
    }
  }
  ASSIGN_OR_RETURN(config.output_dir, GetString(document, "output_dir", root));
  RETURN_IF_ERROR(Expect(!config.output_dir.empty(), root.Key("output_dir"), "must not be empty"));
  config.output_dir = Resolve(base_dir, config.output_dir);
  ASSIGN_OR_RETURN(int64_t seed, GetIntOr(document, "seed", root, 0));
  RETURN_IF_ERROR(Expect(seed >= 0, root.Key("seed"), "must be >= 0"));
  config.seed = static_cast<uint64_t>(seed);

  ServicesConfig& services = config.services;
  if (document.contains("services")) {
    const JsonPath at = root.Key("services");
    const Json& s = document["services"];
    RETURN_IF_ERROR(CheckKeys(s, at, ServiceKeys()));
    ASSIGN_OR_RETURN(services.embedded, GetBoolOr(s, "embedded", at, false));
    ASSIGN_OR_RETURN(services.rollout, GetAddresses(s, "rollout", at));
    ASSIGN_OR_RETURN(services.verifier, GetAddresses(s, "verifier", at));
    ASSIGN_OR_RETURN(services.reward_model, GetAddresses(s, "reward_model", at));
    ASSIGN_OR_RETURN(services.learner, GetStringOr(s, "learner", at, ""));
    if (!services.learner.empty()) RETURN_IF_ERROR(CheckAddress(services.learner, at.Key("learner")));
    ASSIGN_OR_RETURN(services.reward_model_dir, GetStringOr(s, "reward_model_dir", at, ""));
    ASSIGN_OR_RETURN(services.judge_dir, GetStringOr(s, "judge_dir", at, ""));
    for (auto [key, dir] : {std::pair<const char*, std::string*>{"reward_model_dir", &services.reward_model_dir},
                            {"judge_dir", &services.judge_dir}}) {
      if (dir->empty()) continue;
      *dir = Resolve(base_dir, *dir);
      std::error_code error;
      if (!fs::is_regular_file(fs::path(*dir) / "config.json", error)) {
        return at.Key(key).Error(StrCat("\"", *dir, "\" is not a model directory (no config.json)"));
      }
    }
    ASSIGN_OR_RETURN(services.threads, GetIntOr(s, "threads", at, 0));
    RETURN_IF_ERROR(Expect(services.threads >= 0, at.Key("threads"), "must be >= 0"));
    ASSIGN_OR_RETURN(services.activation_checkpointing,
                     GetBoolOr(s, "activation_checkpointing", at, false));
    ASSIGN_OR_RETURN(services.call_timeout_s, GetNumberOr(s, "call_timeout_s", at, 600.0));
    RETURN_IF_ERROR(Expect(services.call_timeout_s > 0, at.Key("call_timeout_s"), "must be > 0"));
    ASSIGN_OR_RETURN(services.unavailable_timeout_s, GetNumberOr(s, "unavailable_timeout_s", at, 120.0));
    RETURN_IF_ERROR(Expect(services.unavailable_timeout_s > 0, at.Key("unavailable_timeout_s"), "must be > 0"));
    ASSIGN_OR_RETURN(services.items_per_call, GetIntOr(s, "items_per_call", at, services.items_per_call));
    RETURN_IF_ERROR(Expect(services.items_per_call >= 1, at.Key("items_per_call"), "must be >= 1"));
  } else {
    return root.Key("services").Error(
        "required: {\"embedded\": true} or the addresses of rollout, learner, verifier and reward_model");
  }

  static const Json kEmpty = Json::object();
  const Json* defaults = &kEmpty;
  const JsonPath defaults_path = root.Key("defaults");
  if (document.contains("defaults")) {
    defaults = &document["defaults"];
    std::vector<std::string> allowed = StageKeys();
    allowed.erase(std::find(allowed.begin(), allowed.end(), "name"));
    RETURN_IF_ERROR(CheckKeys(*defaults, defaults_path, allowed));
  }
  const JsonPath stages_path = root.Key("stages");
  if (!document.contains("stages")) return stages_path.Error("required: a list of stages");
  const Json& stages = document["stages"];
  if (!stages.is_array() || stages.empty()) {
    return stages_path.Error("expected a non-empty list of stages, got " +
                             (stages.is_array() ? std::string("an empty list") : JsonTypeName(stages)));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < stages.size(); ++i) {
    StageFields fields{stages[i], *defaults, stages_path.Index(i), defaults_path};
    if (!stages[i].is_object()) return stages_path.Index(i).Error("expected an object, got " + JsonTypeName(stages[i]));
    ASSIGN_OR_RETURN(StageConfig stage, ParseStage(fields, base_dir));
    if (!names.insert(stage.name).second) {
      return stages_path.Index(i).Key("name").Error(StrCat("duplicate stage name \"", stage.name, "\""));
    }
    config.stages.push_back(std::move(stage));
  }

  // Every service a stage needs must be reachable or embedded.
  auto need = [&](bool present, absl::string_view service, absl::string_view why) -> absl::Status {
    if (present || services.embedded) return absl::OkStatus();
    return root.Key("services").Key(service).Error(
        StrCat("required (", why, "), or set services.embedded: true"));
  };
  RETURN_IF_ERROR(need(!services.learner.empty(), "learner", "every stage trains"));
  bool generates = false;
  for (size_t i = 0; i < config.stages.size(); ++i) {
    const StageConfig& stage = config.stages[i];
    generates = generates || stage.kind == StageKind::kGrpo || stage.eval.has_value();
    if (stage.kind != StageKind::kGrpo) continue;
    const RewardType type = stage.reward.type;
    if (type == RewardType::kRewardModel || type == RewardType::kIfPlusRm) {
      const JsonPath at = stages_path.Index(i).Key("reward").Key("type");
      if (services.reward_model.empty() && services.reward_model_dir.empty()) {
        return at.Error(StrCat("\"", RewardTypeName(type),
                               "\" needs a reward model: set services.reward_model (addresses) or "
                               "services.reward_model_dir (embedded)"));
      }
      if (services.reward_model.empty() && !services.embedded) {
        return at.Error("services.reward_model_dir runs only embedded: set services.embedded: true");
      }
    } else {
      RETURN_IF_ERROR(need(!services.verifier.empty(), "verifier",
                           StrCat("stage \"", stage.name, "\" is verified")));
    }
    if (type == RewardType::kSwe && stage.reward.backend_options.value("similarity", "") == "semantic" &&
        services.verifier.empty() && services.judge_dir.empty()) {
      return stages_path.Index(i).Key("reward").Key("options").Key("similarity").Error(
          "semantic similarity needs a judge model: set services.judge_dir");
    }
  }
  if (generates) RETURN_IF_ERROR(need(!services.rollout.empty(), "rollout", "stages generate"));
  return config;
}

absl::StatusOr<CascadeConfig> LoadCascadeConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(path, ": cannot read the file"));
  std::stringstream text;
  text << in.rdbuf();
  std::string base = fs::path(path).parent_path().string();
  if (base.empty()) base = ".";
  return ParseCascadeConfig(text.str(), path, fs::absolute(base).lexically_normal().string());
}

}  // namespace cascade::orchestrator
