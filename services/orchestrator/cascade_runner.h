// The stage walker: runs (or resumes) one job's cascade to its end against
// the services, writing every step, checkpoint and evaluation to the job
// store. No gRPC types here beyond the clients it is handed.
//
// One GRPO step (DESIGN.md §2), strict on-policy:
//   1. sample batch_prompts prompts (PromptSampler: a function of the seed,
//      stage and step, so a resumed job draws the same ones);
//   2. the rollout replicas hold the learner's current version (published
//      and acknowledged by every replica before anything is generated);
//      generate G responses per prompt under the curriculum's current limits;
//   3. score them: the stage's verifier backend, the reward model, or both
//      (IF+RM); overlong responses get reward 0, are excluded from the loss,
//      or are kept, as the stage says;
//   4. group advantages; dynamic filtering drops zero-variance groups and
//      refills the batch with fresh prompts for up to max_refill_rounds;
//   5. one learner step on the batch, then the new version is published;
//   6. evaluation when due, a checkpoint when due, and the step's row (with
//      its checkpoint) written in one transaction.
// SFT steps are 1 and 5 with the dataset's responses as targets.
//
// Evaluations: before the first step (row "start"), at every stage end, and
// every eval_every steps: every GRPO stage's eval set, one greedy response
// per prompt, scored by that stage's reward — the cross-stage matrix.
//
// Resume: the job restarts from its newest checkpoint; rows written after it
// are rolled back and those steps are redone (same seeds, same results).
//
// Thread-safety: Run() once; Cancel() and progress() from any thread.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_CASCADE_RUNNER_H_
#define CASCADE_SERVICES_ORCHESTRATOR_CASCADE_RUNNER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/learner/learner_client.h"
#include "services/orchestrator/cascade_config.h"
#include "services/orchestrator/dataset.h"
#include "services/orchestrator/job_store.h"
#include "services/orchestrator/replica_pool.h"
#include "services/reward_model/reward_model_client.h"
#include "services/rollout/rollout_client.h"
#include "services/verifier/verifier_client.h"
#include "tokenizer/tokenizer.h"

namespace cascade::orchestrator {

using RolloutPool = ReplicaPool<rollout::RolloutClientInterface>;
using VerifierPool = ReplicaPool<verifier::VerifierClientInterface>;
using RewardModelPool = ReplicaPool<reward_model::RewardModelClientInterface>;

// What the walker talks to; not owned. Pools may be empty when no stage
// needs them.
struct RunnerServices {
  learner::LearnerClient* learner = nullptr;
  RolloutPool* rollout = nullptr;
  VerifierPool* verifier = nullptr;
  RewardModelPool* reward_model = nullptr;
};

// Where a job stands, for progress lines, GetStatus and Watch.
struct Progress {
  int stage_index = 0;
  std::string stage_name;
  // "sft" or "grpo".
  std::string stage_kind;
  int64_t step = 0;         // steps of the stage done
  int64_t total_steps = 0;  // of the stage
  bool has_last_step = false;
  StepRecord last_step;
  // Estimated seconds to the job's end from the mean step time so far.
  double eta_s = 0.0;
  // What runs now ("generate", "train", "eval", "checkpoint", ...).
  std::string activity;
};

// "[stage 2/6 rlhf] step 3/8 reward 0.412±0.300 filtered 25% ... | ETA 1m10s":
// one line per step, logged by the walker.
std::string FormatProgressLine(const Progress& progress, size_t stages);
// "1m10s", "2h05m", "9s".
std::string FormatDurationShort(double seconds);

class CascadeRunner {
 public:
  // `tokenizer`: the policy's (chat template and stop tokens).
  CascadeRunner(CascadeConfig config, std::string job_id, JobStore* store, RunnerServices services,
                const tokenizer::Tokenizer* tokenizer);
  ~CascadeRunner();
  CascadeRunner(const CascadeRunner&) = delete;
  CascadeRunner& operator=(const CascadeRunner&) = delete;

  // Called after every step and activity change (from Run()'s thread).
  void set_progress_callback(std::function<void(const Progress&)> callback) {
    progress_callback_ = std::move(callback);
  }

  // Runs the job from its newest checkpoint to the end. CANCELLED after
  // Cancel() (at the next step boundary: at most the step in flight is lost).
  [[nodiscard]] absl::Status Run();
  void Cancel() { cancelled_.store(true); }
  Progress progress() const;

 private:
  struct Stage;
  struct Scored;
  struct Metrics;

  absl::Status Prepare();
  absl::Status RunStage(int stage_index, int64_t first_step);
  absl::Status GrpoStep(int stage_index, int64_t step, StepRecord* record, bool* trained);
  absl::Status SftStep(int stage_index, int64_t step, StepRecord* record);
  // Publishes the learner's version to every rollout replica unless done.
  absl::Status EnsurePublished(double* seconds);
  // Generates G responses for each rendered prompt, split across the
  // rollout replicas.
  absl::StatusOr<std::vector<std::vector<cascade::v1::Response>>> Generate(
      const Stage& stage, const std::vector<std::vector<int32_t>>& prompts, int group_size,
      double temperature, int64_t max_new_tokens, uint64_t seed);
  // Rewards for responses[i][j] of prompt examples[i] under `stage`'s reward.
  absl::StatusOr<std::vector<std::vector<double>>> Score(
      const Stage& stage, const std::vector<const Example*>& examples,
      const std::vector<std::vector<cascade::v1::Response>>& responses, bool for_eval);
  absl::StatusOr<std::vector<std::vector<double>>> Verify(
      const Stage& stage, const std::vector<const Example*>& examples,
      const std::vector<std::vector<std::string>>& answers);
  absl::StatusOr<std::vector<std::vector<double>>> RewardModelScores(
      const std::vector<const Example*>& examples,
      const std::vector<std::vector<std::string>>& answers);
  // Evaluates every GRPO stage's eval set and records it under
  // (after_stage_index, at_step).
  absl::Status Evaluate(int after_stage_index, int64_t at_step);
  // Saves a learner checkpoint for `steps_done` steps of `stage_index`.
  absl::StatusOr<CheckpointRecord> Checkpoint(int stage_index, int64_t steps_done);
  absl::Status PruneCheckpoints();
  std::vector<int32_t> PromptIds(const Example& example, bool think) const;
  std::string AnswerText(const cascade::v1::Response& response) const;
  void SetActivity(const std::string& activity);
  void Publish(const Progress& progress);

  const CascadeConfig config_;
  const std::string job_id_;
  JobStore* const store_;
  const RunnerServices services_;
  const tokenizer::Tokenizer* const tokenizer_;
  std::vector<int32_t> stop_ids_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::unique_ptr<Metrics> metrics_;
  std::function<void(const Progress&)> progress_callback_;
  std::atomic<bool> cancelled_{false};

  // Learner version and the version every rollout replica acknowledged.
  int64_t version_ = 0;
  int64_t published_version_ = -1;
  // Time spent recording the previous step, charged to the next one.
  double bookkeeping_s_ = 0.0;
  // Mean seconds per step so far (ETA).
  double step_seconds_total_ = 0.0;
  int64_t steps_timed_ = 0;

  mutable absl::Mutex mu_;
  Progress progress_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_CASCADE_RUNNER_H_
