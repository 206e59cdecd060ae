#include "services/reward_model/reward_net.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_util.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace cascade::reward_model {
namespace {

namespace fs = std::filesystem;

constexpr char kScoreWeight[] = "score.weight";

absl::Status FromModelStatus(const model::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.code()), s.message());
}

// Runs torch code, turning its exceptions into a Status (no exception leaves
// this file).
template <typename F>
auto Guard(const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const model::ModelError& e) {
    return FromModelStatus(e.status());
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  }
}

at::ScalarType ScalarTypeOf(model::DType d) {
  switch (d) {
    case model::DType::kF32: return at::kFloat;
    case model::DType::kBF16: return at::kBFloat16;
    case model::DType::kF16: return at::kHalf;
  }
  return at::kFloat;
}

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

model::DeviceOptions ToDevice(const NetOptions& o) {
  model::DeviceOptions d;
  d.device = o.device;
  d.dtype = o.dtype;
  d.num_threads = o.num_threads;
  return d;
}

// Hugging Face's class-name prefix of each architecture.
const char* ArchClassPrefix(model::Arch arch) {
  switch (arch) {
    case model::Arch::kQwen3: return "Qwen3";
    case model::Arch::kQwen2: return "Qwen2";
    case model::Arch::kLlama: return "Llama";
  }
  return "Qwen3";
}

// A right-padded batch: ids [B, T] (padding id 0, masked), valid, positions
// and the index of each sequence's last token.
struct Batch {
  at::Tensor ids, valid, positions, last;
};

absl::StatusOr<Batch> MakeBatch(const std::vector<std::vector<int32_t>>& sequences,
                                int64_t vocab_size, at::Device device) {
  if (sequences.empty()) return absl::InvalidArgumentError("empty batch");
  int64_t width = 0;
  for (size_t i = 0; i < sequences.size(); ++i) {
    if (sequences[i].empty()) return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " is empty"));
    width = std::max<int64_t>(width, static_cast<int64_t>(sequences[i].size()));
  }
  const int64_t b = static_cast<int64_t>(sequences.size());
  at::Tensor ids = at::zeros({b, width}, at::kLong);
  at::Tensor valid = at::zeros({b, width}, at::kBool);
  at::Tensor last = at::zeros({b}, at::kLong);
  auto ida = ids.accessor<int64_t, 2>();
  auto va = valid.accessor<bool, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& s = sequences[i];
    for (size_t t = 0; t < s.size(); ++t) {
      if (s[t] < 0 || s[t] >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", i, ": token id ", s[t],
                                                       " outside the model's vocabulary [0, ",
                                                       vocab_size, ")"));
      }
      ida[i][t] = s[t];
      va[i][t] = true;
    }
    last[i] = static_cast<int64_t>(s.size()) - 1;
  }
  Batch batch;
  batch.ids = ids.to(device);
  batch.valid = valid.to(device);
  batch.positions = at::arange(width, at::TensorOptions().dtype(at::kLong)).unsqueeze(0).expand({b, width}).to(device);
  batch.last = last.to(device);
  return batch;
}

// Final hidden state of each sequence's last token, [B, hidden].
at::Tensor LastHidden(const model::Transformer& t, const Batch& batch) {
  at::Tensor hidden = t.Hidden(batch.ids, batch.positions, batch.valid, nullptr);
  at::Tensor rows = at::arange(hidden.size(0), batch.last.options());
  return hidden.index({rows, batch.last});
}

}  // namespace

struct RewardNet::Impl {
  std::unique_ptr<model::Transformer> transformer;
  // The config as read (the in-memory transformer is always built tied, since
  // a classification checkpoint has no lm_head to bind).
  model::ModelConfig config;
  at::Tensor score;  // [1, hidden], compute dtype
  int64_t pad_token_id = 0;
  bool configured_pad = false;
  std::unique_ptr<torch::optim::Adam> optimizer;

  at::Tensor Forward(const Batch& batch) const {
    model::CpuComputeLock compute(transformer->device());
    at::Tensor h = LastHidden(*transformer, batch).to(at::kFloat);
    return at::matmul(h, score.to(at::kFloat).t()).squeeze(-1);
  }
};

RewardNet::RewardNet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RewardNet::~RewardNet() = default;

const model::ModelConfig& RewardNet::config() const { return impl_->config; }
int64_t RewardNet::pad_token_id() const { return impl_->pad_token_id; }
void RewardNet::set_pad_token_id(int64_t id) {
  impl_->pad_token_id = id;
  impl_->configured_pad = true;
}
bool RewardNet::has_configured_pad() const { return impl_->configured_pad; }

absl::StatusOr<std::unique_ptr<RewardNet>> RewardNet::Load(const std::string& dir,
                                                           const NetOptions& options,
                                                           bool allow_new_head,
                                                           uint64_t head_seed) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  // 1. The classification fields transformers writes beside the
  //    architecture: num_labels (through id2label) and pad_token_id.
  auto raw = ReadJsonFile(config_path);
  if (!raw.ok()) return raw.status();
  int64_t num_labels = 1;
  if (auto it = raw->find("id2label"); it != raw->end() && it->is_object()) {
    num_labels = static_cast<int64_t>(it->size());
  } else if (auto n = raw->find("num_labels"); n != raw->end() && n->is_number_integer()) {
    num_labels = n->get<int64_t>();
  }
  if (num_labels != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        config_path, ": num_labels is ", num_labels,
        "; a reward model has exactly one output (num_labels = 1, score.weight [1, hidden])"));
  }
  model::StatusOr<model::ModelConfig> config = model::ModelConfig::Load(config_path);
  if (!config.ok()) return FromModelStatus(config.status());

  return Guard(dir, [&]() -> absl::StatusOr<std::unique_ptr<RewardNet>> {
    auto impl = std::make_unique<Impl>();
    impl->config = *config;
    impl->pad_token_id = config->eos_token_ids.empty() ? 0 : config->eos_token_ids[0];
    if (auto p = raw->find("pad_token_id"); p != raw->end() && p->is_number_integer()) {
      impl->pad_token_id = p->get<int64_t>();
      impl->configured_pad = true;
    }
    model::ModelConfig tied = *config;
    tied.tie_word_embeddings = true;
    auto created = model::Transformer::CreateRandom(tied, {.seed = head_seed}, ToDevice(options));
    if (!created.ok()) return FromModelStatus(created.status());
    impl->transformer = std::move(*created);
    model::SetTorchThreads(options.num_threads);

    // 2. Every transformer tensor from the checkpoint, shapes checked.
    auto ckpt = model::SafetensorsCheckpoint::OpenDir(dir);
    if (!ckpt.ok()) return FromModelStatus(ckpt.status());
    at::NoGradGuard no_grad;
    for (const auto& [name, param] : impl->transformer->named_parameters()) {
      const model::TensorView* view = ckpt->Find(name);
      if (view == nullptr) {
        return absl::DataLossError(absl::StrCat(dir, ": tensor \"", name,
                                                "\" missing from the safetensors files"));
      }
      if (c10::IntArrayRef(view->shape) != param.sizes()) {
        return absl::InvalidArgumentError(absl::StrCat(
            ckpt->FileOf(name), ": tensor \"", name, "\": shape ", ShapeString(view->shape),
            ", config.json implies ", ShapeString(param.sizes())));
      }
      at::Tensor src = at::from_blob(const_cast<void*>(view->data), view->shape,
                                     at::TensorOptions().dtype(ScalarTypeOf(view->dtype)));
      param.copy_(src);
    }
    // 3. The head: [1, hidden], or a fresh one for a causal LM when allowed.
    const int64_t hidden = config->hidden_size;
    auto opts = at::TensorOptions().dtype(impl->transformer->dtype()).device(impl->transformer->device());
    if (const model::TensorView* view = ckpt->Find(kScoreWeight)) {
      if (view->shape != std::vector<int64_t>{1, hidden}) {
        return absl::InvalidArgumentError(absl::StrCat(
            ckpt->FileOf(kScoreWeight), ": tensor \"score.weight\": shape ", ShapeString(view->shape),
            "; a reward model needs [1, ", hidden, "] (num_labels = 1, hidden_size = ", hidden, ")"));
      }
      impl->score = at::from_blob(const_cast<void*>(view->data), view->shape,
                                  at::TensorOptions().dtype(ScalarTypeOf(view->dtype)))
                        .to(opts, /*non_blocking=*/false, /*copy=*/true);
    } else if (allow_new_head) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(head_seed + 1);
      impl->score = at::normal(0.0, config->initializer_range, {1, hidden}, gen,
                               at::TensorOptions().dtype(at::kFloat))
                        .to(opts);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, ": no tensor \"score.weight\": not a reward model checkpoint (a causal LM?); "
               "`reward_model train --model ", dir, "` starts a reward model from it"));
    }
    // 4. Nothing else may be there (lm_head of a causal LM is dropped).
    for (const std::string& name : ckpt->Names()) {
      if (name == kScoreWeight || name == "lm_head.weight") continue;
      if (impl->transformer->named_parameters().count(name)) continue;
      if (name.size() >= 19 && name.compare(name.size() - 19, 19, "rotary_emb.inv_freq") == 0) continue;
      return absl::InvalidArgumentError(absl::StrCat(ckpt->FileOf(name), ": unexpected tensor \"",
                                                     name, "\" for a reward model"));
    }
    return std::unique_ptr<RewardNet>(new RewardNet(std::move(impl)));
  });
}

absl::Status RewardNet::Save(const std::string& dir, const std::vector<std::string>& extra_files) const {
  return Guard(dir, [&]() -> absl::Status {
    auto storage = model::ParseTorchDType(impl_->config.torch_dtype);
    if (!storage.ok()) return FromModelStatus(storage.status());
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return absl::FailedPreconditionError(absl::StrCat(dir, ": cannot create: ", ec.message()));
    std::vector<at::Tensor> keep;
    std::vector<model::TensorToWrite> tensors;
    auto add = [&](const std::string& name, const at::Tensor& p) {
      at::Tensor t = p.detach().to(at::kCPU, ScalarTypeOf(*storage)).contiguous();
      keep.push_back(t);
      model::TensorToWrite w;
      w.name = name;
      w.dtype = *storage;
      w.shape = t.sizes().vec();
      w.data = t.data_ptr();
      w.nbytes = static_cast<size_t>(t.numel()) * t.element_size();
      tensors.push_back(std::move(w));
    };
    for (const auto& [name, p] : impl_->transformer->named_parameters()) add(name, p);
    add(kScoreWeight, impl_->score);
    if (model::Status s = model::WriteSafetensorsDir(dir, tensors); !s.ok()) return FromModelStatus(s);

    auto json = ParseJson(impl_->config.ToJson().Dump(2), "config");
    if (!json.ok()) return json.status();
    (*json)["architectures"] =
        Json::array({absl::StrCat(ArchClassPrefix(impl_->config.arch), "ForSequenceClassification")});
    (*json)["id2label"] = Json{{"0", "LABEL_0"}};
    (*json)["label2id"] = Json{{"LABEL_0", 0}};
    (*json)["pad_token_id"] = impl_->pad_token_id;
    std::ofstream out(fs::path(dir) / "config.json", std::ios::trunc);
    out << json->dump(2) << "\n";
    out.close();
    if (!out) return absl::InternalError(absl::StrCat(dir, "/config.json: write failed"));
    for (const std::string& file : extra_files) {
      fs::path to = fs::path(dir) / fs::path(file).filename();
      if (fs::exists(to) && fs::equivalent(file, to)) continue;
      fs::copy_file(file, to, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        return absl::FailedPreconditionError(
            absl::StrCat(file, ": cannot copy into ", dir, ": ", ec.message()));
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<float>> RewardNet::Score(
    const std::vector<std::vector<int32_t>>& sequences) const {
  return Guard("score", [&]() -> absl::StatusOr<std::vector<float>> {
    auto batch = MakeBatch(sequences, impl_->config.vocab_size, impl_->transformer->device());
    if (!batch.ok()) return batch.status();
    at::NoGradGuard no_grad;
    at::Tensor scores = impl_->Forward(*batch).to(at::kCPU).contiguous();
    return std::vector<float>(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
  });
}

absl::StatusOr<TrainStepResult> RewardNet::TrainStep(const std::vector<std::vector<int32_t>>& chosen,
                                                     const std::vector<std::vector<int32_t>>& rejected,
                                                     double learning_rate) {
  if (chosen.size() != rejected.size() || chosen.empty()) {
    return absl::InvalidArgumentError("TrainStep needs as many chosen as rejected sequences, at least one");
  }
  return Guard("train step", [&]() -> absl::StatusOr<TrainStepResult> {
    if (impl_->optimizer == nullptr) {
      // Training starts: the weights become leaves of the autograd graph.
      std::vector<at::Tensor> params;
      for (const auto& [name, p] : impl_->transformer->named_parameters()) {
        p.requires_grad_(true);
        params.push_back(p);
      }
      impl_->score.requires_grad_(true);
      params.push_back(impl_->score);
      impl_->optimizer = std::make_unique<torch::optim::Adam>(
          params, torch::optim::AdamOptions(learning_rate));
    }
    for (auto& group : impl_->optimizer->param_groups()) {
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(learning_rate);
    }
    std::vector<std::vector<int32_t>> both = chosen;
    both.insert(both.end(), rejected.begin(), rejected.end());
    auto batch = MakeBatch(both, impl_->config.vocab_size, impl_->transformer->device());
    if (!batch.ok()) return batch.status();
    const int64_t n = static_cast<int64_t>(chosen.size());
    model::CpuComputeLock compute(impl_->transformer->device());  // the backward multiplies too
    impl_->optimizer->zero_grad();
    at::Tensor r = impl_->Forward(*batch);
    at::Tensor margin = r.slice(0, 0, n) - r.slice(0, n, 2 * n);
    at::Tensor loss = -at::log_sigmoid(margin).mean();
    loss.backward();
    impl_->optimizer->step();
    TrainStepResult result;
    result.loss = loss.item<double>();
    result.accuracy = (margin > 0).to(at::kFloat).mean().item<double>();
    return result;
  });
}

struct JudgeNet::Impl {
  std::unique_ptr<model::Transformer> transformer;
};

JudgeNet::JudgeNet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JudgeNet::~JudgeNet() = default;

const model::ModelConfig& JudgeNet::config() const { return impl_->transformer->config(); }

absl::StatusOr<std::unique_ptr<JudgeNet>> JudgeNet::Load(const std::string& dir,
                                                         const NetOptions& options) {
  auto loaded = model::Transformer::Load(dir, ToDevice(options));
  if (!loaded.ok()) return FromModelStatus(loaded.status());
  auto impl = std::make_unique<Impl>();
  impl->transformer = std::move(*loaded);
  return std::unique_ptr<JudgeNet>(new JudgeNet(std::move(impl)));
}

absl::StatusOr<std::vector<double>> JudgeNet::ProbabilityYes(
    const std::vector<std::vector<int32_t>>& prompts, const std::vector<int32_t>& yes_ids,
    const std::vector<int32_t>& no_ids) const {
  if (yes_ids.empty() || no_ids.empty()) {
    return absl::InvalidArgumentError("the judge needs at least one yes and one no token");
  }
  const model::Transformer& t = *impl_->transformer;
  return Guard("judge", [&]() -> absl::StatusOr<std::vector<double>> {
    auto batch = MakeBatch(prompts, t.config().vocab_size, t.device());
    if (!batch.ok()) return batch.status();
    at::NoGradGuard no_grad;
    at::Tensor logp = at::log_softmax(t.Logits(LastHidden(t, *batch)), -1);  // [B, V] float32
    auto index = [&](const std::vector<int32_t>& ids) {
      std::vector<int64_t> v(ids.begin(), ids.end());
      return at::tensor(v, at::kLong).to(t.device());
    };
    // log P(yes set) - log P(no set); sigmoid of it is the renormalized P(yes).
    at::Tensor yes = at::logsumexp(logp.index_select(1, index(yes_ids)), 1);
    at::Tensor no = at::logsumexp(logp.index_select(1, index(no_ids)), 1);
    at::Tensor p = at::sigmoid(yes - no).to(at::kDouble).to(at::kCPU).contiguous();
    return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
  });
}

}  // namespace cascade::reward_model
