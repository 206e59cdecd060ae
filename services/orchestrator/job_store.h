// The orchestrator's durable state in SQLite: jobs, their stages, every
// completed step with its metrics, checkpoints, evaluations (the cross-stage
// matrix), events, and prompts retired by dynamic filtering.
//
// Resume protocol (no step lost or done twice):
//   1. A step's row and, when one was taken after it, its checkpoint row are
//      written in one transaction (RecordStep).
//   2. On resume, the latest checkpoint is the restart point; rows of steps
//      and evaluations after it describe work whose weights were lost with
//      the crash, so RollBackTo deletes them before the walker redoes those
//      steps (seeded, they come out the same).
//
// The database runs in WAL mode, so `orchestrator status` in another process
// can read while a job writes.
//
// Thread-safe: one connection behind a mutex.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_JOB_STORE_H_
#define CASCADE_SERVICES_ORCHESTRATOR_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/json_util.h"

struct sqlite3;

namespace cascade::orchestrator {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };
// "queued", "running", "succeeded", "failed", "cancelled".
std::string JobStateName(JobState state);
absl::StatusOr<JobState> ParseJobState(const std::string& name);

struct JobRecord {
  std::string job_id;
  std::string name;
  // cascade.json text and the file it came from.
  std::string config_text;
  std::string source;
  std::string output_dir;
  JobState state = JobState::kQueued;
  std::string error;
  // Unix seconds.
  double created_at = 0.0;
  double updated_at = 0.0;
};

struct StageRecord {
  int stage_index = 0;
  std::string name;
  std::string domain;
  // "sft" or "grpo".
  std::string kind;
  int64_t total_steps = 0;
  // Policy version when the stage started and ended (-1: not yet).
  int64_t start_version = -1;
  int64_t end_version = -1;
  // "pending", "running", "done".
  std::string state = "pending";
};

// One completed training step.
struct StepRecord {
  int stage_index = 0;
  // 0-based step within the stage.
  int64_t step = 0;
  // Policy version after the step.
  int64_t policy_version = 0;
  double reward_mean = 0.0;
  double reward_std = 0.0;
  double filtered_fraction = 0.0;
  double response_tokens_mean = 0.0;
  double truncation_rate = 0.0;
  double loss = 0.0;
  double entropy = 0.0;
  double logprob_mismatch = 0.0;
  // Step-time breakdown, seconds; other = total - the four phases.
  double generate_s = 0.0;
  double verify_s = 0.0;
  double train_s = 0.0;
  double sync_s = 0.0;
  double total_s = 0.0;
  // Anything else worth keeping (refill rounds, learning rate, ...).
  Json extra = Json::object();
  double created_at = 0.0;
};

struct CheckpointRecord {
  int stage_index = 0;
  // Steps of that stage completed when it was taken.
  int64_t steps_done = 0;
  int64_t policy_version = 0;
  std::string path;
  // Hex SHA-256 of the model weights file.
  std::string weights_sha256;
  double created_at = 0.0;
};

// Mean reward on domain `domain_stage_index`'s eval set after `after_stage_index`
// had run `at_step` steps (-1: before the first stage's first step).
struct EvalRecord {
  int after_stage_index = 0;
  int64_t at_step = 0;
  int domain_stage_index = 0;
  std::string domain;
  double reward_mean = 0.0;
  int64_t samples = 0;
  double created_at = 0.0;
};

struct EventRecord {
  int64_t sequence = 0;
  double time = 0.0;
  // "info", "warning", "error".
  std::string level;
  std::string message;
};

class JobStore {
 public:
  // Opens or creates the database at `path` (its directory must exist).
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts `job` with a fresh id ("job-YYYYMMDD-HHMMSS-xxxx") unless
  // job.job_id is set; returns the id.
  absl::StatusOr<std::string> CreateJob(const JobRecord& job);
  absl::StatusOr<JobRecord> GetJob(const std::string& job_id);
  // Newest first.
  absl::StatusOr<std::vector<JobRecord>> ListJobs();
  absl::Status SetJobState(const std::string& job_id, JobState state,
                           const std::string& error = "");

  // Inserts or replaces the stage row (job_id, stage_index).
  absl::Status PutStage(const std::string& job_id, const StageRecord& stage);
  absl::StatusOr<std::vector<StageRecord>> Stages(const std::string& job_id);

  // Step row plus, optionally, the checkpoint taken after it: one transaction.
  absl::Status RecordStep(const std::string& job_id, const StepRecord& step,
                          const std::optional<CheckpointRecord>& checkpoint = std::nullopt);
  absl::Status RecordCheckpoint(const std::string& job_id, const CheckpointRecord& checkpoint);
  // Ordered by stage, then step.
  absl::StatusOr<std::vector<StepRecord>> Steps(const std::string& job_id);
  // The newest checkpoint (highest stage, then steps_done), if any.
  absl::StatusOr<std::optional<CheckpointRecord>> LatestCheckpoint(const std::string& job_id);
  // Deletes steps, evaluations and retirements after `checkpoint` (and
  // checkpoints newer than it); returns the number of step rows removed.
  absl::StatusOr<int64_t> RollBackTo(const std::string& job_id, const CheckpointRecord& checkpoint);

  absl::Status AddEval(const std::string& job_id, const EvalRecord& eval);
  absl::StatusOr<std::vector<EvalRecord>> Evals(const std::string& job_id);

  absl::Status AddEvent(const std::string& job_id, const std::string& level,
                        const std::string& message);
  // Events with sequence > `after` (for tailing), oldest first.
  absl::StatusOr<std::vector<EventRecord>> Events(const std::string& job_id, int64_t after = 0);

  // Prompts retired from a stage's training set by dynamic filtering after
  // `steps_done` steps of it (RollBackTo un-retires those after the checkpoint).
  absl::Status RetirePrompts(const std::string& job_id, int stage_index, int64_t steps_done,
                             const std::vector<std::string>& prompt_ids);
  absl::StatusOr<std::vector<std::string>> RetiredPrompts(const std::string& job_id,
                                                          int stage_index);

 private:
  JobStore(sqlite3* db, std::string path);
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NOT_FOUND unless a job row with `job_id` exists.
  absl::Status RequireJob(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The path as given to Open, for messages.
  const std::string path_;
  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_JOB_STORE_H_
