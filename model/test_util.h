// Helpers shared by the model tests (not part of the library).
#ifndef CASCADE_MODEL_TEST_UTIL_H_
#define CASCADE_MODEL_TEST_UTIL_H_

#include <cstdlib>
#include <filesystem>
#include <string>

#include "model/config.h"

namespace cascade::model::testing {

inline std::string MakeTempDir(const std::string& stem) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (stem + "_XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

// Tiny configs for fast correctness tests: hidden 64, 2 layers, vocab 1000,
// grouped-query attention (4 query heads on 2 kv heads).
inline ModelConfig TinyConfig(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 1000;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 512;
  c.eos_token_ids = {999};
  c.bos_token_id = 998;
  c.initializer_range = 0.2;  // larger than HF's 0.02 so logits are far from uniform
  switch (arch) {
    case Arch::kQwen3:
      c.qk_norm = true;
      c.rope_theta = 1000000.0;
      c.tie_word_embeddings = true;
      break;
    case Arch::kQwen2:
      c.qkv_bias = true;
      c.rope_theta = 1000000.0;
      break;
    case Arch::kLlama:
      c.qkv_bias = c.o_bias = true;
      c.rope_theta = 500000.0;
      c.rope_scaling.type = "llama3";
      c.rope_scaling.factor = 8.0;
      c.rope_scaling.low_freq_factor = 1.0;
      c.rope_scaling.high_freq_factor = 4.0;
      c.rope_scaling.original_max_position_embeddings = 64;
      break;
  }
  return c;
}

}  // namespace cascade::model::testing

#endif  // CASCADE_MODEL_TEST_UTIL_H_
