// The ~21.7M-parameter Qwen3-shaped model every CPU benchmark uses
// (model_bench, learner_bench), so their figures describe the same model.
#ifndef CASCADE_BENCH_MODEL_BENCH_CONFIG_H_
#define CASCADE_BENCH_MODEL_BENCH_CONFIG_H_

#include "model/config.h"

namespace cascade::model {

inline ModelConfig BenchModelConfig() {
  ModelConfig c;
  c.arch = Arch::kQwen3;
  c.vocab_size = 32000;
  c.hidden_size = 384;
  c.intermediate_size = 1024;
  c.num_hidden_layers = 6;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 16384;
  c.eos_token_ids = {0};
  return c;
}

}  // namespace cascade::model

#endif  // CASCADE_BENCH_MODEL_BENCH_CONFIG_H_
