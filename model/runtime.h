// Torch-free façade over the transformer: load/create/save a model, batched
// generation with a KV cache, teacher-forced log-probs, raw logits.
//
// Callers that do not train (rollout, reward model, tests, CLI) use this
// header and never see a torch type; the learner reaches the tensors through
// model/transformer.h (Model::transformer()).
//
// Sampling is per request: each request's tokens are drawn from its own
// random stream, seeded by SamplingParams::seed, so a request's output does not
// depend on which other requests share its batch. Callers that want G
// different samples of one prompt give them G different seeds.
//
// Thread-safety: a Model is safe for concurrent Generate/TokenLogProbs/Logits
// calls (each call owns its cache and RNG state).
#ifndef CASCADE_MODEL_RUNTIME_H_
#define CASCADE_MODEL_RUNTIME_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/status.h"

namespace cascade::model {

class Transformer;

struct RuntimeOptions {
  // "cpu", "cuda" or "cuda:N".
  std::string device = "cpu";
  // Compute dtype ("float32", "bfloat16", "float16"); empty: float32 on CPU, bfloat16 on CUDA.
  std::string dtype;
  // CPU intra-op threads; 0 = every hardware thread.
  int num_threads = 0;
};

struct SamplingParams {
  // 0 means greedy (argmax).
  double temperature = 1.0;
  // Nucleus sampling mass in (0, 1]; 1 disables it.
  double top_p = 1.0;
  // Keep the k most likely tokens; 0 disables it.
  int64_t top_k = 0;
  // Seed of this request's random stream.
  uint64_t seed = 0;
  // At least 1.
  int64_t max_new_tokens = 16;
  // Generation stops after emitting any of these (the stop token is returned).
  std::vector<int64_t> stop_token_ids;
  // When false, the config's eos_token_id(s) also stop generation.
  bool ignore_eos = false;
};

struct GenerationRequest {
  std::vector<int64_t> prompt;  // at least one token
  SamplingParams params;
};

enum class FinishReason { kStop, kLength };
const char* FinishReasonName(FinishReason reason);  // "stop" / "length"

struct GenerationResult {
  std::vector<int64_t> token_ids;
  // log p(token | prefix) under the model's unmodified distribution
  // (temperature 1, no top-k/top-p), i.e. the policy log-prob the learner
  // recomputes with TokenLogProbs.
  std::vector<float> logprobs;
  FinishReason finish_reason = FinishReason::kLength;
};

struct GenerateOptions {
  // Without the cache every step recomputes the whole sequence (for tests).
  bool use_cache = true;
  // Token fed in padding slots; any valid id (padding is masked out).
  int64_t pad_token_id = 0;
  // Where each step's tokens are drawn. kHost copies the [rows x vocab]
  // logits to the CPU and draws each row there. kDevice draws on the model's
  // device (one sort, softmax and cumulative sum for the whole batch, one
  // uniform per row from the request's own stream) and copies back one token
  // and log-prob per row, which on a GPU saves the vocabulary-sized copy and
  // the CPU's exp over every row. kAuto: kDevice on CUDA, kHost on the CPU.
  // Both honour temperature, top-k and top-p, are reproducible per seed and
  // do not depend on the other rows given the same logits (on CUDA the
  // logits themselves can move with the batch shape), but map a seed to
  // different tokens. Logits that are not finite fail the call (INTERNAL).
  enum class Sampler { kAuto, kHost, kDevice };
  Sampler sampler = Sampler::kAuto;
  // Rows the device sampler processes at once; 0 sizes the chunks so that
  // its temporaries (about 50 bytes per logit) stay near 256 MB.
  int64_t sampler_chunk_rows = 0;
};

struct LogProbOptions {
  // Positions per chunk of the vocabulary projection (and of the cached
  // forward when scoring). <= 0: one piece.
  int64_t chunk_size = 512;
};

// A sequence that left a GenerationBatch, under the caller's id.
struct FinishedSequence {
  uint64_t id = 0;
  GenerationResult result;
};

class Model;

// A running batch whose sequences join and leave between decoding steps
// (continuous batching): Add prefills new sequences and merges them into the
// batch's KV cache, Step draws one token for every sequence and returns the
// ones that finished, which leave the batch at once.
//
// Merging keeps one cache column per decoding step for the whole batch: a
// joining sequence's prompt is right-aligned to the batch's last filled
// column (the cache grows empty columns on the left when the prompt is
// longer than what is cached), and columns that no live sequence uses any
// more are dropped when the cache is rebuilt. Rebuilds (a copy of the cache)
// happen on Add and once a quarter of the rows have finished, so a finished
// row wastes at most a few steps of compute.
//
// Every sequence draws from its own random stream (SamplingParams::seed), so
// its tokens do not depend on when it joined or what it shares the batch
// with, up to float rounding of differently shaped batches.
//
// Not thread-safe: one thread drives a batch. The Model must outlive it.
class GenerationBatch {
 public:
  ~GenerationBatch();
  GenerationBatch(const GenerationBatch&) = delete;
  GenerationBatch& operator=(const GenerationBatch&) = delete;

  // Prefills `requests` (validated as Model::Generate does) and adds them
  // under `ids` (the caller's, unique within the batch); their first token
  // is drawn by the next Step. On error nothing is added.
  Status Add(const std::vector<uint64_t>& ids, const std::vector<GenerationRequest>& requests);

  // One decoding step: a token for every sequence; the sequences that
  // stopped or reached max_new_tokens are returned and leave the batch.
  StatusOr<std::vector<FinishedSequence>> Step();

  // Drops a sequence (cancellation); unknown ids are ignored.
  void Remove(uint64_t id);

  // Sequences in the batch.
  int64_t size() const;
  // Cache columns (slots) per row; for tests and metrics.
  int64_t cache_columns() const;

 private:
  friend class Model;
  struct State;
  explicit GenerationBatch(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// One parameter as the model holds it (compute dtype).
struct ParameterInfo {
  std::string name;  // Hugging Face name
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

class Model {
 public:
  static StatusOr<std::unique_ptr<Model>> Load(const std::string& dir,
                                               const RuntimeOptions& options = {});
  // A fresh model with Hugging Face's initialisation. `perturb` > 0 adds
  // noise to norm weights and biases (tests).
  static StatusOr<std::unique_ptr<Model>> CreateRandom(const ModelConfig& config, uint64_t seed,
                                                       const RuntimeOptions& options = {},
                                                       double perturb = 0.0);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Writes a Hugging Face directory (config.json, generation_config.json,
  // safetensors, `extra_files` copied). `dtype` empty keeps the config's.
  Status Save(const std::string& dir, const std::vector<std::string>& extra_files = {},
              const std::string& dtype = "", size_t max_shard_bytes = size_t{5} << 30) const;

  const ModelConfig& config() const;

  // The parameters in a fixed order (tied models have no lm_head.weight).
  std::vector<ParameterInfo> Parameters() const;

  // A new model with this one's config, device and compute dtype whose
  // weights are copied from `tensors` (F32/BF16/F16, converted as needed).
  // Every parameter must be given once with its shape; InvalidArgument names
  // the first missing, repeated, unknown or misshapen tensor. This model is
  // untouched, so a caller can build the replacement while this one serves.
  StatusOr<std::unique_ptr<Model>> WithWeights(const std::vector<TensorView>& tensors) const;

  StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests,
                                                   const GenerateOptions& options = {}) const;

  // An empty continuous batch on this model (`options.use_cache` is
  // ignored: a batch always uses the cache). Generate with the cache runs
  // through one.
  std::unique_ptr<GenerationBatch> NewBatch(const GenerateOptions& options = {}) const;

  // For each sequence s (at least 2 tokens): log p(s[t] | s[<t]) for t >= 1,
  // i.e. size() - 1 values. Sequences of different lengths share a batch.
  StatusOr<std::vector<std::vector<float>>> TokenLogProbs(
      const std::vector<std::vector<int64_t>>& sequences, const LogProbOptions& options = {}) const;

  // Float32 logits for every position of every sequence, row-major
  // [length x vocab] per sequence. The batch is left-padded to the longest
  // sequence. With `use_cache`, the batch runs through the KV cache in steps of
  // `step` tokens (prefill then incremental decoding); without, in one pass.
  StatusOr<std::vector<std::vector<float>>> Logits(const std::vector<std::vector<int64_t>>& sequences,
                                                   bool use_cache, int64_t step = 1) const;

  // The torch-level model (model/transformer.h), for training code.
  Transformer* transformer() const { return transformer_.get(); }
  // A model around a transformer built by torch-level code.
  static std::unique_ptr<Model> Wrap(std::unique_ptr<Transformer> transformer);

 private:
  friend class GenerationBatch;
  explicit Model(std::unique_ptr<Transformer> transformer);
  Status CheckIds(const std::vector<int64_t>& ids, const std::string& what) const;
  // The checks Generate and GenerationBatch::Add make on every request.
  Status CheckRequests(const std::vector<GenerationRequest>& requests,
                       const GenerateOptions& options) const;

  std::unique_ptr<Transformer> transformer_;
};

}  // namespace cascade::model

#endif  // CASCADE_MODEL_RUNTIME_H_
