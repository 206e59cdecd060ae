// The learner's training logic without gRPC: GRPO and SFT steps on a
// model::Model, AdamW with gradient clipping and an LR schedule, micro-batches
// with gradient accumulation, data parallelism over torch c10d (Gloo on CPU,
// NCCL on CUDA where libtorch has it), and atomic, checksummed checkpoints.
//
// Precision. A float32 model trains in place: the optimizer steps the model's
// own parameters. A bfloat16 model trains with float32 master weights (the
// classic mixed-precision scheme):
//   1. forward and backward run through the bfloat16 model;
//   2. after each micro-batch its bfloat16 gradients are added into float32
//      gradients of the masters, so accumulation over micro-batches does not
//      round at bfloat16 precision;
//   3. all-reduce over ranks, clipping and AdamW act on the float32 masters
//      and their float32 optimizer state;
//   4. the masters are rounded into the model's parameters, which therefore
//      always equal master.to(bfloat16).
// Checkpoints hold the float32 masters, so resuming loses nothing and a
// checkpoint opens in either precision. float16 compute is refused: without
// loss scaling its gradients underflow (use bfloat16).
//
// GRPO (DESIGN.md §1), strict on-policy, no KL: every sequence i carries its
// advantage A_i; with o_i its assistant tokens (loss_mask = 1),
//   L = -(1 / sum_i |o_i|) * sum_i sum_{t in o_i} A_i * log pi(o_i,t | prefix).
// The normaliser is the number of assistant tokens of the WHOLE batch (all
// micro-batches, all data-parallel ranks), so splitting a batch into
// micro-batches or ranks never changes the gradient. SFT is the same sum with
// A_i = 1 (token-level cross-entropy on the assistant tokens).
//
// No torch type appears here: the torch code lives in learner_core.cc only.
//
// Thread-safety: not thread-safe; the gRPC adapter serialises calls. In data
// parallel runs every rank must make the same sequence of TrainStep /
// SaveCheckpoint calls (they are collective).
#ifndef CASCADE_SERVICES_LEARNER_LEARNER_CORE_H_
#define CASCADE_SERVICES_LEARNER_LEARNER_CORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/runtime.h"

namespace cascade::learner {

enum class LossKind { kGrpo, kSft };
enum class LrSchedule { kConstant, kLinearWarmup, kCosine };

// "constant", "linear_warmup", "cosine".
absl::StatusOr<LrSchedule> ParseLrSchedule(const std::string& name);

struct OptimizerOptions {
  // Peak learning rate.
  double learning_rate = 1e-6;
  // AdamW moments and decoupled weight decay (PyTorch's AdamW defaults).
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  // Clip the global gradient L2 norm to this; <= 0 disables clipping.
  double max_grad_norm = 1.0;
  // kConstant: peak LR always. kLinearWarmup: 0 -> peak over warmup_steps,
  // then constant. kCosine: warm-up, then cosine decay to
  // min_lr_ratio * peak at total_steps (held there afterwards).
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  double min_lr_ratio = 0.0;
};

// Rendezvous of the data-parallel group (torch c10d TCPStore + Gloo).
struct DistributedOptions {
  // 1 runs without any process group.
  int world_size = 1;
  int rank = 0;
  // Rank 0 listens here; the others connect.
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // How long ranks wait for each other at rendezvous and in collectives.
  int timeout_seconds = 300;
};

// Fills world size, rank and master from the environment (WORLD_SIZE, RANK,
// MASTER_ADDR, MASTER_PORT) where set; without RANK, a hostname ending in
// "-<ordinal>" (a Kubernetes StatefulSet pod) gives the rank. Fields the
// environment does not mention keep their values.
absl::Status DistributedFromEnvironment(DistributedOptions* options);

struct LearnerOptions {
  OptimizerOptions optimizer;
  DistributedOptions distributed;
  // Default micro-batch budget in (padded) tokens; a batch can override it. A
  // sequence longer than the budget forms a micro-batch of its own.
  int64_t micro_batch_tokens = 8192;
  // The vocabulary projection of a micro-batch runs in chunks of at most
  // this many logits (tokens x vocabulary), each chunk's backward done before
  // the next, so the [tokens x vocab] logits, log-probs and their gradients
  // never exist at once: 2^25 floats (128 MiB) is 221 tokens of a 151,936-word
  // vocabulary.
  int64_t logit_chunk_elements = int64_t{1} << 25;
  // Activation checkpointing: each decoder layer keeps only its input in the
  // forward pass and is recomputed in the backward, so a micro-batch's
  // activations take one layer's worth of memory instead of every layer's,
  // for about one more forward pass of compute.
  bool activation_checkpointing = false;
  // CPU intra-op threads (0: every hardware thread).
  int num_threads = 0;
  // Where Open() places the model: "cpu", "cuda" or "cuda:N". Create() takes
  // the model where it already is.
  std::string device = "cpu";
  // Compute dtype Open() loads the model in: "float32" (trains in place) or
  // "bfloat16" (float32 master weights, see the header comment); "float16" is
  // refused. Create() takes the model's own dtype.
  std::string dtype = "float32";
};

struct Sequence {
  // Prompt and response tokens concatenated (at least 2).
  std::vector<int64_t> token_ids;
  // 1 on tokens the assistant produced (trained on); same length as
  // token_ids. The first token cannot be predicted, so loss_mask[0] must be 0.
  std::vector<uint8_t> loss_mask;
  // GRPO advantage A_i (ignored by SFT).
  float advantage = 0.0f;
  // Rollout log-probs of the assistant tokens in order (empty: not measured).
  std::vector<float> rollout_logprobs;
};

struct Batch {
  LossKind loss = LossKind::kGrpo;
  std::vector<Sequence> sequences;
  // Policy version that generated the sequences (GRPO only; must equal the
  // learner's current version).
  int64_t policy_version = 0;
  // > 0 overrides the schedule's learning rate for this step.
  double learning_rate = 0.0;
  // > 0 overrides LearnerOptions::micro_batch_tokens.
  int64_t micro_batch_tokens = 0;
  // Whom the AdamW state (moments, bias-correction step) belongs to: the
  // orchestrator sends the stage. The first step of a new non-empty scope
  // starts from fresh optimizer state, as a separately launched run would;
  // empty keeps whatever state there is.
  std::string optimizer_scope;
};

struct StepStats {
  // Version after the step (= optimizer steps taken).
  int64_t policy_version = 0;
  // Loss as normalised in the header comment, over the whole batch (all ranks).
  double loss = 0.0;
  // Global gradient L2 norm before clipping.
  double grad_norm = 0.0;
  double learning_rate = 0.0;
  // Assistant tokens in the whole batch (all ranks).
  int64_t tokens = 0;
  // Mean entropy of the policy per assistant token (nats).
  double entropy = 0.0;
  // Mean |rollout logprob - learner logprob| over assistant tokens that came
  // with rollout log-probs (0 when none did).
  double logprob_mismatch = 0.0;
  // Micro-batches this rank ran.
  int64_t micro_batches = 0;
  // True when this step began a new optimizer scope (fresh AdamW state).
  bool optimizer_reset = false;
  double seconds = 0.0;
};

// A borrowed view of one parameter for weight publishing.
struct TensorView {
  std::string name;            // Hugging Face name
  std::string dtype;           // the compute dtype: "float32" or "bfloat16"
  std::vector<int64_t> shape;
  absl::Span<const uint8_t> data;  // contiguous, little-endian
};

// Sends a new weight version to the rollout replicas (implemented by the
// publishing side; the learner only hands it the tensors).
class WeightPublisher {
 public:
  virtual ~WeightPublisher() = default;
  // Returns once every replica acknowledged `version` (or with an error).
  [[nodiscard]] virtual absl::Status Publish(int64_t version,
                                             const std::vector<TensorView>& tensors) = 0;
  // Publish, also given the model whose parameters `tensors` view, for
  // transports that move tensors themselves (collective broadcast).
  [[nodiscard]] virtual absl::Status PublishModel(int64_t version,
                                                  const std::vector<TensorView>& tensors,
                                                  const model::Model& model) {
    return Publish(version, tensors);
  }
  // Adds a replica that must receive every version from now on; returns the
  // number registered. The next Publish() brings it to the current version.
  virtual int RegisterReplica(const std::string& address) = 0;
  virtual int replica_count() const = 0;
  // The newest version `address` acknowledged (-1: none, not registered, or
  // not tracked by this publisher).
  virtual int64_t AcknowledgedVersion(const std::string& address) const { return -1; }
};

class LearnerCore {
 public:
  // Takes ownership of a float32 or bfloat16 model on the CPU or a CUDA
  // device; a bfloat16 model's float32 masters start as its weights widened
  // (Open starts them from the files instead, losing nothing). For data
  // parallel runs this blocks until every rank joined, then makes all ranks
  // start from rank 0's weights. `source_dir` (may be empty) supplies
  // tokenizer files copied into checkpoints.
  static absl::StatusOr<std::unique_ptr<LearnerCore>> Create(std::unique_ptr<model::Model> model,
                                                             const LearnerOptions& options,
                                                             std::string source_dir = "");
  // Loads a Hugging Face directory, or a checkpoint written by
  // SaveCheckpoint (then the optimizer, step and RNG state resume too), on
  // options.device in options.dtype. In bfloat16 the float32 masters are read
  // from the directory's own tensors, not widened from the rounded model.
  static absl::StatusOr<std::unique_ptr<LearnerCore>> Open(const std::string& dir,
                                                           const LearnerOptions& options);
  ~LearnerCore();
  LearnerCore(const LearnerCore&) = delete;
  LearnerCore& operator=(const LearnerCore&) = delete;

  // One optimizer step on `batch` (this rank's share of it in data parallel
  // runs). GRPO batches whose policy_version differs from version() are
  // refused with FAILED_PRECONDITION (strict on-policy).
  [[nodiscard]] absl::StatusOr<StepStats> TrainStep(const Batch& batch);

  // The first half of TrainStep: clears the gradients and accumulates those of
  // `batch` over micro-batches, all-reduced across ranks, into the float32
  // gradients of master_weights(); no optimizer step. Returned stats have
  // every field but grad_norm/learning_rate. Public so tests can compare the
  // gradients with a direct computation.
  [[nodiscard]] absl::StatusOr<StepStats> ComputeGradients(const Batch& batch);

  // Writes model (Hugging Face), optimizer, step and RNG state to `dir`
  // atomically with a checksum manifest. Only rank 0 writes; collective.
  [[nodiscard]] absl::Status SaveCheckpoint(const std::string& dir);
  // Restores a checkpoint after verifying its manifest (DATA_LOSS names the
  // corrupt file). The model architecture must match.
  [[nodiscard]] absl::Status LoadCheckpoint(const std::string& dir);
  // Takes the weights of a Hugging Face model directory (same architecture)
  // as version() + 1, a version no replica holds, with fresh optimizer state
  // and no scope: how a job starts a learner that trained something else.
  // A failed load leaves the learner as it was. Collective.
  [[nodiscard]] absl::Status LoadModelWeights(const std::string& dir);

  // Hands the current weights to `publisher` under version(), in the compute
  // dtype (bfloat16 in mixed precision: what the rollout replicas serve, at
  // half the bytes of the masters).
  [[nodiscard]] absl::Status PublishWeights(WeightPublisher& publisher);

  // Collective: rank 0's `bytes` replace every other rank's (a no-op with
  // one rank). Used to relay commands from the gRPC face to the other ranks.
  [[nodiscard]] absl::Status BroadcastBytes(std::string* bytes);
  int rank() const { return options_.distributed.rank; }
  int world_size() const { return options_.distributed.world_size; }

  // Learning rate the schedule gives for the step after `steps` steps.
  double ScheduledLearningRate(int64_t steps) const;

  int64_t version() const;
  // The scope the optimizer state belongs to (see Batch::optimizer_scope);
  // saved with checkpoints.
  const std::string& optimizer_scope() const { return optimizer_scope_; }
  // The model in its compute dtype (what forwards and publishing use).
  const model::Model& model() const { return *model_; }
  // The float32 weights the optimizer steps, with their gradients after
  // ComputeGradients: a separate copy in mixed precision, the model itself
  // when it computes in float32.
  const model::Transformer& master_weights() const;
  // True when the model computes in bfloat16 and float32 masters are kept.
  bool mixed_precision() const;
  const LearnerOptions& options() const { return options_; }

 private:
  struct Torch;  // masters, optimizer and process group (learner_core.cc)
  LearnerCore(std::unique_ptr<model::Model> model, const LearnerOptions& options,
              std::string source_dir);
  // Create's work; `masters` (null: built from the model's weights) is the
  // float32 copy a bfloat16 model trains through, unused for float32 models.
  static absl::StatusOr<std::unique_ptr<LearnerCore>> CreateWithMasters(
      std::unique_ptr<model::Model> model, std::unique_ptr<model::Transformer> masters,
      const LearnerOptions& options, std::string source_dir);
  // LoadCheckpoint's work; Open skips what it has already done.
  [[nodiscard]] absl::Status RestoreCheckpoint(const std::string& dir, bool verified,
                                               bool load_weights);
  // The float32 weights of model directory `dir`, on the masters' device,
  // after checking they have the learner's tensor names and shapes.
  absl::StatusOr<std::unique_ptr<model::Transformer>> LoadMatchingMasters(const std::string& dir) const;

  std::unique_ptr<model::Model> model_;
  LearnerOptions options_;
  std::string source_dir_;
  int64_t step_ = 0;
  std::string optimizer_scope_;
  std::unique_ptr<Torch> torch_;
};

}  // namespace cascade::learner

#endif  // CASCADE_SERVICES_LEARNER_LEARNER_CORE_H_
