#include "model/config.h"

#include <cmath>

namespace cascade::model {
namespace {

// Field readers: each names the file and the field when the value is wrong.
class FieldReader {
 public:
  FieldReader(const Json& json, const std::string& source) : json_(json), source_(source) {}

  Status Fail(const std::string& field, const std::string& what) const {
    return InvalidArgumentError(source_ + ": " + field + ": " + what);
  }

  Status Int(const std::string& field, bool required, int64_t* out) const {
    const Json* v = json_.Find(field);
    if (v == nullptr || v->is_null()) {
      return required ? Fail(field, "missing (required)") : OkStatus();
    }
    if (!v->is_int() && !(v->is_number() && std::floor(v->as_double()) == v->as_double())) {
      return Fail(field, std::string("expected an integer, got ") + JsonTypeName(v->type()));
    }
    *out = v->as_int();
    return OkStatus();
  }

  Status Double(const std::string& field, bool required, double* out) const {
    const Json* v = json_.Find(field);
    if (v == nullptr || v->is_null()) {
      return required ? Fail(field, "missing (required)") : OkStatus();
    }
    if (!v->is_number()) {
      return Fail(field, std::string("expected a number, got ") + JsonTypeName(v->type()));
    }
    *out = v->as_double();
    return OkStatus();
  }

  Status Bool(const std::string& field, bool* out) const {
    const Json* v = json_.Find(field);
    if (v == nullptr || v->is_null()) return OkStatus();
    if (!v->is_bool()) {
      return Fail(field, std::string("expected a boolean, got ") + JsonTypeName(v->type()));
    }
    *out = v->as_bool();
    return OkStatus();
  }

  Status String(const std::string& field, std::string* out) const {
    const Json* v = json_.Find(field);
    if (v == nullptr || v->is_null()) return OkStatus();
    if (!v->is_string()) {
      return Fail(field, std::string("expected a string, got ") + JsonTypeName(v->type()));
    }
    *out = v->as_string();
    return OkStatus();
  }

 private:
  const Json& json_;
  const std::string& source_;
};

#define MODEL_RETURN_IF_ERROR(expr) \
  do {                              \
    Status _s = (expr);             \
    if (!_s.ok()) return _s;        \
  } while (0)

}  // namespace

const char* ArchName(Arch arch) {
  switch (arch) {
    case Arch::kQwen3: return "qwen3";
    case Arch::kQwen2: return "qwen2";
    case Arch::kLlama: return "llama";
  }
  return "unknown";
}

StatusOr<Arch> ParseArch(const std::string& name) {
  if (name == "qwen3") return Arch::kQwen3;
  if (name == "qwen2") return Arch::kQwen2;
  if (name == "llama") return Arch::kLlama;
  return InvalidArgumentError("unknown architecture \"" + name +
                              "\" (expected one of: qwen3, qwen2, llama)");
}

Status ModelConfig::Validate() const {
  auto fail = [](const std::string& m) { return InvalidArgumentError("config: " + m); };
  if (vocab_size <= 0) return fail("vocab_size must be positive");
  if (hidden_size <= 0) return fail("hidden_size must be positive");
  if (intermediate_size <= 0) return fail("intermediate_size must be positive");
  if (num_hidden_layers <= 0) return fail("num_hidden_layers must be positive");
  if (num_attention_heads <= 0) return fail("num_attention_heads must be positive");
  if (num_key_value_heads <= 0) return fail("num_key_value_heads must be positive");
  if (num_attention_heads % num_key_value_heads != 0) {
    return fail("num_attention_heads (" + std::to_string(num_attention_heads) +
                ") must be a multiple of num_key_value_heads (" +
                std::to_string(num_key_value_heads) + ")");
  }
  if (head_dim <= 0 || head_dim % 2 != 0) return fail("head_dim must be positive and even");
  if (!(rms_norm_eps > 0)) return fail("rms_norm_eps must be positive");
  if (!(rope_theta > 0)) return fail("rope_theta must be positive");
  if (torch_dtype != "float32" && torch_dtype != "bfloat16" && torch_dtype != "float16") {
    return fail("torch_dtype \"" + torch_dtype + "\" unsupported (expected float32, bfloat16 or float16)");
  }
  return OkStatus();
}

StatusOr<ModelConfig> ModelConfig::FromJson(const Json& json, const std::string& source) {
  if (!json.is_object()) return InvalidArgumentError(source + ": expected a JSON object");
  FieldReader r(json, source);
  ModelConfig c;
  std::string model_type;
  MODEL_RETURN_IF_ERROR(r.String("model_type", &model_type));
  if (model_type.empty()) return r.Fail("model_type", "missing (required)");
  StatusOr<Arch> arch = ParseArch(model_type);
  if (!arch.ok()) return r.Fail("model_type", arch.status().message());
  c.arch = *arch;

  MODEL_RETURN_IF_ERROR(r.Int("vocab_size", true, &c.vocab_size));
  MODEL_RETURN_IF_ERROR(r.Int("hidden_size", true, &c.hidden_size));
  MODEL_RETURN_IF_ERROR(r.Int("intermediate_size", true, &c.intermediate_size));
  MODEL_RETURN_IF_ERROR(r.Int("num_hidden_layers", true, &c.num_hidden_layers));
  MODEL_RETURN_IF_ERROR(r.Int("num_attention_heads", true, &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  MODEL_RETURN_IF_ERROR(r.Int("num_key_value_heads", false, &c.num_key_value_heads));
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  MODEL_RETURN_IF_ERROR(r.Int("head_dim", false, &c.head_dim));
  MODEL_RETURN_IF_ERROR(r.Int("max_position_embeddings", false, &c.max_position_embeddings));
  MODEL_RETURN_IF_ERROR(r.Double("rms_norm_eps", false, &c.rms_norm_eps));
  MODEL_RETURN_IF_ERROR(r.Double("rope_theta", false, &c.rope_theta));
  MODEL_RETURN_IF_ERROR(r.Double("initializer_range", false, &c.initializer_range));
  MODEL_RETURN_IF_ERROR(r.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  MODEL_RETURN_IF_ERROR(r.Int("bos_token_id", false, &c.bos_token_id));
  MODEL_RETURN_IF_ERROR(r.String("torch_dtype", &c.torch_dtype));

  if (const Json* eos = json.Find("eos_token_id"); eos != nullptr && !eos->is_null()) {
    if (eos->is_int()) {
      c.eos_token_ids.push_back(eos->as_int());
    } else if (eos->is_array()) {
      for (const Json& e : eos->as_array()) {
        if (!e.is_int()) return r.Fail("eos_token_id", "expected integers");
        c.eos_token_ids.push_back(e.as_int());
      }
    } else {
      return r.Fail("eos_token_id", "expected an integer or a list of integers");
    }
  }

  std::string act = "silu";
  MODEL_RETURN_IF_ERROR(r.String("hidden_act", &act));
  if (act != "silu") return r.Fail("hidden_act", "\"" + act + "\" unsupported (only silu)");

  bool sliding = false;
  MODEL_RETURN_IF_ERROR(r.Bool("use_sliding_window", &sliding));
  if (sliding) return r.Fail("use_sliding_window", "sliding-window attention is not supported");

  int64_t tp = 1;
  MODEL_RETURN_IF_ERROR(r.Int("pretraining_tp", false, &tp));
  if (tp != 1) return r.Fail("pretraining_tp", "only 1 is supported");

  bool attention_bias = false;
  MODEL_RETURN_IF_ERROR(r.Bool("attention_bias", &attention_bias));
  MODEL_RETURN_IF_ERROR(r.Bool("mlp_bias", &c.mlp_bias));
  switch (c.arch) {
    case Arch::kQwen3:
      c.qk_norm = true;
      c.qkv_bias = c.o_bias = attention_bias;
      if (c.mlp_bias) return r.Fail("mlp_bias", "not supported for qwen3");
      break;
    case Arch::kQwen2:
      // Qwen2 always carries q/k/v biases and never an output bias.
      c.qkv_bias = true;
      c.o_bias = false;
      if (c.mlp_bias) return r.Fail("mlp_bias", "not supported for qwen2");
      break;
    case Arch::kLlama:
      c.qkv_bias = c.o_bias = attention_bias;
      break;
  }

  if (const Json* rs = json.Find("rope_scaling"); rs != nullptr && !rs->is_null()) {
    if (!rs->is_object()) return r.Fail("rope_scaling", "expected an object or null");
    FieldReader sr(*rs, source + ": rope_scaling");
    std::string type;
    MODEL_RETURN_IF_ERROR(sr.String("rope_type", &type));
    if (type.empty()) MODEL_RETURN_IF_ERROR(sr.String("type", &type));
    if (type.empty()) type = "default";
    if (type != "default" && type != "linear" && type != "llama3") {
      return r.Fail("rope_scaling.rope_type",
                    "\"" + type + "\" unsupported (expected default, linear or llama3)");
    }
    c.rope_scaling.type = type;
    MODEL_RETURN_IF_ERROR(sr.Double("factor", type != "default", &c.rope_scaling.factor));
    if (type == "llama3") {
      MODEL_RETURN_IF_ERROR(sr.Double("low_freq_factor", true, &c.rope_scaling.low_freq_factor));
      MODEL_RETURN_IF_ERROR(sr.Double("high_freq_factor", true, &c.rope_scaling.high_freq_factor));
      MODEL_RETURN_IF_ERROR(sr.Int("original_max_position_embeddings", true,
                                   &c.rope_scaling.original_max_position_embeddings));
    }
    if (!(c.rope_scaling.factor > 0)) return r.Fail("rope_scaling.factor", "must be positive");
  }

  Status valid = c.Validate();
  if (!valid.ok()) return InvalidArgumentError(source + ": " + valid.message());
  return c;
}

StatusOr<ModelConfig> ModelConfig::Load(const std::string& path) {
  StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  StatusOr<Json> json = Json::Parse(*text);
  if (!json.ok()) return InvalidArgumentError(path + ": " + json.status().message());
  return FromJson(*json, path);
}

Json ModelConfig::ToJson() const {
  Json j = Json::MakeObject();
  switch (arch) {
    case Arch::kQwen3: j["architectures"] = Json(Json::Array{"Qwen3ForCausalLM"}); break;
    case Arch::kQwen2: j["architectures"] = Json(Json::Array{"Qwen2ForCausalLM"}); break;
    case Arch::kLlama: j["architectures"] = Json(Json::Array{"LlamaForCausalLM"}); break;
  }
  j["model_type"] = ArchName(arch);
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.type == "default") {
    j["rope_scaling"] = Json();
  } else {
    Json rs = Json::MakeObject();
    rs["rope_type"] = rope_scaling.type;
    rs["factor"] = rope_scaling.factor;
    if (rope_scaling.type == "llama3") {
      rs["low_freq_factor"] = rope_scaling.low_freq_factor;
      rs["high_freq_factor"] = rope_scaling.high_freq_factor;
      rs["original_max_position_embeddings"] = rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = rs;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["attention_dropout"] = 0.0;
  if (arch != Arch::kQwen2) j["attention_bias"] = qkv_bias;
  if (arch == Arch::kLlama) {
    j["mlp_bias"] = mlp_bias;
    j["pretraining_tp"] = 1;
  }
  if (arch != Arch::kLlama) {
    j["use_sliding_window"] = false;
    j["sliding_window"] = Json();
    j["max_window_layers"] = num_hidden_layers;
  }
  j["initializer_range"] = initializer_range;
  j["use_cache"] = true;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else if (!eos_token_ids.empty()) {
    Json::Array ids;
    for (int64_t id : eos_token_ids) ids.push_back(Json(id));
    j["eos_token_id"] = Json(std::move(ids));
  }
  j["torch_dtype"] = torch_dtype;
  return j;
}

int64_t ModelConfig::NumParameters() const {
  int64_t q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
  int64_t attn = hidden_size * q + 2 * hidden_size * kv + q * hidden_size;
  if (qkv_bias) attn += q + 2 * kv;
  if (o_bias) attn += hidden_size;
  if (qk_norm) attn += 2 * head_dim;
  int64_t mlp = 3 * hidden_size * intermediate_size;
  if (mlp_bias) mlp += 2 * intermediate_size + hidden_size;
  int64_t layer = attn + mlp + 2 * hidden_size;
  int64_t total = num_hidden_layers * layer + vocab_size * hidden_size + hidden_size;
  if (!tie_word_embeddings) total += vocab_size * hidden_size;
  return total;
}

}  // namespace cascade::model
