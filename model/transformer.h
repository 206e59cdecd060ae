// The decoder-only transformer (Qwen3, Qwen2, Llama) on libtorch.
//
// This is the torch-level API for the learner/rollout adapters, which include
// torch anyway; everything else should use the torch-free model/runtime.h.
// Only <ATen/core/Tensor.h> is included here (never <torch/torch.h>) to keep
// the cost of including this header low.
//
// Layout conventions: token ids are int64 [batch, time]; `valid` is a bool
// [batch, time] mask that is false on padding; `positions` are int64 RoPE
// positions [batch, time] (per sequence, so left padding does not shift them).
//
// Thread-safety: a Transformer is immutable after construction; concurrent
// forwards are safe as long as each uses its own KvCache (on the CPU they take
// turns, see CpuComputeLock). Training code that updates parameters in place
// must not run concurrently with forwards.
#ifndef CASCADE_MODEL_TRANSFORMER_H_
#define CASCADE_MODEL_TRANSFORMER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"
#include "model/status.h"

namespace cascade::model {

// Where and in what precision the model computes.
struct DeviceOptions {
  // "cpu", "cuda" or "cuda:N".
  std::string device = "cpu";
  // Compute dtype; empty picks float32 on CPU and bfloat16 on CUDA.
  std::string dtype;
  // Intra-op threads for CPU kernels; 0 uses every hardware thread. libtorch
  // defaults to 1 on these machines, so this is always set explicitly.
  int num_threads = 0;
};

// Random initialisation (Hugging Face's scheme: N(0, initializer_range) for
// matrices, zero biases, unit norms).
struct InitOptions {
  uint64_t seed = 0;
  // Std-dev of noise added to norm weights and biases; tests use it so that
  // q/k norms and biases are not identities. 0 matches Hugging Face.
  double perturb = 0.0;
};

struct SaveOptions {
  // Storage dtype; empty keeps the config's torch_dtype.
  std::string dtype;
  // Files copied next to the weights (tokenizer.json, tokenizer_config.json, ...).
  std::vector<std::string> extra_files;
  // Shard when the weights exceed this many bytes.
  size_t max_shard_bytes = size_t{5} << 30;
};

// Per-layer key/value cache, preallocated for `capacity` slots.
struct KvCache {
  std::vector<at::Tensor> k;  // per layer [batch, kv_heads, capacity, head_dim]
  std::vector<at::Tensor> v;
  at::Tensor key_valid;       // [batch, capacity] bool; false for padding slots
  int64_t length = 0;         // slots filled so far
  int64_t capacity = 0;
};

class Transformer {
 public:
  static StatusOr<std::unique_ptr<Transformer>> Load(const std::string& dir,
                                                     const DeviceOptions& device);
  static StatusOr<std::unique_ptr<Transformer>> CreateRandom(const ModelConfig& config,
                                                             const InitOptions& init,
                                                             const DeviceOptions& device);
  // Writes config.json, generation_config.json, the safetensors weights and
  // the extra files: a directory transformers and vLLM load unchanged.
  Status Save(const std::string& dir, const SaveOptions& options) const;

  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  const ModelConfig& config() const { return config_; }
  at::Device device() const;
  at::ScalarType dtype() const { return dtype_; }

  // Parameters under their Hugging Face names (tied models have no lm_head.weight).
  const std::map<std::string, at::Tensor>& named_parameters() const { return params_; }

  // A new transformer with this one's config, device and compute dtype whose
  // parameters are copied from `tensors` (any of F32/BF16/F16, converted).
  // Every parameter must be given once with its exact shape; a missing,
  // repeated, unknown or misshapen tensor fails with InvalidArgument naming it.
  // Used to swap in published weights next to the serving copy.
  StatusOr<std::unique_ptr<Transformer>> WithWeights(const std::vector<TensorView>& tensors) const;
  // The same from torch tensors of any device and dtype (converted).
  StatusOr<std::unique_ptr<Transformer>> WithTensors(
      const std::map<std::string, at::Tensor>& tensors) const;

  KvCache NewCache(int64_t batch, int64_t capacity) const;

  // Runs the layers over `ids` and returns the final-normed hidden states
  // [batch, time, hidden]. With `cache`, the new keys/values are appended at
  // cache->length and attention covers every filled slot; without it,
  // attention covers this call's tokens only. `checkpoint` recomputes each
  // layer in the backward pass instead of storing its activations.
  at::Tensor Hidden(const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& valid,
                    KvCache* cache, bool checkpoint = false) const;

  // hidden [..., hidden] -> logits [..., vocab] in float32.
  at::Tensor Logits(const at::Tensor& hidden) const;

  // log p(ids[:, t+1] | ids[:, :t+1]) for t in [0, time-1): [batch, time-1]
  // float32, differentiable. The vocabulary projection runs `chunk` positions
  // at a time and is recomputed in the backward pass, so the full
  // [batch x time x vocab] logits never exist at once; chunk <= 0 computes them
  // in one piece (for comparison). Padding positions get 0.
  at::Tensor TokenLogProbs(const at::Tensor& ids, const at::Tensor& valid, int64_t chunk,
                           bool checkpoint_layers = false) const;

  // Same values, no autograd, for scoring: runs the sequence through a KV
  // cache `chunk` tokens at a time so that neither logits nor attention
  // scores grow with the square of the length.
  at::Tensor ScoreTokenLogProbs(const at::Tensor& ids, const at::Tensor& valid,
                                int64_t chunk) const;

  // Forward of one layer; public for the checkpointing autograd function.
  at::Tensor LayerForward(int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                          const at::Tensor& sin, const at::Tensor& mask, KvCache* cache,
                          int64_t start) const;
  // Log-probs of `targets` under the head applied to `hidden` (no chunking).
  at::Tensor HeadLogProbs(const at::Tensor& hidden, const at::Tensor& targets) const;
  // The tensors one layer reads, in a fixed order (for checkpointing).
  std::vector<at::Tensor> LayerParams(int64_t layer) const;
  // The output projection (the embedding when tied).
  const at::Tensor& HeadWeight() const { return lm_head_; }

 private:
  struct Layer {
    at::Tensor input_norm, post_norm;
    at::Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    at::Tensor q_norm, k_norm;
    at::Tensor gate_w, gate_b, up_w, up_b, down_w, down_b;
  };

  Transformer(ModelConfig config, at::ScalarType dtype);
  // Points layers_, embed_, ... at the tensors of params_ and computes inv_freq_.
  void BindLayers();
  // RoPE cos/sin [batch, 1, time, head_dim] in the compute dtype.
  std::pair<at::Tensor, at::Tensor> Rope(const at::Tensor& positions) const;
  // Bool [batch, 1, 1, q, k]: key slot visible to query slot.
  at::Tensor Mask(const at::Tensor& key_valid, int64_t start, int64_t q_len) const;
  at::Tensor Embed(const at::Tensor& ids) const;
  at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w) const;

  ModelConfig config_;
  at::ScalarType dtype_;
  std::map<std::string, at::Tensor> params_;
  std::vector<Layer> layers_;
  at::Tensor embed_, final_norm_, lm_head_;
  at::Tensor inv_freq_;  // [head_dim / 2] float32 on the device
};

// Sets libtorch's intra-op threads (0 = hardware concurrency).
void SetTorchThreads(int num_threads);

// Serializes CPU computations across the process. On the CPU, libtorch
// multiplies matrices with the system BLAS, and Debian's serial OpenBLAS
// (built without USE_LOCKING) keeps its work buffers in unlocked globals: two
// threads multiplying at once silently corrupt each other's results (two
// models scoring in two threads got 14 of 300 results wrong). Transformer's
// forward functions hold this lock; code that runs a backward pass or its own
// matrix products on the CPU holds it around them. Recursive, so holders may
// call the forward functions. A no-op for CUDA devices (cuBLAS is reentrant).
class CpuComputeLock {
 public:
  explicit CpuComputeLock(const at::Device& device);
  ~CpuComputeLock();
  CpuComputeLock(const CpuComputeLock&) = delete;
  CpuComputeLock& operator=(const CpuComputeLock&) = delete;

 private:
  bool held_ = false;
};

}  // namespace cascade::model

#endif  // CASCADE_MODEL_TRANSFORMER_H_
