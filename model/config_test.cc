#include "model/config.h"

#include <catch2/catch.hpp>

namespace cascade::model {
namespace {

Json Qwen3Json() {
  return *Json::Parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
    "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "rope_scaling": null,
    "tie_word_embeddings": true, "attention_bias": false, "hidden_act": "silu",
    "use_sliding_window": false, "eos_token_id": 151645, "bos_token_id": 151643,
    "torch_dtype": "bfloat16"})");
}

TEST_CASE("config reads a Qwen3-0.6B style config.json", "[model][config]") {
  StatusOr<ModelConfig> c = ModelConfig::FromJson(Qwen3Json(), "config.json");
  REQUIRE(c.ok());
  CHECK(c->arch == Arch::kQwen3);
  CHECK(c->head_dim == 128);
  CHECK(c->qk_norm);
  CHECK_FALSE(c->qkv_bias);
  CHECK(c->tie_word_embeddings);
  CHECK(c->eos_token_ids == std::vector<int64_t>{151645});
  // Qwen3-0.6B has 596M parameters with tied embeddings.
  CHECK(c->NumParameters() == 596049920);
}

TEST_CASE("config round-trips through its own JSON", "[model][config]") {
  ModelConfig c = *ModelConfig::FromJson(Qwen3Json(), "config.json");
  StatusOr<ModelConfig> back = ModelConfig::FromJson(c.ToJson(), "again");
  REQUIRE(back.ok());
  CHECK(back->ToJson().Dump() == c.ToJson().Dump());
}

TEST_CASE("config refuses unsupported rope scaling naming the file and field", "[model][config]") {
  Json j = Qwen3Json();
  j["rope_scaling"] = *Json::Parse(R"({"rope_type": "yarn", "factor": 4.0})");
  StatusOr<ModelConfig> c = ModelConfig::FromJson(j, "/m/config.json");
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().message().find("/m/config.json") != std::string::npos);
  CHECK(c.status().message().find("rope_scaling.rope_type") != std::string::npos);
  CHECK(c.status().message().find("yarn") != std::string::npos);
}

TEST_CASE("config refuses sliding windows, other activations and bad head counts", "[model][config]") {
  Json j = Qwen3Json();
  j["use_sliding_window"] = true;
  CHECK(ModelConfig::FromJson(j, "c").status().message().find("use_sliding_window") != std::string::npos);
  j = Qwen3Json();
  j["hidden_act"] = "gelu";
  CHECK(ModelConfig::FromJson(j, "c").status().message().find("hidden_act") != std::string::npos);
  j = Qwen3Json();
  j["num_key_value_heads"] = 5;
  CHECK(ModelConfig::FromJson(j, "c").status().message().find("multiple") != std::string::npos);
  j = Qwen3Json();
  j["model_type"] = "mistral";
  CHECK(ModelConfig::FromJson(j, "c").status().message().find("model_type") != std::string::npos);
  j = Qwen3Json();
  j["hidden_size"] = "big";
  CHECK(ModelConfig::FromJson(j, "c").status().message().find("hidden_size") != std::string::npos);
}

TEST_CASE("config gives qwen2 q/k/v biases and llama3 rope scaling", "[model][config]") {
  Json j = Qwen3Json();
  j["model_type"] = "qwen2";
  StatusOr<ModelConfig> q2 = ModelConfig::FromJson(j, "c");
  REQUIRE(q2.ok());
  CHECK(q2->qkv_bias);
  CHECK_FALSE(q2->o_bias);
  CHECK_FALSE(q2->qk_norm);
  j["model_type"] = "llama";
  j["rope_scaling"] = *Json::Parse(
      R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  StatusOr<ModelConfig> llama = ModelConfig::FromJson(j, "c");
  REQUIRE(llama.ok());
  CHECK(llama->rope_scaling.type == "llama3");
  CHECK(llama->rope_scaling.factor == 8.0);
}

}  // namespace
}  // namespace cascade::model
