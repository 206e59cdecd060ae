#include "services/learner/learner_core.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// NCCL only where libtorch was built with it: CMake defines USE_C10D_NCCL for
// CUDA builds of libtorch, and the header itself is empty without it.
#if defined(USE_C10D_NCCL) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define CASCADE_LEARNER_NCCL 1
#endif
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/status_macros.h"
#include "model/collective_backend.h"
#include "model/transformer.h"
#include "services/learner/checkpoint_files.h"

#ifndef USE_C10D_GLOO
#error "learner_core.cc needs USE_C10D_GLOO (ProcessGroupGloo); see services/learner/CMakeLists.txt"
#endif

namespace cascade::learner {
namespace {

namespace fs = std::filesystem;

constexpr char kOptimizerFile[] = "optimizer.pt";
constexpr char kRngFile[] = "rng.pt";
constexpr char kStateFile[] = "learner_state.json";
// Tokenizer files carried from the source model into every checkpoint.
constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json",
                                           "special_tokens_map.json", "vocab.json", "merges.txt"};

absl::Status FromModel(const model::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.code()), s.message());
}

// Runs torch code and turns its exceptions into a Status.
template <typename F>
absl::Status TorchCall(const char* what, F&& f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

// A group of sequences that fits the token budget once padded.
struct MicroBatch {
  std::vector<const Sequence*> sequences;
  int64_t max_len = 0;
};

// Greedy packing in batch order: extending a micro-batch is allowed while
// (count x longest) stays within the budget. Order is kept so the float
// summation order, hence the result, depends only on the batch and budget.
std::vector<MicroBatch> Pack(const std::vector<Sequence>& sequences, int64_t budget) {
  std::vector<MicroBatch> out;
  for (const Sequence& s : sequences) {
    const int64_t len = static_cast<int64_t>(s.token_ids.size());
    if (!out.empty()) {
      MicroBatch& last = out.back();
      const int64_t longest = std::max(last.max_len, len);
      if (longest * static_cast<int64_t>(last.sequences.size() + 1) <= budget) {
        last.sequences.push_back(&s);
        last.max_len = longest;
        continue;
      }
    }
    out.push_back(MicroBatch{{&s}, len});
  }
  return out;
}

int64_t AssistantTokens(const Sequence& s) {
  int64_t n = 0;
  for (size_t t = 1; t < s.loss_mask.size(); ++t) n += s.loss_mask[t] != 0;
  return n;
}

absl::Status ValidateBatch(const Batch& batch, int64_t vocab) {
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const Sequence& s = batch.sequences[i];
    const std::string where = absl::StrCat("sequences[", i, "]");
    if (s.token_ids.size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": needs at least 2 tokens"));
    }
    if (s.loss_mask.size() != s.token_ids.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": loss_mask has ", s.loss_mask.size(), " entries for ",
                       s.token_ids.size(), " tokens"));
    }
    if (s.loss_mask[0] != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".loss_mask[0]: the first token has no prefix to predict it from"));
    }
    for (size_t t = 0; t < s.token_ids.size(); ++t) {
      if (s.token_ids[t] < 0 || s.token_ids[t] >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".token_ids[", t, "]: ",
                                                       s.token_ids[t], " outside [0, ", vocab, ")"));
      }
    }
    const int64_t n = AssistantTokens(s);
    if (!s.rollout_logprobs.empty() && static_cast<int64_t>(s.rollout_logprobs.size()) != n) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", s.rollout_logprobs.size(), " rollout_logprobs for ", n,
                       " assistant tokens"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LrSchedule> ParseLrSchedule(const std::string& name) {
  if (name == "constant") return LrSchedule::kConstant;
  if (name == "linear_warmup") return LrSchedule::kLinearWarmup;
  if (name == "cosine") return LrSchedule::kCosine;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown LR schedule \"", name, "\" (expected one of: constant, linear_warmup, cosine)"));
}

absl::Status DistributedFromEnvironment(DistributedOptions* options) {
  auto get_int = [](const char* name, int* out) -> absl::Status {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return absl::OkStatus();
    if (!absl::SimpleAtoi(v, out)) {
      return absl::InvalidArgumentError(absl::StrCat("environment ", name, "=\"", v,
                                                     "\": expected an integer"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(get_int("WORLD_SIZE", &options->world_size));
  RETURN_IF_ERROR(get_int("MASTER_PORT", &options->master_port));
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a != '\0') {
    options->master_addr = a;
  }
  if (const char* r = std::getenv("RANK"); r != nullptr && *r != '\0') {
    return get_int("RANK", &options->rank);
  }
  // A StatefulSet names its pods <set>-<ordinal>; the ordinal is the rank.
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) {
    std::string h(host);
    const size_t dash = h.rfind('-');
    int ordinal = 0;
    if (dash != std::string::npos && absl::SimpleAtoi(h.substr(dash + 1), &ordinal)) {
      options->rank = ordinal;
    }
  }
  return absl::OkStatus();
}

struct LearnerCore::Torch {
  std::vector<std::string> names;  // parameter names, in `params` order
  // The model's parameters (compute dtype): autograd leaves of the forward.
  std::vector<at::Tensor> params;
  // What the optimizer steps, in `params` order, always float32. Mixed
  // precision: the tensors of `master`, a float32 twin of the model kept as a
  // Transformer so that it saves as a Hugging Face directory. float32: the
  // very tensors of `params` (and `master` is null), so that path is the
  // plain one, with no copy and no cast.
  std::vector<at::Tensor> masters;
  std::unique_ptr<model::Transformer> master;
  bool mixed = false;
  at::Device device = at::kCPU;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<model::CollectiveBackend> group;  // null when world_size == 1
  // Where the group's collectives take their tensors: the CPU for Gloo, the
  // model's CUDA device for NCCL.
  at::Device group_device = at::kCPU;

  // Runs `op` on `t`, staged through group_device when `t` lives elsewhere
  // (the small CPU statistics tensors under NCCL).
  template <typename Op>
  void OnGroupDevice(at::Tensor& t, Op&& op) {
    if (t.device() == group_device) {
      op(t);
      return;
    }
    at::Tensor staged = t.to(group_device);
    op(staged);
    t.copy_(staged);
  }
  // Sums `t` in place across ranks.
  void AllReduceSum(at::Tensor& t) {
    if (!group) return;
    OnGroupDevice(t, [&](at::Tensor& x) {
      std::vector<at::Tensor> v{x};
      group->allreduce(v)->wait();
    });
  }
  void Broadcast(at::Tensor& t) {
    if (!group) return;
    OnGroupDevice(t, [&](at::Tensor& x) {
      std::vector<at::Tensor> v{x};
      c10d::BroadcastOptions o;
      o.rootRank = 0;
      group->broadcast(v, o)->wait();
    });
  }
  void Barrier() {
    if (group) group->barrier()->wait();
  }
  // The masters' gradients as one flat buffer, so a step is one collective,
  // not one per tensor.
  void AllReduceGradients() {
    if (!group) return;
    std::vector<at::Tensor> flat;
    for (auto& p : masters) flat.push_back(p.mutable_grad().view(-1));
    at::Tensor buffer = at::cat(flat);
    AllReduceSum(buffer);
    int64_t offset = 0;
    for (auto& p : masters) {
      const int64_t n = p.numel();
      p.mutable_grad().view(-1).copy_(buffer.narrow(0, offset, n));
      offset += n;
    }
  }
  // Rank 0's masters (hence model weights) to every rank.
  void BroadcastParameters() {
    if (!group) return;
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> flat;
    for (auto& p : masters) flat.push_back(p.detach().view(-1));
    at::Tensor buffer = at::cat(flat);
    Broadcast(buffer);
    int64_t offset = 0;
    for (auto& p : masters) {
      const int64_t n = p.numel();
      p.detach().view(-1).copy_(buffer.narrow(0, offset, n));
      offset += n;
    }
    CopyMastersToModel();
  }
  // The masters take `loaded`'s weights (names and shapes checked by the
  // caller), and the model their compute-dtype copy.
  void TakeMasters(const model::Transformer& loaded) {
    at::NoGradGuard no_grad;
    const auto& from = loaded.named_parameters();
    for (size_t i = 0; i < masters.size(); ++i) masters[i].copy_(from.at(names[i]));
    CopyMastersToModel();
  }
  // Mixed precision: rounds the masters into the model's parameters (the
  // same rounding as master.to(compute dtype)). A no-op in float32.
  void CopyMastersToModel() {
    if (!mixed) return;
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(masters[i]);
  }
  // Mixed precision: adds the gradients the last backward left in the
  // model's parameters into the masters' float32 gradients, then drops them,
  // so the next micro-batch's backward starts from none (and autograd can
  // hand its buffer over instead of adding into one).
  void AccumulateIntoMasters() {
    if (!mixed) return;
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& g = params[i].mutable_grad();
      if (!g.defined()) continue;
      at::Tensor& mg = masters[i].mutable_grad();
      if (mg.defined()) {
        mg.add_(g);  // widened to float32 exactly, then summed in float32
      } else {
        mg = g.to(at::kFloat);
      }
      g.reset();
    }
  }
};

LearnerCore::LearnerCore(std::unique_ptr<model::Model> model, const LearnerOptions& options,
                         std::string source_dir)
    : model_(std::move(model)), options_(options), source_dir_(std::move(source_dir)),
      torch_(std::make_unique<Torch>()) {}

LearnerCore::~LearnerCore() = default;

absl::StatusOr<std::unique_ptr<LearnerCore>> LearnerCore::Create(
    std::unique_ptr<model::Model> model, const LearnerOptions& options, std::string source_dir) {
  return CreateWithMasters(std::move(model), nullptr, options, std::move(source_dir));
}

absl::StatusOr<std::unique_ptr<LearnerCore>> LearnerCore::CreateWithMasters(
    std::unique_ptr<model::Model> model, std::unique_ptr<model::Transformer> masters,
    const LearnerOptions& options, std::string source_dir) {
  if (model == nullptr) return absl::InvalidArgumentError("LearnerCore: null model");
  model::Transformer* t = model->transformer();
  const at::Device device = t->device();
  if (!device.is_cpu() && !device.is_cuda()) {
    return absl::UnimplementedError(absl::StrCat("the learner trains on cpu or cuda, not on ",
                                                 device.str()));
  }
  if (t->dtype() == at::kHalf) {
    // float16's 5 exponent bits flush small gradients to zero unless the loss
    // is scaled up first (and the scale tuned to avoid overflow); bfloat16
    // has float32's range and needs none of that.
    return absl::UnimplementedError(
        "the learner does not train in float16 (its gradients underflow without loss scaling, "
        "which is not implemented); use dtype bfloat16 or float32");
  }
  if (t->dtype() != at::kFloat && t->dtype() != at::kBFloat16) {
    return absl::UnimplementedError(absl::StrCat("the learner trains in float32 or bfloat16, not ",
                                                 c10::toString(t->dtype())));
  }
  const DistributedOptions& d = options.distributed;
  if (d.world_size < 1 || d.rank < 0 || d.rank >= d.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("data parallel: rank ", d.rank, " is outside world size ", d.world_size));
  }
#ifndef CASCADE_LEARNER_NCCL
  if (device.is_cuda() && d.world_size > 1) {
    return absl::UnimplementedError(
        "data parallel on cuda needs NCCL, and this build's libtorch has no NCCL (a CPU-only "
        "libtorch, or one built without USE_NCCL); run with world size 1 or build against a "
        "CUDA libtorch");
  }
#endif
  const bool mixed = t->dtype() != at::kFloat;
  std::unique_ptr<LearnerCore> core(new LearnerCore(std::move(model), options, std::move(source_dir)));
  RETURN_IF_ERROR(TorchCall("learner setup", [&]() -> absl::Status {
    model::SetTorchThreads(options.num_threads);  // 0: every hardware thread
    Torch& tc = *core->torch_;
    tc.mixed = mixed;
    tc.device = device;
    const model::Transformer& tr = *core->model_->transformer();
    if (mixed) {
      if (masters == nullptr) {
        // A float32 twin to overwrite: its random values never survive the copy below.
        model::DeviceOptions f32;
        f32.device = device.str();
        f32.dtype = "float32";
        f32.num_threads = options.num_threads;
        auto twin = model::Transformer::CreateRandom(tr.config(), model::InitOptions{}, f32);
        if (!twin.ok()) return FromModel(twin.status());
        masters = std::move(*twin);
        at::NoGradGuard no_grad;
        for (const auto& [name, p] : tr.named_parameters()) {
          masters->named_parameters().at(name).copy_(p);
        }
      }
      if (masters->dtype() != at::kFloat || masters->device() != device ||
          masters->named_parameters().size() != tr.named_parameters().size()) {
        return absl::InternalError("master weights do not match the model");
      }
      tc.master = std::move(masters);
    }
    for (const auto& [name, p] : tr.named_parameters()) {
      at::Tensor param = p;
      param.requires_grad_(true);
      tc.names.push_back(name);
      tc.params.push_back(param);
      if (mixed) {
        auto it = tc.master->named_parameters().find(name);
        if (it == tc.master->named_parameters().end() || !it->second.sizes().equals(p.sizes())) {
          return absl::InternalError(absl::StrCat("master weights: ", name, " missing or misshapen"));
        }
        at::Tensor master = it->second;
        master.requires_grad_(true);  // a leaf with a .grad, as the optimizer expects
        tc.masters.push_back(master);
      } else {
        tc.masters.push_back(param);
      }
    }
    // The model starts as the masters rounded, whatever rounding the caller
    // applied when it built the model.
    tc.CopyMastersToModel();
    const OptimizerOptions& o = options.optimizer;
    tc.optimizer = std::make_unique<torch::optim::AdamW>(
        tc.masters, torch::optim::AdamWOptions(o.learning_rate)
                        .betas({o.beta1, o.beta2})
                        .eps(o.eps)
                        .weight_decay(o.weight_decay));
    if (d.world_size > 1) {
      c10d::TCPStoreOptions so;
      so.port = static_cast<uint16_t>(d.master_port);
      so.isServer = d.rank == 0;
      so.numWorkers = static_cast<size_t>(d.world_size);
      so.timeout = std::chrono::seconds(d.timeout_seconds);
      tc.store = c10::make_intrusive<c10d::TCPStore>(d.master_addr, so);
      if (device.is_cuda()) {
#ifdef CASCADE_LEARNER_NCCL
        auto no = c10d::ProcessGroupNCCL::Options::create();
        no->timeout = std::chrono::seconds(d.timeout_seconds);
        tc.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(tc.store, d.rank, d.world_size, no);
        tc.group_device = device;
#endif
      } else {
        auto go = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(d.timeout_seconds));
        const bool loopback = d.master_addr == "127.0.0.1" || d.master_addr == "localhost";
        go->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
        tc.group = c10::make_intrusive<c10d::ProcessGroupGloo>(tc.store, d.rank, d.world_size, go);
      }
      // Every rank starts from rank 0's weights, whatever it loaded.
      tc.BroadcastParameters();
    }
    return absl::OkStatus();
  }));
  return core;
}

absl::StatusOr<std::unique_ptr<LearnerCore>> LearnerCore::Open(const std::string& dir,
                                                              const LearnerOptions& options) {
  const bool is_checkpoint = fs::exists(fs::path(dir) / kManifestFile);
  if (is_checkpoint) RETURN_IF_ERROR(VerifyManifest(dir));
  model::RuntimeOptions ro;
  ro.device = options.device;
  ro.dtype = options.dtype;
  ro.num_threads = options.num_threads;
  auto loaded = model::Model::Load(dir, ro);
  if (!loaded.ok()) return FromModel(loaded.status());
  std::unique_ptr<model::Transformer> masters;
  if ((*loaded)->transformer()->dtype() == at::kBFloat16) {
    // The masters straight from the files: a float32 source (or a checkpoint,
    // which holds the masters) keeps every bit instead of passing through
    // the rounded model.
    model::DeviceOptions f32;
    f32.device = (*loaded)->transformer()->device().str();
    f32.dtype = "float32";
    f32.num_threads = options.num_threads;
    auto t = model::Transformer::Load(dir, f32);
    if (!t.ok()) return FromModel(t.status());
    masters = std::move(*t);
  }
  ASSIGN_OR_RETURN(auto core,
                   CreateWithMasters(std::move(*loaded), std::move(masters), options, dir));
  // The weights came with Model::Load from the verified directory.
  if (is_checkpoint) {
    RETURN_IF_ERROR(core->RestoreCheckpoint(dir, /*verified=*/true, /*load_weights=*/false));
  }
  return core;
}

int64_t LearnerCore::version() const { return step_; }

const model::Transformer& LearnerCore::master_weights() const {
  return torch_->master != nullptr ? *torch_->master : *model_->transformer();
}

bool LearnerCore::mixed_precision() const { return torch_->mixed; }

double LearnerCore::ScheduledLearningRate(int64_t steps) const {
  const OptimizerOptions& o = options_.optimizer;
  const double peak = o.learning_rate;
  if (o.schedule == LrSchedule::kConstant) return peak;
  if (steps < o.warmup_steps) {
    return peak * static_cast<double>(steps + 1) / static_cast<double>(o.warmup_steps);
  }
  if (o.schedule == LrSchedule::kLinearWarmup) return peak;
  const int64_t decay_steps = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
  const double progress =
      std::clamp(static_cast<double>(steps - o.warmup_steps) / decay_steps, 0.0, 1.0);
  const double floor = o.min_lr_ratio;
  return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

absl::StatusOr<StepStats> LearnerCore::ComputeGradients(const Batch& batch) {
  const auto start = std::chrono::steady_clock::now();
  model::Transformer* tr = model_->transformer();
  Torch& tc = *torch_;
  const absl::Status valid = ValidateBatch(batch, tr->config().vocab_size);
  int64_t local_tokens = 0;
  for (const Sequence& s : batch.sequences) local_tokens += AssistantTokens(s);

  StepStats stats;
  absl::Status status = TorchCall("gradient computation", [&]() -> absl::Status {
    // 1. Agree on the global token count (the loss normaliser) and on whether
    //    any rank's share was invalid, so no rank is left waiting in a
    //    collective another rank skipped.
    at::Tensor head = at::tensor({static_cast<double>(valid.ok() ? local_tokens : 0),
                                  valid.ok() ? 0.0 : 1.0},
                                 at::kDouble);
    tc.AllReduceSum(head);
    if (!valid.ok()) return valid;
    if (head[1].item<double>() > 0) {
      return absl::InvalidArgumentError("another data-parallel rank refused its share of the batch");
    }
    const int64_t total_tokens = static_cast<int64_t>(head[0].item<double>());
    if (total_tokens == 0) {
      return absl::InvalidArgumentError("the batch has no assistant tokens (loss_mask all 0)");
    }
    stats.tokens = total_tokens;
    for (auto& p : tc.masters) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    if (tc.mixed) {
      for (auto& p : tc.params) p.mutable_grad().reset();
    }

    // 2. Micro-batches: forward, sum of weighted token log-probs, backward
    //    scaled by the global normaliser; gradients accumulate in the
    //    masters' .grad (float32: the parameters' own .grad; mixed: the
    //    compute-dtype gradients are added in after each backward).
    const at::Device dev = tc.device;
    const int64_t budget =
        batch.micro_batch_tokens > 0 ? batch.micro_batch_tokens : options_.micro_batch_tokens;
    double loss_sum = 0, entropy_sum = 0, mismatch_sum = 0, mismatch_count = 0;
    const std::vector<MicroBatch> micro = Pack(batch.sequences, budget);
    for (const MicroBatch& mb : micro) {
      // Forward and backward on the CPU must not share the BLAS with another
      // thread's computation; the collectives below run outside the lock.
      model::CpuComputeLock compute(dev);
      const int64_t b = static_cast<int64_t>(mb.sequences.size()), len = mb.max_len;
      std::vector<int64_t> ids(b * len, 0);
      std::vector<uint8_t> valid_v(b * len, 0), mask(b * len, 0);
      std::vector<float> adv(b * len, 0.0f);
      std::vector<float> rollout;  // in row-major order of the masked positions
      std::vector<uint8_t> has_rollout;
      for (int64_t i = 0; i < b; ++i) {
        const Sequence& s = *mb.sequences[i];
        const float a = batch.loss == LossKind::kSft ? 1.0f : s.advantage;
        int64_t k = 0;
        for (size_t t = 0; t < s.token_ids.size(); ++t) {
          ids[i * len + t] = s.token_ids[t];
          valid_v[i * len + t] = 1;
          if (t > 0 && s.loss_mask[t] != 0) {
            mask[i * len + t] = 1;
            adv[i * len + t] = a;
            rollout.push_back(s.rollout_logprobs.empty() ? 0.0f : s.rollout_logprobs[k]);
            has_rollout.push_back(!s.rollout_logprobs.empty());
            ++k;
          }
        }
      }
      at::Tensor ids_t = at::tensor(ids, at::kLong).view({b, len}).to(dev);
      at::Tensor valid_t = at::tensor(valid_v, at::kByte).view({b, len}).to(dev, at::kBool);
      at::Tensor mask_t = at::tensor(mask, at::kByte).view({b, len}).to(dev, at::kBool);
      at::Tensor adv_t = at::tensor(adv, at::kFloat).view({b, len}).to(dev);
      at::Tensor positions = (valid_t.to(at::kLong).cumsum(1) - 1).clamp_min(0);
      at::Tensor hidden =
          tr->Hidden(ids_t, positions, valid_t, nullptr, options_.activation_checkpointing);
      // Only assistant positions reach the vocabulary projection: position
      // t-1 predicts token t, so select hidden[:, :-1] where mask[:, 1:].
      at::Tensor sel = mask_t.narrow(1, 1, len - 1);
      at::Tensor h = hidden.narrow(1, 0, len - 1).index({sel});          // [n, hidden]
      at::Tensor targets = ids_t.narrow(1, 1, len - 1).index({sel});     // [n]
      at::Tensor weights = adv_t.narrow(1, 1, len - 1).index({sel});     // [n]
      const int64_t n = h.size(0);
      if (n == 0) continue;
      at::Tensor r_all = at::tensor(rollout, at::kFloat).to(dev);
      at::Tensor has_all = at::tensor(has_rollout, at::kByte).to(dev, at::kBool);
      // The head in chunks of rows: each chunk's logits live only through its
      // own backward, which leaves the head's gradient and this chunk's rows
      // of d loss / d h; the trunk's backward then runs once on all of them.
      at::Tensor h_leaf = h.detach().requires_grad_(true);
      const int64_t rows = std::max<int64_t>(
          1, options_.logit_chunk_elements / std::max<int64_t>(1, tr->config().vocab_size));
      for (int64_t c0 = 0; c0 < n; c0 += rows) {
        const int64_t m = std::min(rows, n - c0);
        at::Tensor logp = at::log_softmax(tr->Logits(h_leaf.narrow(0, c0, m)), -1);  // [m, vocab] f32
        at::Tensor token_lp = logp.gather(1, targets.narrow(0, c0, m).unsqueeze(1)).squeeze(1);
        at::Tensor loss_part = -(weights.narrow(0, c0, m) * token_lp).sum();
        (loss_part / static_cast<double>(total_tokens)).backward();
        // Mixed precision: the head's chunk gradient joins the float32
        // masters now rather than summing in bfloat16 across chunks.
        tc.AccumulateIntoMasters();
        loss_sum += loss_part.item<double>();
        at::NoGradGuard no_grad;
        at::Tensor lp = logp.detach();
        entropy_sum += (-(lp.exp() * lp).sum(-1)).sum().item<double>();
        mismatch_sum += (r_all.narrow(0, c0, m) - token_lp.detach())
                            .abs()
                            .masked_fill(has_all.narrow(0, c0, m).logical_not(), 0)
                            .sum()
                            .item<double>();
      }
      mismatch_count += has_all.sum().item<double>();
      h.backward(h_leaf.grad());
      tc.AccumulateIntoMasters();
    }
    for (auto& p : tc.masters) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    }
    // 3. Sum the per-rank gradients and statistics: every term was already
    //    divided by the global token count, so the sum is the gradient of
    //    the whole batch, as if one process had run it.
    tc.AllReduceGradients();
    at::Tensor tail = at::tensor({loss_sum, entropy_sum, mismatch_sum, mismatch_count}, at::kDouble);
    tc.AllReduceSum(tail);
    stats.loss = tail[0].item<double>() / total_tokens;
    stats.entropy = tail[1].item<double>() / total_tokens;
    const double count = tail[3].item<double>();
    stats.logprob_mismatch = count > 0 ? tail[2].item<double>() / count : 0.0;
    stats.micro_batches = static_cast<int64_t>(micro.size());
    return absl::OkStatus();
  });
  RETURN_IF_ERROR(status);
  stats.policy_version = step_;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

absl::StatusOr<StepStats> LearnerCore::TrainStep(const Batch& batch) {
  const auto start = std::chrono::steady_clock::now();
  // Strict on-policy: a rollout batch is only valid for the weights that
  // generated it. SFT data does not come from the policy, so it has no version.
  if (batch.loss == LossKind::kGrpo && batch.policy_version != step_) {
    return absl::FailedPreconditionError(
        absl::StrCat("batch was generated by policy version ", batch.policy_version,
                     " but the learner is at version ", step_,
                     " (strict on-policy: regenerate the batch with the current weights)"));
  }
  ASSIGN_OR_RETURN(StepStats stats, ComputeGradients(batch));
  Torch& tc = *torch_;
  RETURN_IF_ERROR(TorchCall("optimizer step", [&]() -> absl::Status {
    // PyTorch's clip_grad_norm_: the L2 norm of the per-tensor norms, and a
    // scale of max_norm / (norm + 1e-6) applied only when it is below 1.
    // Both on the float32 masters' gradients and weights.
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> norms;
    for (const auto& p : tc.masters) norms.push_back(p.grad().norm());
    const double norm = at::stack(norms).norm().item<double>();
    stats.grad_norm = norm;
    const double max_norm = options_.optimizer.max_grad_norm;
    if (max_norm > 0 && max_norm / (norm + 1e-6) < 1.0) {
      for (auto& p : tc.masters) p.mutable_grad().mul_(max_norm / (norm + 1e-6));
    }
    const double lr = batch.learning_rate > 0 ? batch.learning_rate : ScheduledLearningRate(step_);
    if (!batch.optimizer_scope.empty() && batch.optimizer_scope != optimizer_scope_) {
      // AdamW re-creates zero moments and a zero step for parameters without
      // state, exactly as on its first step.
      tc.optimizer->state().clear();
      stats.optimizer_reset = true;
    }
    for (auto& group : tc.optimizer->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    tc.optimizer->step();
    tc.CopyMastersToModel();
    stats.learning_rate = lr;
    return absl::OkStatus();
  }));
  ++step_;
  if (!batch.optimizer_scope.empty()) optimizer_scope_ = batch.optimizer_scope;
  stats.policy_version = step_;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

absl::Status LearnerCore::SaveCheckpoint(const std::string& dir) {
  Torch& tc = *torch_;
  absl::Status status = absl::OkStatus();
  if (options_.distributed.rank == 0) {
    status = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::string staging, MakeStagingDir(dir));
      absl::Status written = [&]() -> absl::Status {
        std::vector<std::string> extra;
        if (!source_dir_.empty()) {
          for (const char* f : kTokenizerFiles) {
            fs::path p = fs::path(source_dir_) / f;
            if (fs::exists(p)) extra.push_back(p.string());
          }
        }
        // The float32 masters in mixed precision: a checkpoint that held the
        // rounded model would lose the updates smaller than a bfloat16 step
        // on resume. Stored as float32 either way, so it opens in either
        // precision and in transformers unchanged.
        model::Status saved;
        if (tc.master != nullptr) {
          model::SaveOptions so;
          so.dtype = "float32";
          so.extra_files = extra;
          saved = tc.master->Save(staging, so);
        } else {
          saved = model_->Save(staging, extra, "float32");
        }
        if (!saved.ok()) return FromModel(saved);
        RETURN_IF_ERROR(TorchCall("saving optimizer/RNG state", [&]() -> absl::Status {
          torch::save(*tc.optimizer, (fs::path(staging) / kOptimizerFile).string());
          at::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
          torch::save(rng, (fs::path(staging) / kRngFile).string());
          return absl::OkStatus();
        }));
        Json state = {{"step", step_},
                      {"optimizer_scope", optimizer_scope_},
                      {"world_size", options_.distributed.world_size},
                      {"arch", model::ArchName(model_->config().arch)}};
        {
          std::ofstream out(fs::path(staging) / kStateFile);
          out << state.dump(2) << "\n";
          if (!out.flush()) return absl::InternalError(absl::StrCat(staging, ": cannot write state"));
        }
        RETURN_IF_ERROR(WriteManifest(staging));
        RETURN_IF_ERROR(SyncTree(staging));
        return PublishDir(staging, dir);
      }();
      if (!written.ok()) {
        std::error_code ec;
        fs::remove_all(staging, ec);
      }
      return written;
    }();
  }
  RETURN_IF_ERROR(TorchCall("checkpoint barrier", [&]() -> absl::Status {
    tc.Barrier();
    return absl::OkStatus();
  }));
  return status;
}

absl::Status LearnerCore::LoadCheckpoint(const std::string& dir) {
  return RestoreCheckpoint(dir, /*verified=*/false, /*load_weights=*/true);
}

absl::StatusOr<std::unique_ptr<model::Transformer>> LearnerCore::LoadMatchingMasters(
    const std::string& dir) const {
  const Torch& tc = *torch_;
  model::DeviceOptions d;
  d.device = tc.device.str();
  d.dtype = "float32";  // the masters' dtype
  d.num_threads = options_.num_threads;
  auto loaded = model::Transformer::Load(dir, d);
  if (!loaded.ok()) return FromModel(loaded.status());
  const auto& from = (*loaded)->named_parameters();
  if (from.size() != tc.params.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": has ", from.size(), " tensors, the learner's model ", tc.params.size()));
  }
  for (size_t i = 0; i < tc.params.size(); ++i) {
    auto it = from.find(tc.names[i]);
    if (it == from.end() || !it->second.sizes().equals(tc.params[i].sizes())) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, ": tensor ", tc.names[i], " is missing or has another shape"));
    }
  }
  return std::move(*loaded);
}

absl::Status LearnerCore::LoadModelWeights(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<model::Transformer> loaded, LoadMatchingMasters(dir));
  Torch& tc = *torch_;
  RETURN_IF_ERROR(TorchCall("loading model weights", [&]() -> absl::Status {
    tc.TakeMasters(*loaded);
    tc.optimizer->state().clear();
    return absl::OkStatus();
  }));
  optimizer_scope_.clear();
  ++step_;
  return absl::OkStatus();
}

absl::Status LearnerCore::RestoreCheckpoint(const std::string& dir, bool verified,
                                            bool load_weights) {
  if (!verified) RETURN_IF_ERROR(VerifyManifest(dir));
  ASSIGN_OR_RETURN(Json state, ReadJsonFile((fs::path(dir) / kStateFile).string()));
  ASSIGN_OR_RETURN(int64_t step, GetInt(state, "step", JsonPath(kStateFile)));
  // Absent in checkpoints written before scopes existed: the next scoped
  // step then starts fresh optimizer state.
  const std::string scope = state.contains("optimizer_scope") && state["optimizer_scope"].is_string()
                                ? state["optimizer_scope"].get<std::string>()
                                : "";
  std::unique_ptr<model::Transformer> loaded;
  if (load_weights) {
    ASSIGN_OR_RETURN(loaded, LoadMatchingMasters(dir));
  }
  Torch& tc = *torch_;
  RETURN_IF_ERROR(TorchCall("loading checkpoint", [&]() -> absl::Status {
    // 1. Everything that can fail, into fresh objects: a failed load leaves
    //    the learner exactly as it was.
    auto optimizer = std::make_unique<torch::optim::AdamW>(
        tc.masters, static_cast<const torch::optim::AdamWOptions&>(tc.optimizer->defaults()));
    // Onto the masters' device, wherever the writer kept its state.
    torch::load(*optimizer, (fs::path(dir) / kOptimizerFile).string(), tc.device);
    at::Tensor rng;
    torch::load(rng, (fs::path(dir) / kRngFile).string());
    // 2. Commit.
    if (loaded != nullptr) tc.TakeMasters(*loaded);
    tc.optimizer = std::move(optimizer);
    at::Generator generator = at::detail::getDefaultCPUGenerator();  // shares the state
    generator.set_state(rng);
    return absl::OkStatus();
  }));
  step_ = step;
  optimizer_scope_ = scope;
  return absl::OkStatus();
}

absl::Status LearnerCore::BroadcastBytes(std::string* bytes) {
  if (options_.distributed.world_size == 1) return absl::OkStatus();
  return TorchCall("broadcast", [&]() -> absl::Status {
    at::Tensor size = at::tensor({static_cast<int64_t>(bytes->size())}, at::kLong);
    torch_->Broadcast(size);
    const int64_t n = size[0].item<int64_t>();
    at::Tensor buffer = at::empty({std::max<int64_t>(n, 1)}, at::kByte);
    if (options_.distributed.rank == 0) {
      std::memcpy(buffer.data_ptr(), bytes->data(), static_cast<size_t>(n));
    }
    torch_->Broadcast(buffer);
    bytes->assign(static_cast<const char*>(buffer.data_ptr()), static_cast<size_t>(n));
    return absl::OkStatus();
  });
}

absl::Status LearnerCore::PublishWeights(WeightPublisher& publisher) {
  std::vector<TensorView> views;
  // Host copies of device parameters; they must outlive Publish().
  std::vector<at::Tensor> host;
  for (size_t i = 0; i < torch_->params.size(); ++i) {
    at::Tensor p = torch_->params[i];
    if (!p.is_contiguous()) {
      return absl::InternalError(absl::StrCat(torch_->names[i], ": parameter is not contiguous"));
    }
    if (!p.is_cpu()) {
      RETURN_IF_ERROR(TorchCall("copying weights to the host", [&]() -> absl::Status {
        host.push_back(p.detach().to(at::kCPU));
        return absl::OkStatus();
      }));
      p = host.back();
    }
    TensorView v;
    v.name = torch_->names[i];
    // The compute dtype: mixed precision publishes what the model computes
    // with (bfloat16), which is what a bfloat16 replica would round to anyway.
    v.dtype = p.scalar_type() == at::kBFloat16 ? "bfloat16" : "float32";
    v.shape.assign(p.sizes().begin(), p.sizes().end());
    v.data = absl::Span<const uint8_t>(static_cast<const uint8_t*>(p.data_ptr()),
                                       static_cast<size_t>(p.nbytes()));
    views.push_back(std::move(v));
  }
  return publisher.PublishModel(step_, views, *model_);
}

}  // namespace cascade::learner
