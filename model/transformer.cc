#include "model/transformer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <filesystem>
#include <mutex>
#include <thread>

#include "model/torch_status.h"

namespace cascade::model {
namespace {

namespace fs = std::filesystem;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType ToScalarType(DType d) {
  switch (d) {
    case DType::kF32: return at::kFloat;
    case DType::kBF16: return at::kBFloat16;
    case DType::kF16: return at::kHalf;
  }
  return at::kFloat;
}

at::Tensor RotateHalf(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

at::Tensor MaybeLinear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// Parameter kinds decide the random initialisation.
enum class Kind { kMatrix, kBias, kNorm };

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  Kind kind;
};

std::vector<ParamSpec> ParameterSpecs(const ModelConfig& c) {
  std::vector<ParamSpec> specs;
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, f = c.intermediate_size;
  specs.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, Kind::kMatrix});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    specs.push_back({p + "input_layernorm.weight", {h}, Kind::kNorm});
    specs.push_back({p + "post_attention_layernorm.weight", {h}, Kind::kNorm});
    specs.push_back({p + "self_attn.q_proj.weight", {q, h}, Kind::kMatrix});
    specs.push_back({p + "self_attn.k_proj.weight", {kv, h}, Kind::kMatrix});
    specs.push_back({p + "self_attn.v_proj.weight", {kv, h}, Kind::kMatrix});
    specs.push_back({p + "self_attn.o_proj.weight", {h, q}, Kind::kMatrix});
    if (c.qkv_bias) {
      specs.push_back({p + "self_attn.q_proj.bias", {q}, Kind::kBias});
      specs.push_back({p + "self_attn.k_proj.bias", {kv}, Kind::kBias});
      specs.push_back({p + "self_attn.v_proj.bias", {kv}, Kind::kBias});
    }
    if (c.o_bias) specs.push_back({p + "self_attn.o_proj.bias", {h}, Kind::kBias});
    if (c.qk_norm) {
      specs.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, Kind::kNorm});
      specs.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, Kind::kNorm});
    }
    specs.push_back({p + "mlp.gate_proj.weight", {f, h}, Kind::kMatrix});
    specs.push_back({p + "mlp.up_proj.weight", {f, h}, Kind::kMatrix});
    specs.push_back({p + "mlp.down_proj.weight", {h, f}, Kind::kMatrix});
    if (c.mlp_bias) {
      specs.push_back({p + "mlp.gate_proj.bias", {f}, Kind::kBias});
      specs.push_back({p + "mlp.up_proj.bias", {f}, Kind::kBias});
      specs.push_back({p + "mlp.down_proj.bias", {h}, Kind::kBias});
    }
  }
  specs.push_back({"model.norm.weight", {h}, Kind::kNorm});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {c.vocab_size, h}, Kind::kMatrix});
  return specs;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

StatusOr<std::pair<at::Device, at::ScalarType>> ResolveDevice(const DeviceOptions& opts) {
  at::Device device(at::kCPU);
  try {
    device = at::Device(opts.device);
  } catch (const c10::Error&) {
    return InvalidArgumentError("device \"" + opts.device + "\" not understood (expected cpu or cuda[:N])");
  }
  if (device.is_cuda() && !at::hasCUDA()) {
    return FailedPreconditionError("device \"" + opts.device +
                                   "\": this libtorch has no CUDA support or no GPU is visible");
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    return InvalidArgumentError("device \"" + opts.device + "\" unsupported (expected cpu or cuda[:N])");
  }
  std::string dtype = opts.dtype;
  if (dtype.empty()) dtype = device.is_cuda() ? "bfloat16" : "float32";
  StatusOr<DType> d = ParseTorchDType(dtype);
  if (!d.ok()) return InvalidArgumentError("dtype: " + d.status().message());
  return std::make_pair(device, ToScalarType(*d));
}

// Activation checkpointing for one decoder layer: the forward keeps only the
// layer input; the backward recomputes the layer with grad enabled and
// differentiates it. The model pointer travels as an integer because the
// autograd context stores IValues only; the model outlives its graphs.
struct LayerCheckpoint : public torch::autograd::Function<LayerCheckpoint> {
  static variable_list forward(AutogradContext* ctx, at::Tensor x, at::Tensor cos, at::Tensor sin,
                               at::Tensor mask, int64_t layer, int64_t model, at::TensorList params) {
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["model"] = model;
    ctx->save_for_backward({x, cos, sin, mask});
    auto* m = reinterpret_cast<const Transformer*>(model);
    return {m->LayerForward(layer, x, cos, sin, mask, nullptr, 0)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const int64_t layer = ctx->saved_data["layer"].toInt();
    auto* m = reinterpret_cast<const Transformer*>(ctx->saved_data["model"].toInt());
    variable_list saved = ctx->get_saved_variables();
    at::Tensor x = saved[0].detach().requires_grad_(true);
    std::vector<at::Tensor> params = m->LayerParams(layer);
    at::Tensor out;
    {
      at::AutoGradMode enable(true);
      out = m->LayerForward(layer, x, saved[1], saved[2], saved[3], nullptr, 0);
    }
    variable_list wrt = {x};
    for (const at::Tensor& p : params) {
      if (p.requires_grad()) wrt.push_back(p);
    }
    variable_list grads = torch::autograd::grad({out}, wrt, {grad_out[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    variable_list result = {grads[0], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
                            at::Tensor()};
    size_t next = 1;
    for (const at::Tensor& p : params) {
      result.push_back(p.requires_grad() ? grads[next++] : at::Tensor());
    }
    return result;
  }
};

// Checkpointing for one chunk of the vocabulary projection: the [chunk x vocab]
// logits are recomputed in the backward instead of being kept for it.
struct HeadCheckpoint : public torch::autograd::Function<HeadCheckpoint> {
  static variable_list forward(AutogradContext* ctx, at::Tensor hidden, at::Tensor targets,
                               int64_t model, at::Tensor head) {
    ctx->saved_data["model"] = model;
    ctx->save_for_backward({hidden, targets});
    auto* m = reinterpret_cast<const Transformer*>(model);
    return {m->HeadLogProbs(hidden, targets)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto* m = reinterpret_cast<const Transformer*>(ctx->saved_data["model"].toInt());
    variable_list saved = ctx->get_saved_variables();
    at::Tensor h = saved[0].detach().requires_grad_(saved[0].requires_grad());
    at::Tensor head = m->HeadWeight();
    at::Tensor out;
    {
      at::AutoGradMode enable(true);
      out = m->HeadLogProbs(h, saved[1]);
    }
    variable_list wrt;
    if (h.requires_grad()) wrt.push_back(h);
    if (head.requires_grad()) wrt.push_back(head);
    variable_list grads;
    if (!wrt.empty()) {
      grads = torch::autograd::grad({out}, wrt, {grad_out[0]}, false, false, true);
    }
    size_t next = 0;
    at::Tensor gh = h.requires_grad() ? grads[next++] : at::Tensor();
    at::Tensor gw = head.requires_grad() ? grads[next++] : at::Tensor();
    return {gh, at::Tensor(), at::Tensor(), gw};
  }
};

std::recursive_mutex& CpuComputeMutex() {
  static std::recursive_mutex* mu = new std::recursive_mutex;  // never destroyed: used at exit
  return *mu;
}

}  // namespace

CpuComputeLock::CpuComputeLock(const at::Device& device) : held_(device.is_cpu()) {
  if (held_) CpuComputeMutex().lock();
}

CpuComputeLock::~CpuComputeLock() {
  if (held_) CpuComputeMutex().unlock();
}

void SetTorchThreads(int num_threads) {
  int n = num_threads > 0 ? num_threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(1, n));
}

Transformer::Transformer(ModelConfig config, at::ScalarType dtype)
    : config_(std::move(config)), dtype_(dtype) {}

at::Device Transformer::device() const { return embed_.device(); }

void Transformer::BindLayers() {
  auto get = [&](const std::string& name) {
    auto it = params_.find(name);
    return it == params_.end() ? at::Tensor() : it->second;
  };
  layers_.clear();
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer l;
    l.input_norm = get(p + "input_layernorm.weight");
    l.post_norm = get(p + "post_attention_layernorm.weight");
    l.q_w = get(p + "self_attn.q_proj.weight");
    l.q_b = get(p + "self_attn.q_proj.bias");
    l.k_w = get(p + "self_attn.k_proj.weight");
    l.k_b = get(p + "self_attn.k_proj.bias");
    l.v_w = get(p + "self_attn.v_proj.weight");
    l.v_b = get(p + "self_attn.v_proj.bias");
    l.o_w = get(p + "self_attn.o_proj.weight");
    l.o_b = get(p + "self_attn.o_proj.bias");
    l.q_norm = get(p + "self_attn.q_norm.weight");
    l.k_norm = get(p + "self_attn.k_norm.weight");
    l.gate_w = get(p + "mlp.gate_proj.weight");
    l.gate_b = get(p + "mlp.gate_proj.bias");
    l.up_w = get(p + "mlp.up_proj.weight");
    l.up_b = get(p + "mlp.up_proj.bias");
    l.down_w = get(p + "mlp.down_proj.weight");
    l.down_b = get(p + "mlp.down_proj.bias");
    layers_.push_back(std::move(l));
  }
  embed_ = get("model.embed_tokens.weight");
  final_norm_ = get("model.norm.weight");
  lm_head_ = config_.tie_word_embeddings ? embed_ : get("lm_head.weight");

  // Inverse RoPE frequencies as Hugging Face computes them (float32), with the
  // config's scaling applied.
  const int64_t d = config_.head_dim;
  at::Tensor inv = 1.0 / at::pow(config_.rope_theta,
                                 at::arange(0, d, 2, at::TensorOptions().dtype(at::kLong))
                                         .to(at::kFloat) / static_cast<double>(d));
  const RopeScaling& rs = config_.rope_scaling;
  if (rs.type == "linear") {
    inv = inv / rs.factor;
  } else if (rs.type == "llama3") {
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double low_wavelen = old_len / rs.low_freq_factor;
    const double high_wavelen = old_len / rs.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / rs.factor, inv);
    at::Tensor smooth = (old_len / wavelen - rs.low_freq_factor) /
                        (rs.high_freq_factor - rs.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
    at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = at::where(medium, smoothed, scaled);
  }
  inv_freq_ = inv.to(embed_.device());
}

std::vector<at::Tensor> Transformer::LayerParams(int64_t layer) const {
  const Layer& l = layers_[layer];
  std::vector<at::Tensor> out;
  for (const at::Tensor* t : {&l.input_norm, &l.post_norm, &l.q_w, &l.q_b, &l.k_w, &l.k_b, &l.v_w,
                              &l.v_b, &l.o_w, &l.o_b, &l.q_norm, &l.k_norm, &l.gate_w, &l.gate_b,
                              &l.up_w, &l.up_b, &l.down_w, &l.down_b}) {
    if (t->defined()) out.push_back(*t);
  }
  return out;
}

StatusOr<std::unique_ptr<Transformer>> Transformer::CreateRandom(const ModelConfig& config,
                                                                 const InitOptions& init,
                                                                 const DeviceOptions& device) {
  return CatchStatus("init", [&]() -> StatusOr<std::unique_ptr<Transformer>> {
    ThrowIfError(config.Validate());
    auto dev = ValueOrThrow(ResolveDevice(device));
    SetTorchThreads(device.num_threads);
    std::unique_ptr<Transformer> m(new Transformer(config, dev.second));
    // Draw on the CPU in a fixed order so that a seed gives the same weights
    // on every device.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(init.seed);
    auto f32 = at::TensorOptions().dtype(at::kFloat);
    for (const ParamSpec& spec : ParameterSpecs(config)) {
      at::Tensor t;
      switch (spec.kind) {
        case Kind::kMatrix:
          t = at::normal(0.0, config.initializer_range, spec.shape, gen, f32);
          break;
        case Kind::kBias:
          t = at::zeros(spec.shape, f32);
          if (init.perturb > 0) t += at::normal(0.0, init.perturb, spec.shape, gen, f32);
          break;
        case Kind::kNorm:
          t = at::ones(spec.shape, f32);
          if (init.perturb > 0) t += at::normal(0.0, init.perturb, spec.shape, gen, f32);
          break;
      }
      m->params_[spec.name] = t.to(dev.first, dev.second);
    }
    m->BindLayers();
    return m;
  });
}

StatusOr<std::unique_ptr<Transformer>> Transformer::Load(const std::string& dir,
                                                         const DeviceOptions& device) {
  return CatchStatus(dir, [&]() -> StatusOr<std::unique_ptr<Transformer>> {
    ModelConfig config = ValueOrThrow(ModelConfig::Load((fs::path(dir) / "config.json").string()));
    auto dev = ValueOrThrow(ResolveDevice(device));
    SetTorchThreads(device.num_threads);
    SafetensorsCheckpoint ckpt = ValueOrThrow(SafetensorsCheckpoint::OpenDir(dir));
    std::unique_ptr<Transformer> m(new Transformer(config, dev.second));
    std::map<std::string, bool> expected;
    for (const ParamSpec& spec : ParameterSpecs(config)) {
      expected[spec.name] = true;
      const TensorView* view = ckpt.Find(spec.name);
      if (view == nullptr) {
        throw ModelError(DataLossError(dir + ": tensor \"" + spec.name +
                                       "\" missing from the safetensors files (config.json model_type " +
                                       ArchName(config.arch) + " needs it)"));
      }
      if (view->shape != spec.shape) {
        throw ModelError(DataLossError(ckpt.FileOf(spec.name) + ": tensor \"" + spec.name +
                                       "\": shape " + ShapeString(view->shape) + ", config.json implies " +
                                       ShapeString(spec.shape)));
      }
      // from_blob views the read-only mapping; .to(copy=true) makes the owned copy.
      at::Tensor src = at::from_blob(const_cast<void*>(view->data), view->shape,
                                     at::TensorOptions().dtype(ToScalarType(view->dtype)));
      m->params_[spec.name] = src.to(dev.first, dev.second, /*non_blocking=*/false, /*copy=*/true);
    }
    for (const std::string& name : ckpt.Names()) {
      if (expected.count(name)) continue;
      if (config.tie_word_embeddings && name == "lm_head.weight") continue;
      if (name.size() >= 19 && name.compare(name.size() - 19, 19, "rotary_emb.inv_freq") == 0) continue;
      throw ModelError(InvalidArgumentError(ckpt.FileOf(name) + ": unexpected tensor \"" + name +
                                            "\" for config.json model_type " + ArchName(config.arch)));
    }
    m->BindLayers();
    return m;
  });
}

StatusOr<std::unique_ptr<Transformer>> Transformer::WithWeights(
    const std::vector<TensorView>& tensors) const {
  return CatchStatus("weights", [&]() -> StatusOr<std::unique_ptr<Transformer>> {
    std::map<std::string, at::Tensor> given;
    for (const TensorView& view : tensors) {
      if (given.count(view.name)) {
        throw ModelError(InvalidArgumentError("tensor \"" + view.name + "\" given twice"));
      }
      if (view.nbytes != static_cast<size_t>(view.numel()) * DTypeSize(view.dtype)) {
        throw ModelError(InvalidArgumentError("tensor \"" + view.name + "\": " +
                                              std::to_string(view.nbytes) + " bytes for shape " +
                                              ShapeString(view.shape) + " in " + DTypeName(view.dtype)));
      }
      given[view.name] = at::from_blob(const_cast<void*>(view.data), view.shape,
                                       at::TensorOptions().dtype(ToScalarType(view.dtype)));
    }
    return ValueOrThrow(WithTensors(given));
  });
}

StatusOr<std::unique_ptr<Transformer>> Transformer::WithTensors(
    const std::map<std::string, at::Tensor>& tensors) const {
  return CatchStatus("weights", [&]() -> StatusOr<std::unique_ptr<Transformer>> {
    std::map<std::string, at::Tensor> given = tensors;
    std::unique_ptr<Transformer> m(new Transformer(config_, dtype_));
    for (const ParamSpec& spec : ParameterSpecs(config_)) {
      auto it = given.find(spec.name);
      if (it == given.end()) {
        throw ModelError(InvalidArgumentError("tensor \"" + spec.name + "\" missing (model_type " +
                                              ArchName(config_.arch) + " needs it)"));
      }
      const at::Tensor& src = it->second;
      if (src.sizes().vec() != spec.shape) {
        throw ModelError(InvalidArgumentError("tensor \"" + spec.name + "\": shape " +
                                              ShapeString(src.sizes().vec()) + ", the model's is " +
                                              ShapeString(spec.shape)));
      }
      m->params_[spec.name] = src.to(device(), dtype_, /*non_blocking=*/false, /*copy=*/true);
      given.erase(it);
    }
    for (const auto& [name, tensor] : given) {
      if (config_.tie_word_embeddings && name == "lm_head.weight") continue;
      throw ModelError(InvalidArgumentError("unexpected tensor \"" + name + "\" for model_type " +
                                            ArchName(config_.arch)));
    }
    m->BindLayers();
    return m;
  });
}

Status Transformer::Save(const std::string& dir, const SaveOptions& options) const {
  return CatchStatus(dir, [&]() -> Status {
    DType storage = ValueOrThrow(
        ParseTorchDType(options.dtype.empty() ? config_.torch_dtype : options.dtype));
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return FailedPreconditionError(dir + ": cannot create: " + ec.message());
    std::vector<at::Tensor> keep;
    std::vector<TensorToWrite> tensors;
    keep.reserve(params_.size());
    for (const auto& [name, p] : params_) {
      at::Tensor t = p.detach().to(at::kCPU, ToScalarType(storage)).contiguous();
      keep.push_back(t);
      TensorToWrite w;
      w.name = name;
      w.dtype = storage;
      w.shape = t.sizes().vec();
      w.data = t.data_ptr();
      w.nbytes = static_cast<size_t>(t.numel()) * t.element_size();
      tensors.push_back(std::move(w));
    }
    ThrowIfError(WriteSafetensorsDir(dir, tensors, options.max_shard_bytes));
    ModelConfig saved = config_;
    saved.torch_dtype = TorchDTypeName(storage);
    ThrowIfError(WriteStringToFile((fs::path(dir) / "config.json").string(),
                                   saved.ToJson().Dump(2) + "\n"));
    Json gen = Json::MakeObject();
    gen["_from_model_config"] = true;
    if (config_.bos_token_id >= 0) gen["bos_token_id"] = config_.bos_token_id;
    const Json saved_json = saved.ToJson();
    if (const Json* eos = saved_json.Find("eos_token_id")) gen["eos_token_id"] = *eos;
    ThrowIfError(WriteStringToFile((fs::path(dir) / "generation_config.json").string(),
                                   gen.Dump(2) + "\n"));
    for (const std::string& file : options.extra_files) {
      fs::path to = fs::path(dir) / fs::path(file).filename();
      if (fs::exists(to) && fs::equivalent(file, to)) continue;
      fs::copy_file(file, to, fs::copy_options::overwrite_existing, ec);
      if (ec) return FailedPreconditionError(file + ": cannot copy into " + dir + ": " + ec.message());
    }
    return OkStatus();
  });
}

KvCache Transformer::NewCache(int64_t batch, int64_t capacity) const {
  KvCache cache;
  cache.capacity = capacity;
  auto opts = at::TensorOptions().dtype(dtype_).device(device());
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    cache.k.push_back(at::zeros({batch, config_.num_key_value_heads, capacity, config_.head_dim}, opts));
    cache.v.push_back(at::zeros({batch, config_.num_key_value_heads, capacity, config_.head_dim}, opts));
  }
  cache.key_valid = at::zeros({batch, capacity}, opts.dtype(at::kBool));
  return cache;
}

at::Tensor Transformer::RmsNorm(const at::Tensor& x, const at::Tensor& w) const {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return w * (xf * at::rsqrt(var + config_.rms_norm_eps)).to(x.scalar_type());
}

at::Tensor Transformer::Embed(const at::Tensor& ids) const { return at::embedding(embed_, ids); }

std::pair<at::Tensor, at::Tensor> Transformer::Rope(const at::Tensor& positions) const {
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B, T, D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);              // [B, 1, T, D]
  return {emb.cos().to(dtype_), emb.sin().to(dtype_)};
}

at::Tensor Transformer::Mask(const at::Tensor& key_valid, int64_t start, int64_t q_len) const {
  const int64_t k_len = key_valid.size(1);
  auto lopts = at::TensorOptions().dtype(at::kLong).device(key_valid.device());
  at::Tensor q_slot = at::arange(start, start + q_len, lopts).unsqueeze(1);  // [T, 1]
  at::Tensor k_slot = at::arange(0, k_len, lopts).unsqueeze(0);              // [1, S]
  at::Tensor causal = k_slot <= q_slot;
  // A query always sees its own slot, so that padding rows (whose keys are all
  // invalid) still get a finite softmax; their outputs are never used.
  at::Tensor self = k_slot == q_slot;
  at::Tensor visible = causal.unsqueeze(0).logical_and(key_valid.unsqueeze(1))
                           .logical_or(self.unsqueeze(0));  // [B, T, S]
  return visible.unsqueeze(1).unsqueeze(1);                  // [B, 1, 1, T, S]
}

at::Tensor Transformer::LayerForward(int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                                     const at::Tensor& sin, const at::Tensor& mask, KvCache* cache,
                                     int64_t start) const {
  CpuComputeLock lock(device());
  const Layer& l = layers_[layer];
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t nh = config_.num_attention_heads, nkv = config_.num_key_value_heads,
                d = config_.head_dim, rep = nh / nkv;

  at::Tensor h = RmsNorm(x, l.input_norm);
  at::Tensor q = MaybeLinear(h, l.q_w, l.q_b).view({b, t, nh, d});
  at::Tensor k = MaybeLinear(h, l.k_w, l.k_b).view({b, t, nkv, d});
  at::Tensor v = MaybeLinear(h, l.v_w, l.v_b).view({b, t, nkv, d});
  if (config_.qk_norm) {
    q = RmsNorm(q, l.q_norm);
    k = RmsNorm(k, l.k_norm);
  }
  q = q.transpose(1, 2);  // [B, H, T, D]
  k = k.transpose(1, 2);  // [B, KV, T, D]
  v = v.transpose(1, 2);
  q = q * cos + RotateHalf(q) * sin;
  k = k * cos + RotateHalf(k) * sin;

  at::Tensor keys = k, values = v;
  if (cache != nullptr) {
    cache->k[layer].narrow(2, start, t).copy_(k);
    cache->v[layer].narrow(2, start, t).copy_(v);
    keys = cache->k[layer].narrow(2, 0, start + t);
    values = cache->v[layer].narrow(2, 0, start + t);
  }
  const int64_t s = keys.size(2);
  // Grouped-query attention without copying K/V per head: head h uses kv head
  // h / rep, so the rep query heads of a group stack along the time axis.
  at::Tensor qg = q.reshape({b, nkv, rep * t, d});
  at::Tensor scores = at::matmul(qg, keys.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(d)));
  scores = scores.view({b, nkv, rep, t, s}).masked_fill(mask.logical_not(),
                                                          -std::numeric_limits<float>::infinity());
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(dtype_);
  at::Tensor attn = at::matmul(probs.view({b, nkv, rep * t, s}), values);  // [B, KV, rep*T, D]
  attn = attn.view({b, nh, t, d}).transpose(1, 2).reshape({b, t, nh * d});
  at::Tensor out = x + MaybeLinear(attn, l.o_w, l.o_b);

  at::Tensor h2 = RmsNorm(out, l.post_norm);
  at::Tensor mlp = MaybeLinear(at::silu(MaybeLinear(h2, l.gate_w, l.gate_b)) *
                                   MaybeLinear(h2, l.up_w, l.up_b),
                               l.down_w, l.down_b);
  return out + mlp;
}

at::Tensor Transformer::Hidden(const at::Tensor& ids, const at::Tensor& positions,
                               const at::Tensor& valid, KvCache* cache, bool checkpoint) const {
  CpuComputeLock lock(device());
  const int64_t t = ids.size(1);
  int64_t start = 0;
  at::Tensor key_valid = valid;
  if (cache != nullptr) {
    start = cache->length;
    if (start + t > cache->capacity) {
      throw ModelError(InvalidArgumentError("KV cache overflow: " + std::to_string(start + t) +
                                            " slots needed, capacity " + std::to_string(cache->capacity)));
    }
    cache->key_valid.narrow(1, start, t).copy_(valid);
    key_valid = cache->key_valid.narrow(1, 0, start + t);
  }
  at::Tensor mask = Mask(key_valid, start, t);
  auto [cos, sin] = Rope(positions);
  at::Tensor x = Embed(ids);
  const bool ckpt = checkpoint && cache == nullptr && at::GradMode::is_enabled();
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    if (ckpt) {
      x = LayerCheckpoint::apply(x, cos, sin, mask, i, reinterpret_cast<int64_t>(this),
                                 at::TensorList(LayerParams(i)))[0];
    } else {
      x = LayerForward(i, x, cos, sin, mask, cache, start);
    }
  }
  if (cache != nullptr) cache->length += t;
  return RmsNorm(x, final_norm_);
}

at::Tensor Transformer::Logits(const at::Tensor& hidden) const {
  CpuComputeLock lock(device());
  return at::linear(hidden, lm_head_).to(at::kFloat);
}

at::Tensor Transformer::HeadLogProbs(const at::Tensor& hidden, const at::Tensor& targets) const {
  at::Tensor logp = at::log_softmax(Logits(hidden), -1);
  return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
}

at::Tensor Transformer::TokenLogProbs(const at::Tensor& ids, const at::Tensor& valid, int64_t chunk,
                                      bool checkpoint_layers) const {
  const int64_t t = ids.size(1);
  at::Tensor positions = (valid.to(at::kLong).cumsum(1) - 1).clamp_min(0);
  at::Tensor hidden = Hidden(ids, positions, valid, nullptr, checkpoint_layers);
  at::Tensor h = hidden.narrow(1, 0, t - 1);
  at::Tensor targets = ids.narrow(1, 1, t - 1);
  at::Tensor out;
  if (chunk <= 0 || chunk >= t - 1) {
    out = HeadLogProbs(h, targets);
  } else {
    std::vector<at::Tensor> pieces;
    const bool grad = at::GradMode::is_enabled();
    for (int64_t c0 = 0; c0 < t - 1; c0 += chunk) {
      const int64_t n = std::min(chunk, t - 1 - c0);
      at::Tensor hc = h.narrow(1, c0, n), tc = targets.narrow(1, c0, n);
      pieces.push_back(grad ? HeadCheckpoint::apply(hc, tc, reinterpret_cast<int64_t>(this), lm_head_)[0]
                            : HeadLogProbs(hc, tc));
    }
    out = at::cat(pieces, 1);
  }
  at::Tensor scored = valid.narrow(1, 1, t - 1).logical_and(valid.narrow(1, 0, t - 1));
  return out.masked_fill(scored.logical_not(), 0.0);
}

at::Tensor Transformer::ScoreTokenLogProbs(const at::Tensor& ids, const at::Tensor& valid,
                                           int64_t chunk) const {
  at::NoGradGuard no_grad;
  const int64_t b = ids.size(0), t = ids.size(1);
  if (chunk <= 0) chunk = t;
  at::Tensor positions = (valid.to(at::kLong).cumsum(1) - 1).clamp_min(0);
  KvCache cache = NewCache(b, t);
  at::Tensor out = at::zeros({b, std::max<int64_t>(t - 1, 0)},
                             at::TensorOptions().dtype(at::kFloat).device(ids.device()));
  for (int64_t c0 = 0; c0 < t; c0 += chunk) {
    const int64_t n = std::min(chunk, t - c0);
    at::Tensor hidden = Hidden(ids.narrow(1, c0, n), positions.narrow(1, c0, n),
                               valid.narrow(1, c0, n), &cache);
    const int64_t m = std::min(c0 + n, t - 1) - c0;  // positions with a next token
    if (m > 0) {
      out.narrow(1, c0, m).copy_(HeadLogProbs(hidden.narrow(1, 0, m), ids.narrow(1, c0 + 1, m)));
    }
  }
  if (t < 2) return out;
  at::Tensor scored = valid.narrow(1, 1, t - 1).logical_and(valid.narrow(1, 0, t - 1));
  return out.masked_fill(scored.logical_not(), 0.0);
}

}  // namespace cascade::model
