// cascade.json: the job description the orchestrator walks.
//
// ParseCascadeConfig checks the whole document before anything starts:
// unknown keys, wrong types, out-of-range values, impossible combinations
// and missing files are errors that name the JSON path and what was expected,
// e.g.
//   cascade.json: stages[2].reward.type: unknown reward "maths" (expected one
//   of: reward_model, if, if+rm, math, code, swe)
// services/orchestrator/cascade.schema.json documents the same schema for
// editors; cascade_config_test checks that both accept the same keys.
//
// Relative paths are resolved against the directory of the cascade.json file.
//
// Thread-safety: plain values.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_CASCADE_CONFIG_H_
#define CASCADE_SERVICES_ORCHESTRATOR_CASCADE_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json_util.h"

namespace cascade::orchestrator {

enum class StageKind { kSft, kGrpo };
// How a stage's responses are scored (DESIGN.md §1, rewards per domain).
enum class RewardType { kRewardModel, kIf, kIfPlusRm, kMath, kCode, kSwe };
enum class ThinkingMode { kThink, kNoThink, kBoth };
// What happens to a response cut at the length limit.
enum class OverlongPolicy { kZeroReward, kExclude, kKeep };
enum class LrScheduleKind { kConstant, kLinearWarmup, kCosine };

absl::string_view RewardTypeName(RewardType type);
absl::string_view StageKindName(StageKind kind);
// The verifier backend a reward uses ("" for reward_model).
std::string VerifierBackendFor(RewardType type);

// Where a dataset's rows live and how their fields map onto Cascade's names.
struct DatasetSpec {
  // Absolute path of a JSONL file.
  std::string path;
  // Cascade field name -> the row's field (dotted for nested objects, e.g.
  // "reward_model.ground_truth"), so public layouts load unconverted.
  // Unmapped fields are looked up under their own name.
  std::map<std::string, std::string> fields;
  // Use at most this many rows (0: all).
  int64_t limit = 0;
};

struct RewardSpec {
  RewardType type = RewardType::kMath;
  // Passed to the verifier backend with every item (e.g. math "options",
  // swe "similarity"); merged under the row's own fields.
  Json backend_options = Json::object();
  // Per-item verifier time limit (0: the backend's default).
  double item_timeout_s = 0.0;
  // Code: reward the fraction of tests passed instead of all-or-nothing.
  bool partial_credit = false;
};

// One phase of the length curriculum.
struct CurriculumPhase {
  int64_t max_response_tokens = 0;
  // 0 on the last phase: until the stage ends.
  int64_t max_prompt_tokens = 0;
  int64_t steps = 0;
};

struct DynamicFiltering {
  // Drop prompt groups whose G rewards are all equal (zero std).
  bool enabled = true;
  // Extra sampling rounds to refill the batch with informative groups.
  int64_t max_refill_rounds = 0;
  // At each epoch end, retire prompts every sample solved (or none did).
  bool retire_solved = false;
  bool retire_unsolved = false;
};

struct StageConfig {
  std::string name;
  StageKind kind = StageKind::kGrpo;
  // Label of the domain in reports and the cross-stage eval matrix.
  std::string domain;
  RewardSpec reward;
  DatasetSpec train;
  std::optional<DatasetSpec> eval;
  // Optional system prompt put before every prompt.
  std::string system_prompt;
  int64_t batch_prompts = 8;
  // G, responses per prompt (GRPO).
  int64_t group_size = 4;
  double learning_rate = 1e-6;
  LrScheduleKind lr_schedule = LrScheduleKind::kConstant;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  ThinkingMode thinking = ThinkingMode::kNoThink;
  int64_t max_prompt_tokens = 1024;
  int64_t max_response_tokens = 1024;
  std::vector<CurriculumPhase> curriculum;
  OverlongPolicy overlong = OverlongPolicy::kZeroReward;
  DynamicFiltering filtering;
  // Exactly one of steps and epochs is set; epochs are converted to steps
  // once the dataset size is known.
  int64_t steps = 0;
  int64_t epochs = 0;
  // Checkpoint every N steps (0: only at the stage end).
  int64_t checkpoint_every = 0;
  // Evaluate every N steps (0: only at the stage start and end).
  int64_t eval_every = 0;
  // Eval prompts per domain (0: all) and the eval sampling temperature.
  int64_t eval_limit = 0;
  double eval_temperature = 0.0;
  // Learner micro-batch budget in padded tokens (0: the learner's default).
  int64_t micro_batch_tokens = 0;
  // The stage starts from fresh AdamW state (moments, bias correction), as a
  // separately launched run would; false carries the previous stage's state.
  bool reset_optimizer = true;

  // The (prompt, response) limits in force at `step` (0-based) of the stage.
  CurriculumPhase LimitsAt(int64_t step) const;
};

// Service endpoints. A service with no addresses runs embedded (in-process
// on loopback) when `embedded` is set.
struct ServicesConfig {
  bool embedded = false;
  std::vector<std::string> rollout;
  std::string learner;
  std::vector<std::string> verifier;
  std::vector<std::string> reward_model;
  // Reward model directory for the embedded reward_model service.
  std::string reward_model_dir;
  // Judge model directory (swe similarity=semantic), embedded.
  std::string judge_dir;
  // CPU threads of the embedded torch services (0: every core).
  int64_t threads = 0;
  // The embedded learner recomputes layers in the backward pass instead of
  // storing their activations (LearnerOptions::activation_checkpointing).
  bool activation_checkpointing = false;
  // Deadline of one call (generation of a whole batch, one train step).
  double call_timeout_s = 600.0;
  // How long a service may stay unreachable (all replicas) before the job fails.
  double unavailable_timeout_s = 120.0;
  // Verifier and reward-model items per call. A step's items go out as
  // ceil(items / items_per_call) concurrent calls (at least one per address),
  // so a single "dns:///" address of a scaled-out service reaches every pod.
  int64_t items_per_call = 64;
};

struct CascadeConfig {
  // The file it came from (messages) and its directory (relative paths).
  std::string source;
  std::string name;
  // Hugging Face model directory the first stage starts from.
  std::string model;
  std::string output_dir;
  uint64_t seed = 0;
  ServicesConfig services;
  std::vector<StageConfig> stages;
  // The document as given (stored with the job).
  Json document;
};

// Parses and checks `text` (from `source`, a file name for messages; paths
// resolve against `base_dir`).
absl::StatusOr<CascadeConfig> ParseCascadeConfig(absl::string_view text, const std::string& source,
                                                 const std::string& base_dir);
// Reads and parses a file.
absl::StatusOr<CascadeConfig> LoadCascadeConfig(const std::string& path);

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_CASCADE_CONFIG_H_
