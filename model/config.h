// Architecture description read from a Hugging Face config.json.
//
// Supported: Qwen3 (model_type "qwen3": per-head q/k RMSNorm, optional
// attention bias), Qwen2 ("qwen2": q/k/v bias) and Llama ("llama":
// attention_bias / mlp_bias flags). Values that change the computation and that
// the runtime does not implement (sliding windows, rope types other than
// default/linear/llama3, activations other than silu, pretraining_tp > 1) are
// refused with an error naming the file and the field, never ignored.
#ifndef CASCADE_MODEL_CONFIG_H_
#define CASCADE_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/json.h"
#include "model/status.h"

namespace cascade::model {

enum class Arch { kQwen3, kQwen2, kLlama };

// "qwen3", "qwen2", "llama".
const char* ArchName(Arch arch);
StatusOr<Arch> ParseArch(const std::string& name);

struct RopeScaling {
  // "default" (none), "linear" or "llama3".
  std::string type = "default";
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Arch arch = Arch::kQwen3;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  // Per-head width; Qwen3 sets it explicitly, Llama derives hidden/heads.
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  // Bias on q/k/v projections (always on for Qwen2).
  bool qkv_bias = false;
  // Bias on the output projection (Llama attention_bias also sets this).
  bool o_bias = false;
  bool mlp_bias = false;
  // Per-head RMSNorm on q and k before RoPE (Qwen3).
  bool qk_norm = false;
  double initializer_range = 0.02;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  // "float32", "bfloat16" or "float16": the dtype the weights are stored in.
  std::string torch_dtype = "float32";

  // Structural checks (positive sizes, heads divide evenly).
  Status Validate() const;
  // Hugging Face config.json content that transformers and vLLM load.
  Json ToJson() const;
  // `source` names the file in error messages.
  static StatusOr<ModelConfig> FromJson(const Json& json, const std::string& source);
  static StatusOr<ModelConfig> Load(const std::string& config_json_path);

  int64_t NumParameters() const;
};

}  // namespace cascade::model

#endif  // CASCADE_MODEL_CONFIG_H_
