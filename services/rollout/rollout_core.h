// The rollout replica without gRPC: a versioned copy of the policy, a queue of
// generation requests, a scheduler that batches them, and weight swaps.
//
// Batching: one scheduler thread takes sequences (prompt x sample) from the
// queued requests in arrival order until the batch's token budget
// (prompt length + max_new_tokens per sequence) is spent, runs them as one
// model::Model::Generate call, delivers the finished responses to their
// requests, and repeats. Sequences of concurrent requests therefore share a
// batch; a request larger than the budget is split across batches. The model
// API generates whole batches, so merging happens between Generate calls,
// not between decoding steps.
//
// Versions (strict on-policy):
//   1. Submit refuses a request whose policy_version is not the one served
//      (FAILED_PRECONDITION), never serving it with other weights.
//   2. ApplyWeights builds the new model next to the serving one and swaps
//      the pointer under the lock; the scheduler reads the pointer once per
//      batch, so a batch sees either the old weights or the new ones, never a
//      mix. A failed ApplyWeights leaves the old version serving.
//   3. A queued request whose version was replaced before its sequences ran
//      finishes with FAILED_PRECONDITION.
//
// Memory: during a swap both copies of the weights are alive.
//
// Thread-safe.
#ifndef CASCADE_SERVICES_ROLLOUT_ROLLOUT_CORE_H_
#define CASCADE_SERVICES_ROLLOUT_ROLLOUT_CORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/worker_pool.h"
#include "model/runtime.h"

namespace cascade::rollout {

enum class FinishReason { kStop, kLength, kCancelled };

struct PromptInput {
  // Echoed in the responses.
  std::string prompt_id;
  // Chat template already applied; at least one token.
  std::vector<int64_t> token_ids;
};

struct GenerateInput {
  std::vector<PromptInput> prompts;
  // G: responses per prompt.
  int samples_per_prompt = 1;
  // `sampling.seed` is the request's seed: sample j of prompt i draws from
  // the stream SampleSeed(seed, i, j), so results do not depend on batching.
  model::SamplingParams sampling;
  // The version the caller requires.
  int64_t policy_version = 0;
};

struct SampleOutput {
  std::string prompt_id;
  // Position of the prompt in GenerateInput::prompts.
  int prompt_index = 0;
  int sample_index = 0;
  std::vector<int64_t> token_ids;
  // log p(token) under the policy that produced it (temperature 1).
  std::vector<float> logprobs;
  FinishReason finish_reason = FinishReason::kLength;
  int64_t policy_version = 0;
};

struct RolloutOptions {
  // Token budget of one batch: the sum over its sequences of prompt length
  // plus max_new_tokens. Default 16384.
  int64_t max_batch_tokens = 16384;
  // Requests that may wait; Submit fails with RESOURCE_EXHAUSTED beyond. Default 256.
  int max_queued_requests = 256;
};

struct RolloutState {
  int64_t policy_version = 0;
  int queued_requests = 0;
  int running_sequences = 0;
  int64_t max_batch_tokens = 0;
  // Batched Generate calls run since start (sequences / batches = mean batch size).
  int64_t batches_total = 0;
  int64_t sequences_total = 0;
};

// The random stream of sample j of prompt i of a request seeded with `seed`.
uint64_t SampleSeed(uint64_t seed, int prompt_index, int sample_index);

// FAILED_PRECONDITION naming both versions; the refusal of a stale request.
absl::Status VersionMismatchError(int64_t required, int64_t served);

class RolloutCore {
 public:
  // Called from the scheduler thread with responses as they finish (in
  // batch order, not request order), never with the core's lock held.
  using ResponsesCallback = std::function<void(std::vector<SampleOutput>)>;
  // Called exactly once, after the last ResponsesCallback: OK when every
  // response was delivered, CANCELLED after Cancel, otherwise the failure.
  using DoneCallback = std::function<void(absl::Status)>;

  // Serves `model` as `policy_version`. Starts the scheduler thread.
  RolloutCore(std::unique_ptr<model::Model> model, int64_t policy_version,
              RolloutOptions options = {});
  // Stops the scheduler; requests still queued finish with UNAVAILABLE.
  ~RolloutCore();
  RolloutCore(const RolloutCore&) = delete;
  RolloutCore& operator=(const RolloutCore&) = delete;

  // Queues `input` and returns its id (for Cancel). Fails without calling
  // either callback when the input is invalid, the version is not the one
  // served (FAILED_PRECONDITION) or the queue is full (RESOURCE_EXHAUSTED).
  [[nodiscard]] absl::StatusOr<uint64_t> Submit(GenerateInput input, ResponsesCallback on_responses,
                                                DoneCallback on_done);

  // Stops scheduling the request's remaining sequences; responses of a batch
  // already running are dropped. Its DoneCallback gets CANCELLED. Unknown or
  // finished ids are ignored.
  void Cancel(uint64_t request_id);

  // Submit and wait: every response, ordered by prompt then sample. The
  // request is cancelled when `timeout` passes first (DEADLINE_EXCEEDED).
  [[nodiscard]] absl::StatusOr<std::vector<SampleOutput>> Generate(
      GenerateInput input, absl::Duration timeout = absl::Minutes(10));

  // Replaces the weights with `tensors` (every parameter once, named and
  // shaped as Parameters() says; F32/BF16/F16 are converted) and serves them
  // as `version`. On any error the old weights and version keep serving.
  // Updates are serialized; generation continues while the new copy is built.
  [[nodiscard]] absl::Status ApplyWeights(int64_t version,
                                          const std::vector<model::TensorView>& tensors);

  // ApplyWeights with the safetensors of a model directory on shared
  // storage (WeightsHeader.model); config.json is not re-read.
  [[nodiscard]] absl::Status ApplyWeightsFromDir(int64_t version, const std::string& dir);

  // The parameters a weight update must provide.
  std::vector<model::ParameterInfo> Parameters() const;
  int64_t policy_version() const;
  RolloutState State() const;

 private:
  struct Request;
  struct Metrics;
  // One sequence of a running batch: request and sequence index (i * G + j).
  struct Slot {
    std::shared_ptr<Request> request;
    int64_t sequence = 0;
  };

  void SchedulerLoop();
  // Takes sequences from the queue up to the token budget. Requests that end
  // here (cancelled, stale) append their DoneCallback call to `deferred`.
  std::vector<Slot> FormBatch(std::vector<std::function<void()>>* deferred)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RolloutOptions options_;
  std::unique_ptr<Metrics> metrics_;

  // Serializes ApplyWeights calls (held while the new copy is built, not
  // while serving).
  absl::Mutex apply_mu_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const model::Model> model_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  // Requests with sequences not yet scheduled, in arrival order.
  std::deque<std::shared_ptr<Request>> queue_ ABSL_GUARDED_BY(mu_);
  // Every unfinished request by id (queued or with sequences running).
  std::map<uint64_t, std::shared_ptr<Request>> live_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int running_sequences_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t batches_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sequences_total_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // True while SchedulerLoop runs; the destructor waits for it to turn false.
  bool loop_running_ ABSL_GUARDED_BY(mu_) = false;

  // Last member: its thread uses everything above, so it stops first.
  std::unique_ptr<WorkerPool> scheduler_;
};

}  // namespace cascade::rollout

#endif  // CASCADE_SERVICES_ROLLOUT_ROLLOUT_CORE_H_
