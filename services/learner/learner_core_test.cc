#include "services/learner/learner_core.h"

#include <ATen/ATen.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "model/test_util.h"
#include "model/transformer.h"
#include "services/learner/checkpoint_files.h"
#include "tests/util/subprocess.h"

namespace cascade::learner {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<model::Model> TinyModel(uint64_t seed = 7) {
  model::RuntimeOptions ro;
  ro.dtype = "float32";
  ro.num_threads = 2;
  auto m = model::Model::CreateRandom(model::testing::TinyConfig(model::Arch::kQwen3), seed, ro,
                                      /*perturb=*/0.3);
  REQUIRE(m.ok());
  return std::move(*m);
}

LearnerOptions Options() {
  LearnerOptions o;
  o.num_threads = 2;
  o.optimizer.learning_rate = 1e-3;
  o.optimizer.weight_decay = 0.01;
  return o;
}

std::unique_ptr<LearnerCore> MakeCore(std::unique_ptr<model::Model> m,
                                      const LearnerOptions& o = Options()) {
  auto core = LearnerCore::Create(std::move(m), o);
  REQUIRE(core.ok());
  return std::move(*core);
}

// `groups` prompt groups of `g` responses each: prompt lengths and response
// lengths all differ; advantages are group-normalised rewards (DESIGN.md §1).
Batch MakeBatch(uint32_t seed, int groups = 2, int g = 3, int64_t version = 0) {
  std::mt19937 rng(seed);
  Batch batch;
  batch.policy_version = version;
  for (int q = 0; q < groups; ++q) {
    const int prompt_len = 3 + static_cast<int>(rng() % 5);
    std::vector<int64_t> prompt;
    for (int i = 0; i < prompt_len; ++i) prompt.push_back(rng() % 990);
    std::vector<float> rewards;
    for (int i = 0; i < g; ++i) rewards.push_back(static_cast<float>(rng() % 3));
    if (rewards[0] == rewards[1]) rewards[1] = rewards[0] + 1;  // non-zero std
    float mean = 0, var = 0;
    for (float r : rewards) mean += r / g;
    for (float r : rewards) var += (r - mean) * (r - mean) / g;
    for (int i = 0; i < g; ++i) {
      Sequence s;
      s.token_ids = prompt;
      s.loss_mask.assign(prompt.size(), 0);
      const int response_len = 2 + 3 * i + static_cast<int>(rng() % 4);
      for (int t = 0; t < response_len; ++t) {
        s.token_ids.push_back(rng() % 990);
        s.loss_mask.push_back(1);
      }
      s.advantage = (rewards[i] - mean) / (std::sqrt(var) + 1e-6f);
      batch.sequences.push_back(std::move(s));
    }
  }
  return batch;
}

std::map<std::string, at::Tensor> Grads(const LearnerCore& core) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, p] : core.model().transformer()->named_parameters()) {
    out[name] = p.grad().clone();
  }
  return out;
}

std::map<std::string, at::Tensor> Weights(const model::Transformer& t) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, p] : t.named_parameters()) out[name] = p.detach().clone();
  return out;
}

struct Reference {
  double loss = 0, entropy = 0;
  at::Tensor token_logprobs;  // [b, T-1], assistant positions only
  at::Tensor mask;            // [b, T-1] bool
  std::map<std::string, at::Tensor> grads;
};

// The formula computed directly on the whole padded batch with the model's
// own (chunked) log-prob routine, independently of the learner's code path:
//   L = -(1 / sum_i |o_i|) sum_i sum_t A_i log pi(o_i,t | ...).
Reference DirectLoss(const model::Transformer& t, const Batch& batch, bool sft = false) {
  int64_t len = 0;
  for (const auto& s : batch.sequences) len = std::max<int64_t>(len, s.token_ids.size());
  const int64_t b = batch.sequences.size();
  at::Tensor ids = at::zeros({b, len}, at::kLong);
  at::Tensor valid = at::zeros({b, len}, at::kBool);
  at::Tensor mask = at::zeros({b, len}, at::kBool);
  at::Tensor adv = at::zeros({b, 1}, at::kFloat);
  for (int64_t i = 0; i < b; ++i) {
    const auto& s = batch.sequences[i];
    for (size_t k = 0; k < s.token_ids.size(); ++k) {
      ids[i][k] = s.token_ids[k];
      valid[i][k] = true;
      mask[i][k] = s.loss_mask[k] != 0;
    }
    adv[i][0] = sft ? 1.0f : s.advantage;
  }
  for (const auto& [name, p] : t.named_parameters()) {
    p.requires_grad_(true);
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
  at::Tensor lp = t.TokenLogProbs(ids, valid, /*chunk=*/3);
  at::Tensor m = mask.narrow(1, 1, len - 1);
  at::Tensor loss = -(adv * lp * m.to(at::kFloat)).sum() / m.sum().to(at::kFloat);
  loss.backward();
  Reference r;
  r.loss = loss.item<double>();
  r.token_logprobs = lp.detach();
  r.mask = m;
  for (const auto& [name, p] : t.named_parameters()) r.grads[name] = p.grad().clone();
  at::NoGradGuard no_grad;
  at::Tensor positions = (valid.to(at::kLong).cumsum(1) - 1).clamp_min(0);
  at::Tensor logits = t.Logits(t.Hidden(ids, positions, valid, nullptr)).narrow(1, 0, len - 1);
  at::Tensor logp = at::log_softmax(logits, -1);
  at::Tensor ent = -(logp.exp() * logp).sum(-1);
  r.entropy = (ent * m.to(at::kFloat)).sum().item<double>() / m.sum().item<double>();
  return r;
}

void CheckGradsClose(const std::map<std::string, at::Tensor>& a,
                     const std::map<std::string, at::Tensor>& b) {
  REQUIRE(a.size() == b.size());
  double largest = 0;
  for (const auto& [name, g] : a) {
    INFO(name);
    REQUIRE(b.at(name).defined());
    CHECK(at::allclose(g, b.at(name), /*rtol=*/1e-4, /*atol=*/1e-6));
    largest = std::max(largest, g.abs().max().item<double>());
  }
  CHECK(largest > 1e-4);  // the comparison is not between zeros
}

TEST_CASE("GRPO loss and gradients equal the formula computed directly, for unequal lengths and any micro-batch split",
          "[learner]") {
  auto core = MakeCore(TinyModel());
  Batch batch = MakeBatch(/*seed=*/1);
  Reference ref = DirectLoss(*core->model().transformer(), batch);

  for (int64_t budget : {int64_t{1}, int64_t{40}, int64_t{100000}}) {
    INFO("micro_batch_tokens " << budget);
    batch.micro_batch_tokens = budget;
    auto stats = core->ComputeGradients(batch);
    REQUIRE(stats.ok());
    CHECK(stats->loss == Approx(ref.loss).epsilon(1e-5));
    CHECK(stats->tokens == ref.mask.sum().item<int64_t>());
    CHECK(stats->entropy == Approx(ref.entropy).epsilon(1e-5));
    if (budget == 1) CHECK(stats->micro_batches == 6);
    if (budget == 100000) CHECK(stats->micro_batches == 1);
    if (budget == 40) CHECK((stats->micro_batches > 1 && stats->micro_batches < 6));
    CheckGradsClose(Grads(*core), ref.grads);
  }
}

TEST_CASE("the log-prob mismatch is the mean absolute gap to the rollout's log-probs",
          "[learner]") {
  auto core = MakeCore(TinyModel());
  Batch batch = MakeBatch(/*seed=*/2);
  Reference ref = DirectLoss(*core->model().transformer(), batch);
  // Rollout log-probs offset by +-0.25 from the learner's: mismatch 0.25.
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    auto& s = batch.sequences[i];
    for (size_t t = 1; t < s.token_ids.size(); ++t) {
      if (s.loss_mask[t] == 0) continue;
      const float lp = ref.token_logprobs[i][t - 1].item<float>();
      s.rollout_logprobs.push_back(lp + (t % 2 == 0 ? 0.25f : -0.25f));
    }
  }
  auto stats = core->ComputeGradients(batch);
  REQUIRE(stats.ok());
  CHECK(stats->logprob_mismatch == Approx(0.25).epsilon(1e-3));
  batch.sequences[0].rollout_logprobs.pop_back();
  CHECK(core->ComputeGradients(batch).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("SFT loss is the mean cross-entropy over assistant tokens", "[learner]") {
  auto core = MakeCore(TinyModel());
  Batch batch = MakeBatch(/*seed=*/3);
  batch.loss = LossKind::kSft;
  Reference ref = DirectLoss(*core->model().transformer(), batch, /*sft=*/true);
  batch.micro_batch_tokens = 30;
  auto stats = core->ComputeGradients(batch);
  REQUIRE(stats.ok());
  CHECK(stats->loss == Approx(ref.loss).epsilon(1e-5));
  CHECK(stats->loss > 1.0);  // a random model is far from the data
  CheckGradsClose(Grads(*core), ref.grads);
}

TEST_CASE("a train step clips the gradient and applies AdamW exactly as torch does on the direct gradient",
          "[learner]") {
  LearnerOptions o = Options();
  o.optimizer.max_grad_norm = 0.05;  // small enough to clip
  // With eps far below |g| the first Adam step is lr * sign(g), which turns
  // float rounding in near-zero gradients into full-size differences; an eps
  // of the gradients' own scale keeps the comparison meaningful.
  o.optimizer.eps = 1e-4;
  auto core = MakeCore(TinyModel(), o);
  auto twin = TinyModel();  // same seed: same weights
  Batch batch = MakeBatch(/*seed=*/4);

  auto stats = core->TrainStep(batch);
  REQUIRE(stats.ok());
  CHECK(stats->policy_version == 1);
  CHECK(core->version() == 1);
  CHECK(stats->learning_rate == Approx(1e-3));

  Reference ref = DirectLoss(*twin->transformer(), batch);
  std::vector<at::Tensor> params;
  double sq = 0;
  for (const auto& [name, p] : twin->transformer()->named_parameters()) {
    params.push_back(p);
    sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  CHECK(stats->grad_norm == Approx(std::sqrt(sq)).epsilon(1e-4));
  REQUIRE(stats->grad_norm > 0.05);
  // Direct AdamW, first step, on the clipped gradient.
  at::NoGradGuard no_grad;
  const double scale = 0.05 / (std::sqrt(sq) + 1e-6);
  for (auto& p : params) {
    at::Tensor g = p.grad() * scale;
    at::Tensor m = 0.1 * g, v = 0.001 * g * g;  // (1-b1) g, (1-b2) g^2
    at::Tensor m_hat = m / 0.1, v_hat = v / 0.001;
    p.mul_(1 - 1e-3 * 0.01);
    p.sub_(1e-3 * m_hat / (v_hat.sqrt() + 1e-4));
  }
  auto got = Weights(*core->model().transformer());
  auto want = Weights(*twin->transformer());
  double moved = 0;
  for (const auto& [name, w] : want) {
    INFO(name);
    CHECK(at::allclose(got[name], w, /*rtol=*/1e-5, /*atol=*/1e-6));
  }
  for (const auto& [name, w] : Weights(*TinyModel()->transformer())) {
    moved = std::max(moved, (got[name] - w).abs().max().item<double>());
  }
  CHECK(moved > 5e-4);  // the step changed the weights by about lr
}

TEST_CASE("a GRPO batch from another policy version is refused", "[learner]") {
  auto core = MakeCore(TinyModel());
  Batch batch = MakeBatch(/*seed=*/5, 1, 2, /*version=*/3);
  auto stats = core->TrainStep(batch);
  REQUIRE(stats.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(core->version() == 0);
  batch.policy_version = 0;
  REQUIRE(core->TrainStep(batch).ok());
  CHECK(core->TrainStep(batch).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("learning-rate schedules warm up linearly and decay along a cosine", "[learner]") {
  LearnerOptions o = Options();
  o.optimizer.learning_rate = 1.0;
  o.optimizer.warmup_steps = 4;
  o.optimizer.total_steps = 14;
  o.optimizer.min_lr_ratio = 0.1;
  o.optimizer.schedule = LrSchedule::kCosine;
  auto core = MakeCore(TinyModel(), o);
  CHECK(core->ScheduledLearningRate(0) == Approx(0.25));
  CHECK(core->ScheduledLearningRate(3) == Approx(1.0));
  CHECK(core->ScheduledLearningRate(9) == Approx(0.1 + 0.9 * 0.5));
  CHECK(core->ScheduledLearningRate(14) == Approx(0.1));
  CHECK(core->ScheduledLearningRate(100) == Approx(0.1));
  o.optimizer.schedule = LrSchedule::kLinearWarmup;
  auto linear = MakeCore(TinyModel(), o);
  CHECK(linear->ScheduledLearningRate(1) == Approx(0.5));
  CHECK(linear->ScheduledLearningRate(50) == Approx(1.0));
  CHECK(!ParseLrSchedule("cosinus").ok());
}

TEST_CASE("resuming from a checkpoint gives bit-identical next steps", "[learner][checkpoint]") {
  const std::string root = model::testing::MakeTempDir("learner_ckpt");
  const std::string ckpt = root + "/step2";
  LearnerOptions o = Options();
  o.optimizer.schedule = LrSchedule::kCosine;
  o.optimizer.warmup_steps = 1;
  o.optimizer.total_steps = 6;
  auto a = MakeCore(TinyModel(), o);
  for (int64_t step = 0; step < 2; ++step) REQUIRE(a->TrainStep(MakeBatch(10 + step, 2, 3, step)).ok());
  REQUIRE(a->SaveCheckpoint(ckpt).ok());
  CHECK(VerifyManifest(ckpt).ok());
  std::vector<StepStats> a_stats;
  for (int64_t step = 2; step < 4; ++step) {
    auto s = a->TrainStep(MakeBatch(10 + step, 2, 3, step));
    REQUIRE(s.ok());
    a_stats.push_back(*s);
  }

  auto b = LearnerCore::Open(ckpt, o);
  REQUIRE(b.ok());
  CHECK((*b)->version() == 2);
  for (int64_t step = 2; step < 4; ++step) {
    auto s = (*b)->TrainStep(MakeBatch(10 + step, 2, 3, step));
    REQUIRE(s.ok());
    CHECK(s->loss == a_stats[step - 2].loss);
    CHECK(s->learning_rate == a_stats[step - 2].learning_rate);
  }
  auto wa = Weights(*a->model().transformer());
  auto wb = Weights(*(*b)->model().transformer());
  for (const auto& [name, w] : wa) {
    INFO(name);
    CHECK(at::equal(w, wb.at(name)));
  }
  // Saving again over the same directory replaces it atomically.
  REQUIRE((*b)->SaveCheckpoint(ckpt).ok());
  CHECK(VerifyManifest(ckpt).ok());
  fs::remove_all(root);
}

TEST_CASE("a corrupt or incomplete checkpoint is refused with an error naming the file",
          "[learner][checkpoint]") {
  const std::string root = model::testing::MakeTempDir("learner_corrupt");
  const std::string ckpt = root + "/ckpt";
  auto core = MakeCore(TinyModel());
  REQUIRE(core->SaveCheckpoint(ckpt).ok());
  {
    std::fstream f(ckpt + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  auto opened = LearnerCore::Open(ckpt, Options());
  REQUIRE(opened.status().code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(std::string(opened.status().message()), Catch::Contains("model.safetensors"));
  CHECK(core->LoadCheckpoint(ckpt).code() == absl::StatusCode::kDataLoss);

  fs::remove(ckpt + "/manifest.json");
  CHECK(core->LoadCheckpoint(ckpt).code() == absl::StatusCode::kNotFound);
  fs::remove_all(root);
}

// Keeps copies of what it is handed, as a rollout replica would.
class CopyingPublisher : public WeightPublisher {
 public:
  absl::Status Publish(int64_t version, const std::vector<TensorView>& tensors) override {
    this->version = version;
    for (const TensorView& t : tensors) {
      REQUIRE(t.dtype == "float32");
      at::Tensor copy = at::empty(t.shape, at::kFloat);
      REQUIRE(static_cast<size_t>(copy.nbytes()) == t.data.size());
      std::memcpy(copy.data_ptr(), t.data.data(), t.data.size());
      received[t.name] = copy;
    }
    return absl::OkStatus();
  }
  int RegisterReplica(const std::string& address) override { return 1; }
  int replica_count() const override { return 1; }
  int64_t version = -1;
  std::map<std::string, at::Tensor> received;
};

TEST_CASE("publishing hands every parameter's current bytes under the current version",
          "[learner]") {
  auto core = MakeCore(TinyModel());
  REQUIRE(core->TrainStep(MakeBatch(/*seed=*/6)).ok());
  CopyingPublisher publisher;
  REQUIRE(core->PublishWeights(publisher).ok());
  CHECK(publisher.version == 1);
  auto weights = Weights(*core->model().transformer());
  REQUIRE(publisher.received.size() == weights.size());
  for (const auto& [name, w] : weights) {
    INFO(name);
    CHECK(at::equal(publisher.received.at(name), w));
  }
}

// ---- Data parallel: this binary re-runs itself as the ranks. ----

constexpr int kDpSteps = 3;

// Global batch of step s; rank r of `world` takes every world-th sequence.
Batch DpBatch(int64_t step, int rank, int world) {
  Batch full = MakeBatch(/*seed=*/100 + step, /*groups=*/2, /*g=*/4, step);
  Batch mine = full;
  mine.sequences.clear();
  for (size_t i = 0; i < full.sequences.size(); ++i) {
    if (static_cast<int>(i % world) == rank) mine.sequences.push_back(full.sequences[i]);
  }
  mine.micro_batch_tokens = 24;
  return mine;
}

LearnerOptions DpOptions() {
  LearnerOptions o = Options();
  o.num_threads = 1;
  o.optimizer.max_grad_norm = 0.5;
  return o;
}

TEST_CASE("data-parallel rank worker", "[.dp_worker]") {
  const char* out = std::getenv("CASCADE_LEARNER_DP_OUT");
  REQUIRE(out != nullptr);
  LearnerOptions o = DpOptions();
  REQUIRE(DistributedFromEnvironment(&o.distributed).ok());
  o.distributed.timeout_seconds = 60;
  // Rank 1 starts from other weights: the rendezvous must hand it rank 0's.
  auto core = MakeCore(TinyModel(o.distributed.rank == 0 ? 7 : 8), o);
  for (int64_t step = 0; step < kDpSteps; ++step) {
    REQUIRE(core->TrainStep(DpBatch(step, o.distributed.rank, o.distributed.world_size)).ok());
  }
  REQUIRE(core->SaveCheckpoint(out).ok());
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_CASE("two Gloo ranks on loopback reach the weights of one process on the whole batch",
          "[learner][distributed]") {
  const std::string root = model::testing::MakeTempDir("learner_dp");
  const std::string out = root + "/dp";
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const int port = FreePort();
  std::vector<std::unique_ptr<cascade::testing::Subprocess>> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.push_back(std::make_unique<cascade::testing::Subprocess>(std::vector<std::string>{
        "/usr/bin/env", "WORLD_SIZE=2", "RANK=" + std::to_string(rank), "MASTER_ADDR=127.0.0.1",
        "MASTER_PORT=" + std::to_string(port), "CASCADE_LEARNER_DP_OUT=" + out, self,
        "data-parallel rank worker"}));
  }
  for (auto& r : ranks) {
    auto code = r->Wait(absl::Seconds(90));
    INFO(r->Stderr());
    REQUIRE(code.has_value());
    REQUIRE(*code == 0);
  }

  auto single = MakeCore(TinyModel(7), DpOptions());
  for (int64_t step = 0; step < kDpSteps; ++step) {
    REQUIRE(single->TrainStep(DpBatch(step, 0, 1)).ok());
  }
  auto dp = LearnerCore::Open(out, DpOptions());
  REQUIRE(dp.ok());
  CHECK((*dp)->version() == kDpSteps);
  auto ws = Weights(*single->model().transformer());
  auto wd = Weights(*(*dp)->model().transformer());
  auto w0 = Weights(*TinyModel(7)->transformer());
  double moved = 0;
  for (const auto& [name, w] : ws) {
    INFO(name);
    CHECK(at::allclose(wd.at(name), w, /*rtol=*/1e-4, /*atol=*/1e-5));
    moved = std::max(moved, (w - w0.at(name)).abs().max().item<double>());
  }
  CHECK(moved > 1e-3);
  fs::remove_all(root);
}

}  // namespace
}  // namespace cascade::learner
