// Checks that need what CI machines lack: a CUDA device and the Hugging Face
// `transformers` package. They are hidden ([.]) so that plain runs skip them;
// scripts/gpu-check.sh runs them with `model_test "[gpu-check]"`, where a
// missing GPU or package fails them instead of skipping.
//
// CUDA float32 is held to the CPU's 1e-4 against the Python reference. In
// bfloat16 (the default CUDA compute dtype) the bounds are relative to the
// logit scale and the measured figures are printed, since those are what a
// user of the rollout/learner pair on a GPU wants to know.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>

#include "model/runtime.h"
#include "model/runtime_test_util.h"
#include "model/test_util.h"
#include "model/transformer.h"

namespace cascade::model {
namespace {

namespace fs = std::filesystem;
using testing::ChiSquare;
using testing::ChiSquareCritical;
using testing::FirstTokenCounts;
using testing::GreedyRequest;
using testing::kSequences;
using testing::MakeTempDir;
using testing::MaxAbsDiff;
using testing::NextTokenLogits;
using testing::ReferenceLogits;
using testing::SampledRequest;
using testing::TargetDistribution;
using testing::TinyConfig;

void RequireCuda() {
  if (!at::hasCUDA()) FAIL("no CUDA device: this libtorch has no CUDA or no GPU is visible");
}

std::unique_ptr<Model> LoadOn(const std::string& dir, const std::string& device,
                              const std::string& dtype) {
  RuntimeOptions ro;
  ro.device = device;
  ro.dtype = dtype;
  ro.num_threads = 2;
  auto m = Model::Load(dir, ro);
  INFO(device << " " << dtype << ": " << m.status().message());
  REQUIRE(m.ok());
  return std::move(*m);
}

// A random tiny model saved in float32 to a fresh directory.
std::string SaveTiny(Arch arch, uint64_t seed) {
  RuntimeOptions ro;
  ro.num_threads = 2;
  auto m = Model::CreateRandom(TinyConfig(arch), seed, ro, /*perturb=*/0.3);
  REQUIRE(m.ok());
  const std::string dir = MakeTempDir("model_gpu_check");
  REQUIRE((*m)->Save(dir).ok());
  return dir;
}

float MaxAbs(const std::vector<std::vector<float>>& a) {
  float m = 0;
  for (const auto& row : a) {
    for (float x : row) m = std::max(m, std::fabs(x));
  }
  return m;
}

// Share of positions whose argmax token agrees.
double Top1Agreement(const std::vector<std::vector<float>>& a,
                     const std::vector<std::vector<float>>& b, int64_t vocab) {
  int64_t same = 0, total = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t off = 0; off < a[i].size(); off += vocab) {
      auto ai = std::max_element(a[i].begin() + off, a[i].begin() + off + vocab) - a[i].begin();
      auto bi = std::max_element(b[i].begin() + off, b[i].begin() + off + vocab) - b[i].begin();
      same += ai == bi;
      ++total;
    }
  }
  return static_cast<double>(same) / static_cast<double>(total);
}

TEST_CASE("on CUDA, float32 logits match the Python reference and bfloat16 ones stay close",
          "[.][gpu-check][cuda]") {
  RequireCuda();
  for (Arch arch : {Arch::kQwen3, Arch::kLlama, Arch::kQwen2}) {
    DYNAMIC_SECTION("arch " << ArchName(arch)) {
      const std::string dir = SaveTiny(arch, 7);
      const int64_t vocab = TinyConfig(arch).vocab_size;
      auto ref = ReferenceLogits(dir, kSequences, vocab);
      auto f32 = LoadOn(dir, "cuda", "float32");
      for (int64_t step : {0, 1, 5}) {
        auto got = step == 0 ? f32->Logits(kSequences, /*use_cache=*/false)
                             : f32->Logits(kSequences, /*use_cache=*/true, step);
        REQUIRE(got.ok());
        const float diff = MaxAbsDiff(*got, ref);
        std::printf("%s cuda float32, %s: max |logit - reference| = %.2e\n", ArchName(arch),
                    step == 0 ? "one pass" : ("cache step " + std::to_string(step)).c_str(), diff);
        CHECK(diff < 1e-4f);
      }
      auto bf16 = LoadOn(dir, "cuda", "bfloat16");
      for (bool use_cache : {false, true}) {
        auto got = bf16->Logits(kSequences, use_cache, /*step=*/4);
        REQUIRE(got.ok());
        const float diff = MaxAbsDiff(*got, ref), scale = MaxAbs(ref);
        const double top1 = Top1Agreement(*got, ref, vocab);
        std::printf(
            "%s cuda bfloat16%s: max |logit - reference| = %.3f of max |logit| %.2f, "
            "top-1 agreement %.3f\n",
            ArchName(arch), use_cache ? " with cache" : "", diff, scale, top1);
        // Top-1 agreement is printed, not checked: random tiny models have
        // many near-ties that bfloat16 rounding flips; the bound on every
        // logit already bounds how far a flipped choice can be from the best.
        CHECK(diff < 0.05f * scale);
      }
      fs::remove_all(dir);
    }
  }
}

TEST_CASE("on CUDA, generation matches its own teacher forcing, with and without the cache",
          "[.][gpu-check][cuda]") {
  RequireCuda();
  const std::string dir = SaveTiny(Arch::kQwen3, 8);
  for (const char* dtype : {"float32", "bfloat16"}) {
    DYNAMIC_SECTION(dtype) {
      auto model = LoadOn(dir, "cuda", dtype);
      const bool exact = std::string(dtype) == "float32";
      std::vector<GenerationRequest> greedy;
      for (size_t i = 0; i < kSequences.size(); ++i)
        greedy.push_back(GreedyRequest(kSequences[i], 12));
      GenerateOptions without_cache;
      without_cache.use_cache = false;
      auto a = model->Generate(greedy);
      auto b = model->Generate(greedy, without_cache);
      REQUIRE(a.ok());
      REQUIRE(b.ok());
      int same_rows = 0;
      for (size_t i = 0; i < greedy.size(); ++i) {
        CHECK((*a)[i].token_ids.size() == 12);
        same_rows += (*a)[i].token_ids == (*b)[i].token_ids;
      }
      std::printf("cuda %s: greedy with cache == without for %d of %zu prompts\n", dtype, same_rows,
                  greedy.size());
      // bfloat16 rounds the cached and the recomputed keys differently, so a
      // near-tie may flip there; float32 must agree everywhere.
      if (exact) CHECK(same_rows == static_cast<int>(greedy.size()));

      // Sampled generation: its log-probs are what the learner's importance
      // ratio divides by, so they must equal the teacher-forced ones.
      SamplingParams nucleus;
      nucleus.top_p = 0.95;
      std::vector<GenerationRequest> sampled;
      for (size_t i = 0; i < kSequences.size(); ++i) {
        sampled.push_back(SampledRequest(kSequences[i], nucleus, 100 + i, 16));
      }
      auto gen = model->Generate(sampled);
      auto again = model->Generate(sampled);
      REQUIRE(gen.ok());
      REQUIRE(again.ok());
      std::vector<std::vector<int64_t>> full;
      for (size_t i = 0; i < sampled.size(); ++i) {
        CHECK((*gen)[i].token_ids == (*again)[i].token_ids);  // seeded: reproducible
        std::vector<int64_t> s = sampled[i].prompt;
        s.insert(s.end(), (*gen)[i].token_ids.begin(), (*gen)[i].token_ids.end());
        full.push_back(s);
      }
      auto tf = model->TokenLogProbs(full);
      REQUIRE(tf.ok());
      double worst = 0, sum = 0;
      int64_t n = 0;
      for (size_t i = 0; i < sampled.size(); ++i) {
        const size_t p = sampled[i].prompt.size();
        for (size_t t = 0; t < (*gen)[i].logprobs.size(); ++t) {
          const double d = std::fabs((*gen)[i].logprobs[t] - (*tf)[i][p - 1 + t]);
          worst = std::max(worst, d);
          sum += d;
          ++n;
        }
      }
      std::printf(
          "cuda %s: |generation log-prob - teacher-forced| max %.2e, mean %.2e over %lld tokens\n",
          dtype, worst, sum / static_cast<double>(n), static_cast<long long>(n));
      CHECK(worst < (exact ? 1e-4 : 0.1));
      CHECK(sum / static_cast<double>(n) < (exact ? 1e-5 : 0.02));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE(
    "on CUDA, the device sampler draws from the model's distribution and its greedy is the host's",
    "[.][gpu-check][cuda]") {
  RequireCuda();
  const std::string dir = SaveTiny(Arch::kQwen3, 11);
  auto model = LoadOn(dir, "cuda", "float32");
  const std::vector<int64_t> prompt = kSequences[2];
  const std::vector<float> last = NextTokenLogits(*model, prompt);
  GenerateOptions device, host;
  device.sampler = GenerateOptions::Sampler::kDevice;
  host.sampler = GenerateOptions::Sampler::kHost;
  SamplingParams plain, top_k, top_p;
  plain.temperature = 1.3;
  top_k.top_k = 6;
  top_p.temperature = 0.7;
  top_p.top_p = 0.8;
  const int n = 3000;
  for (const SamplingParams* params : {&plain, &top_k, &top_p}) {
    const std::map<int64_t, int> counts = FirstTokenCounts(*model, prompt, *params, n, device);
    int dof = 0;
    const double stat = ChiSquare(counts, TargetDistribution(last, *params), n, &dof);
    std::printf(
        "cuda device sampler, temperature %.1f, top_k %lld, top_p %.2f: chi-square %.1f on %d "
        "degrees of freedom (critical %.1f)\n",
        params->temperature, static_cast<long long>(params->top_k), params->top_p, stat, dof,
        ChiSquareCritical(dof));
    REQUIRE(dof >= 3);
    CHECK(stat < ChiSquareCritical(dof));
  }
  std::vector<GenerationRequest> greedy;
  for (const auto& p : kSequences) greedy.push_back(GreedyRequest(p, 16));
  auto on_device = model->Generate(greedy, device);
  auto on_host = model->Generate(greedy, host);
  REQUIRE(on_device.ok());
  REQUIRE(on_host.ok());
  for (size_t i = 0; i < greedy.size(); ++i) {
    CHECK((*on_device)[i].token_ids == (*on_host)[i].token_ids);
    for (size_t t = 0; t < (*on_device)[i].logprobs.size(); ++t) {
      CHECK((*on_device)[i].logprobs[t] == Approx((*on_host)[i].logprobs[t]).margin(1e-5));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("a bfloat16 CUDA model saves and loads back on CUDA and CPU", "[.][gpu-check][cuda]") {
  RequireCuda();
  const std::string dir = SaveTiny(Arch::kLlama, 9);
  auto cuda = LoadOn(dir, "cuda", "bfloat16");
  const std::string saved = dir + "/saved_bf16";
  REQUIRE(cuda->Save(saved, {}, "bfloat16", /*max_shard_bytes=*/100000).ok());
  CHECK(fs::exists(saved + "/model.safetensors.index.json"));
  auto want = cuda->Logits(kSequences, false);
  auto back = LoadOn(saved, "cuda", "bfloat16")->Logits(kSequences, false);
  REQUIRE(want.ok());
  REQUIRE(back.ok());
  CHECK(MaxAbsDiff(*want, *back) == 0.0f);
  // The same bfloat16 weights computed in float32 on the CPU.
  auto cpu = LoadOn(saved, "cpu", "float32")->Logits(kSequences, false);
  REQUIRE(cpu.ok());
  CHECK(MaxAbsDiff(*want, *cpu) < 0.05f * MaxAbs(*cpu));
  fs::remove_all(dir);
}

// The model half of the learner's bfloat16 step: gradients of the GRPO-style
// weighted log-prob sum on CUDA, chunked and checkpointed, against float32 on
// the CPU.
TEST_CASE("on CUDA, chunked and checkpointed log-prob gradients match the CPU ones",
          "[.][gpu-check][cuda]") {
  RequireCuda();
  const std::string dir = SaveTiny(Arch::kQwen3, 10);
  auto grads = [&](const std::string& device, const std::string& dtype, int64_t chunk,
                   bool checkpoint) {
    DeviceOptions d;
    d.device = device;
    d.dtype = dtype;
    d.num_threads = 2;
    auto t = Transformer::Load(dir, d);
    REQUIRE(t.ok());
    for (const auto& [name, p] : (*t)->named_parameters()) p.requires_grad_(true);
    at::Tensor ids = at::tensor(std::vector<int64_t>{5, 9,   300, 7, 7, 42, 1, 2, 3, 4,  //
                                                     8, 800, 13,  0, 0, 0,  0, 0, 0, 0},
                                at::kLong)
                         .view({2, 10});
    at::Tensor valid = ids.ne(0);
    const at::Device dev = (*t)->device();
    at::Tensor lp = (*t)->TokenLogProbs(ids.to(dev), valid.to(dev), chunk, checkpoint);
    at::Tensor w = at::linspace(-1, 2, lp.size(1)).unsqueeze(0).to(dev);
    (lp.to(at::kFloat) * w).sum().backward();
    std::map<std::string, at::Tensor> out;
    for (const auto& [name, p] : (*t)->named_parameters())
      out[name] = p.grad().to(at::kCPU, at::kFloat);
    return out;
  };
  auto cpu = grads("cpu", "float32", 0, false);
  auto cuda32 = grads("cuda", "float32", 3, true);
  auto cuda16 = grads("cuda", "bfloat16", 3, true);
  REQUIRE(cpu.size() == cuda32.size());
  double worst_cos = 1;
  for (const auto& [name, g] : cpu) {
    INFO(name);
    CHECK(at::allclose(cuda32[name], g, /*rtol=*/1e-3, /*atol=*/1e-5));
    const double cos = at::cosine_similarity(cuda16[name].view(-1), g.view(-1), 0).item<double>();
    worst_cos = std::min(worst_cos, cos);
  }
  std::printf("cuda bfloat16 gradients: lowest cosine similarity to cpu float32 = %.4f\n",
              worst_cos);
  CHECK(worst_cos > 0.98);
  fs::remove_all(dir);
}

TEST_CASE("Hugging Face transformers loads our directories unchanged and computes the same logits",
          "[.][gpu-check][transformers]") {
  for (Arch arch : {Arch::kQwen3, Arch::kLlama, Arch::kQwen2}) {
    DYNAMIC_SECTION("arch " << ArchName(arch)) {
      RuntimeOptions ro;
      ro.num_threads = 2;
      auto model = Model::CreateRandom(TinyConfig(arch), 12, ro, /*perturb=*/0.3);
      REQUIRE(model.ok());
      const std::string dir = MakeTempDir("model_transformers");
      // Sharded bfloat16, as a trained checkpoint is published.
      REQUIRE((*model)->Save(dir, {}, "bfloat16", /*max_shard_bytes=*/100000).ok());
      auto ours = LoadOn(dir, "cpu", "float32")->Logits(kSequences, false);
      REQUIRE(ours.ok());
      auto theirs = ReferenceLogits(dir, kSequences, TinyConfig(arch).vocab_size,
                                    "transformers_reference.py");
      const float diff = MaxAbsDiff(*ours, theirs);
      std::printf("%s: max |logit - transformers| = %.2e\n", ArchName(arch), diff);
      CHECK(diff < 1e-4f);
      fs::remove_all(dir);
    }
  }
}

}  // namespace
}  // namespace cascade::model
