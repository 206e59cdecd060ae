#include "model/runtime.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <thread>

#include "model/json.h"
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

std::unique_ptr<Model> TinyModel(Arch arch, uint64_t seed = 7) {
  RuntimeOptions ro;
  ro.num_threads = 2;
  auto m = Model::CreateRandom(TinyConfig(arch), seed, ro, /*perturb=*/0.3);
  REQUIRE(m.ok());
  return std::move(*m);
}

TEST_CASE("logits match the independent PyTorch reference with and without the KV cache",
          "[model][reference]") {
  for (Arch arch : {Arch::kQwen3, Arch::kLlama, Arch::kQwen2}) {
    DYNAMIC_SECTION("arch " << ArchName(arch)) {
      auto model = TinyModel(arch);
      const std::string dir = MakeTempDir("model_ref");
      REQUIRE(model->Save(dir).ok());
      auto ref = ReferenceLogits(dir, kSequences, model->config().vocab_size);

      // Batch of 3 left-padded sequences, one full pass.
      auto full = model->Logits(kSequences, /*use_cache=*/false);
      REQUIRE(full.ok());
      CHECK(MaxAbsDiff(*full, ref) < 1e-4f);
      // Token by token through the KV cache, and in uneven prefill chunks.
      auto step1 = model->Logits(kSequences, /*use_cache=*/true, /*step=*/1);
      REQUIRE(step1.ok());
      CHECK(MaxAbsDiff(*step1, ref) < 1e-4f);
      auto step5 = model->Logits(kSequences, /*use_cache=*/true, /*step=*/5);
      REQUIRE(step5.ok());
      CHECK(MaxAbsDiff(*step5, ref) < 1e-4f);
      // The logits are not trivially close: different rows differ a lot.
      float spread = 0;
      for (size_t j = 0; j < 1000; ++j) spread = std::max(spread, std::fabs(ref[0][j] - ref[0][1000 + j]));
      CHECK(spread > 0.1f);
      fs::remove_all(dir);
    }
  }
}

TEST_CASE("greedy generation with the cache equals generation without it", "[model][generate]") {
  for (Arch arch : {Arch::kQwen3, Arch::kLlama}) {
    auto model = TinyModel(arch);
    std::vector<GenerationRequest> reqs;
    for (size_t i = 0; i < kSequences.size(); ++i) {
      reqs.push_back(GreedyRequest(kSequences[i], 6 + static_cast<int64_t>(i) * 3));
    }
    GenerateOptions with_cache, without_cache;
    without_cache.use_cache = false;
    auto a = model->Generate(reqs, with_cache);
    auto b = model->Generate(reqs, without_cache);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    for (size_t i = 0; i < reqs.size(); ++i) {
      CHECK((*a)[i].token_ids == (*b)[i].token_ids);
      CHECK((*a)[i].token_ids.size() == static_cast<size_t>(reqs[i].params.max_new_tokens));
      CHECK((*a)[i].finish_reason == FinishReason::kLength);
      for (size_t t = 0; t < (*a)[i].logprobs.size(); ++t) {
        CHECK((*a)[i].logprobs[t] == Approx((*b)[i].logprobs[t]).margin(1e-4));
      }
    }
    // Each prompt alone gives the same tokens as in the padded batch.
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto alone = model->Generate({reqs[i]});
      REQUIRE(alone.ok());
      CHECK((*alone)[0].token_ids == (*a)[i].token_ids);
    }
  }
}

TEST_CASE("generation log-probs equal the teacher-forced log-probs of the same sequence",
          "[model][generate]") {
  auto model = TinyModel(Arch::kQwen3);
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < kSequences.size(); ++i) {
    GenerationRequest r;
    r.prompt = kSequences[i];
    r.params.temperature = 1.0;
    r.params.top_p = 0.9;
    r.params.seed = 100 + i;
    r.params.max_new_tokens = 8;
    reqs.push_back(r);
  }
  auto gen = model->Generate(reqs);
  REQUIRE(gen.ok());
  std::vector<std::vector<int64_t>> full;
  for (size_t i = 0; i < reqs.size(); ++i) {
    std::vector<int64_t> s = reqs[i].prompt;
    s.insert(s.end(), (*gen)[i].token_ids.begin(), (*gen)[i].token_ids.end());
    full.push_back(s);
  }
  for (int64_t chunk : {0, 3, 512}) {
    LogProbOptions lo;
    lo.chunk_size = chunk;
    auto tf = model->TokenLogProbs(full, lo);
    REQUIRE(tf.ok());
    for (size_t i = 0; i < reqs.size(); ++i) {
      const size_t p = reqs[i].prompt.size();
      REQUIRE((*tf)[i].size() == full[i].size() - 1);
      for (size_t t = 0; t < (*gen)[i].logprobs.size(); ++t) {
        CHECK((*gen)[i].logprobs[t] == Approx((*tf)[i][p - 1 + t]).margin(1e-4));
        CHECK((*gen)[i].logprobs[t] <= 0.0f);
      }
    }
  }
}

TEST_CASE("seeded sampling is reproducible and independent of the batch", "[model][generate]") {
  auto model = TinyModel(Arch::kLlama);
  SamplingParams params;
  params.temperature = 1.3;
  params.top_k = 50;
  params.top_p = 0.95;
  auto request = [&](uint64_t seed, std::vector<int64_t> prompt) {
    return SampledRequest(std::move(prompt), params, seed, 12);
  };
  auto a = model->Generate({request(1, kSequences[0]), request(2, kSequences[1])});
  auto b = model->Generate({request(1, kSequences[0]), request(2, kSequences[1])});
  auto alone = model->Generate({request(2, kSequences[1])});
  auto other_seed = model->Generate({request(3, kSequences[1])});
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(alone.ok());
  REQUIRE(other_seed.ok());
  CHECK((*a)[0].token_ids == (*b)[0].token_ids);
  CHECK((*a)[1].token_ids == (*b)[1].token_ids);
  CHECK((*alone)[0].token_ids == (*a)[1].token_ids);
  CHECK((*other_seed)[0].token_ids != (*a)[1].token_ids);
}

TEST_CASE("sequences that join a running batch generate what they generate alone",
          "[model][generate][continuous]") {
  for (Arch arch : {Arch::kQwen3, Arch::kLlama}) {
    auto model = TinyModel(arch);
    auto request = [](std::vector<int64_t> prompt, int64_t max_new, double temperature,
                      uint64_t seed) {
      GenerationRequest r;
      r.prompt = std::move(prompt);
      r.params.temperature = temperature;
      r.params.top_k = 40;
      r.params.seed = seed;
      r.params.max_new_tokens = max_new;
      r.params.ignore_eos = true;
      return r;
    };
    std::vector<int64_t> long_prompt;
    for (int64_t t = 0; t < 30; ++t) long_prompt.push_back(400 + 3 * t);
    // id -> request; joins after `join_step` steps.
    struct Joiner {
      uint64_t id;
      int join_step;
      GenerationRequest request;
    };
    const std::vector<Joiner> joiners = {
        {10, 0, request(kSequences[0], 20, 0.0, 0)},
        {11, 3, request(kSequences[1], 6, 1.0, 5)},
        {12, 3, request(kSequences[2], 9, 0.0, 0)},
        // Longer than every cached row: the cache grows columns on the left.
        {13, 5, request(long_prompt, 7, 1.0, 9)},
        {14, 5, request({77}, 25, 0.0, 0)},
        {15, 6, request(kSequences[2], 12, 1.0, 11)},  // removed while running
    };
    std::unique_ptr<GenerationBatch> batch = model->NewBatch();
    std::map<uint64_t, GenerationResult> finished;
    for (int step = 0; step < 60; ++step) {
      for (const Joiner& j : joiners) {
        if (j.join_step == step) REQUIRE(batch->Add({j.id}, {j.request}).ok());
      }
      if (step == 9) batch->Remove(15);
      if (step > 6 && batch->size() == 0) break;
      auto done = batch->Step();
      REQUIRE(done.ok());
      for (FinishedSequence& f : *done) {
        CHECK(finished.count(f.id) == 0);
        finished[f.id] = std::move(f.result);
      }
    }
    CHECK(batch->size() == 0);
    CHECK(finished.count(15) == 0);
    for (const Joiner& j : joiners) {
      if (j.id == 15) continue;
      INFO("sequence " << j.id);
      REQUIRE(finished.count(j.id) == 1);
      auto alone = model->Generate({j.request});
      REQUIRE(alone.ok());
      const GenerationResult& got = finished[j.id];
      CHECK(got.token_ids == (*alone)[0].token_ids);
      CHECK(got.token_ids.size() == static_cast<size_t>(j.request.params.max_new_tokens));
      CHECK(got.finish_reason == FinishReason::kLength);
      REQUIRE(got.logprobs.size() == (*alone)[0].logprobs.size());
      for (size_t t = 0; t < got.logprobs.size(); ++t) {
        CHECK(got.logprobs[t] == Approx((*alone)[0].logprobs[t]).margin(1e-4));
      }
    }
  }
}

TEST_CASE("a continuous batch drops cache columns no live sequence uses", "[model][generate][continuous]") {
  auto model = TinyModel(Arch::kQwen3);
  GenerationRequest long_short, short_long;
  for (int64_t t = 0; t < 30; ++t) long_short.prompt.push_back(500 + t);
  long_short.params.temperature = 0;
  long_short.params.max_new_tokens = 2;
  long_short.params.ignore_eos = true;
  short_long.prompt = {3, 4};
  short_long.params.temperature = 0;
  short_long.params.max_new_tokens = 10;
  short_long.params.ignore_eos = true;
  auto batch = model->NewBatch();
  REQUIRE(batch->Add({1, 2}, {long_short, short_long}).ok());
  CHECK(batch->cache_columns() == 30);
  REQUIRE(batch->Step().ok());
  CHECK(batch->cache_columns() == 31);
  auto done = batch->Step();
  REQUIRE(done.ok());
  REQUIRE(done->size() == 1);
  CHECK((*done)[0].id == 1);
  // The short sequence uses its 2 prompt columns and 2 generated ones; the 28
  // columns only the long prompt used are gone.
  CHECK(batch->cache_columns() == 4);
  CHECK(batch->size() == 1);

  SECTION("a bad request or a repeated id adds nothing") {
    GenerationRequest bad = short_long;
    bad.prompt = {model->config().vocab_size};
    CHECK(batch->Add({3}, {bad}).code() == StatusCode::kInvalidArgument);
    CHECK(batch->Add({2}, {short_long}).code() == StatusCode::kInvalidArgument);
    CHECK(batch->Add({3, 4}, {short_long}).code() == StatusCode::kInvalidArgument);
    CHECK(batch->size() == 1);
    CHECK(batch->cache_columns() == 4);
  }
}

TEST_CASE("generation stops at a stop token and reports the finish reason", "[model][generate]") {
  auto model = TinyModel(Arch::kQwen3);
  GenerationRequest r = GreedyRequest(kSequences[2], 10);
  auto free_run = model->Generate({r});
  REQUIRE(free_run.ok());
  const auto& toks = (*free_run)[0].token_ids;
  REQUIRE(toks.size() == 10);
  // Make the third generated token a stop token.
  r.params.stop_token_ids = {toks[2]};
  auto stopped = model->Generate({r});
  REQUIRE(stopped.ok());
  const size_t first = std::find(toks.begin(), toks.end(), toks[2]) - toks.begin();
  CHECK((*stopped)[0].token_ids == std::vector<int64_t>(toks.begin(), toks.begin() + first + 1));
  CHECK((*stopped)[0].finish_reason == FinishReason::kStop);
  CHECK(std::string(FinishReasonName((*stopped)[0].finish_reason)) == "stop");
}

TEST_CASE("init, save, load gives identical outputs in f32 and close ones in bf16", "[model][roundtrip]") {
  auto model = TinyModel(Arch::kLlama, 11);
  const std::string dir = MakeTempDir("model_roundtrip");
  REQUIRE(model->Save(dir).ok());
  CHECK(fs::exists(dir + "/config.json"));
  CHECK(fs::exists(dir + "/generation_config.json"));
  auto loaded = Model::Load(dir);
  REQUIRE(loaded.ok());
  auto a = model->Logits(kSequences, false);
  auto b = (*loaded)->Logits(kSequences, false);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(MaxAbsDiff(*a, *b) == 0.0f);

  // Sharded bf16 save, loaded back into f32.
  const std::string dir16 = dir + "/bf16";
  REQUIRE(model->Save(dir16, {}, "bfloat16", /*max_shard_bytes=*/100000).ok());
  CHECK(fs::exists(dir16 + "/model.safetensors.index.json"));
  auto l16 = Model::Load(dir16);
  REQUIRE(l16.ok());
  CHECK((*l16)->config().torch_dtype == "bfloat16");
  auto c = (*l16)->Logits(kSequences, false);
  REQUIRE(c.ok());
  const float diff = MaxAbsDiff(*a, *c);
  CHECK(diff > 0.0f);
  CHECK(diff < 0.2f);
  fs::remove_all(dir);
}

TEST_CASE("loading a corrupt or mismatched model directory fails clearly", "[model][roundtrip]") {
  auto model = TinyModel(Arch::kQwen3);
  const std::string dir = MakeTempDir("model_corrupt");
  REQUIRE(model->Save(dir).ok());
  const std::string weights = dir + "/model.safetensors";
  const std::string good = *ReadFileToString(weights);

  REQUIRE(WriteStringToFile(weights, good.substr(0, good.size() / 2)).ok());
  auto truncated = Model::Load(dir);
  REQUIRE_FALSE(truncated.ok());
  CHECK(truncated.status().message().find("model.safetensors") != std::string::npos);
  CHECK(truncated.status().message().find("truncated") != std::string::npos);

  // Weights of a different shape than config.json describes.
  REQUIRE(WriteStringToFile(weights, good).ok());
  Json config = *Json::Parse(*ReadFileToString(dir + "/config.json"));
  config["intermediate_size"] = 96;
  REQUIRE(WriteStringToFile(dir + "/config.json", config.Dump()).ok());
  auto mismatched = Model::Load(dir);
  REQUIRE_FALSE(mismatched.ok());
  INFO(mismatched.status().message());
  CHECK(mismatched.status().message().find("model.layers.0.mlp.gate_proj.weight\": shape [128, 64], config.json implies [96, 64]") != std::string::npos);

  config["intermediate_size"] = 128;
  config["rope_scaling"] = *Json::Parse(R"({"rope_type": "dynamic", "factor": 2.0})");
  REQUIRE(WriteStringToFile(dir + "/config.json", config.Dump()).ok());
  auto refused = Model::Load(dir);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("rope_scaling") != std::string::npos);

  fs::remove(dir + "/config.json");
  CHECK(Model::Load(dir).status().code() == StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST_CASE("requests with out-of-vocabulary ids or bad parameters are refused", "[model][generate]") {
  auto model = TinyModel(Arch::kQwen3);
  GenerationRequest r;
  r.prompt = {1, 2, 1000};
  auto bad_id = model->Generate({r});
  REQUIRE_FALSE(bad_id.ok());
  CHECK(bad_id.status().message().find("requests[0].prompt[2]") != std::string::npos);
  r.prompt = {1, 2};
  r.params.top_p = 0;
  CHECK(model->Generate({r}).status().message().find("top_p") != std::string::npos);
  CHECK_FALSE(model->TokenLogProbs({{5}}).ok());
}


TEST_CASE("two models computing in two threads give what each gives alone",
          "[model][threads]") {
  // The CPU BLAS under libtorch is not reentrant; without CpuComputeLock
  // about 5% of these scores come out wrong.
  auto scorer = TinyModel(Arch::kQwen2, 3);
  auto generator = TinyModel(Arch::kQwen3, 4);
  const std::vector<std::vector<int64_t>> sequences = {kSequences[0], kSequences[2]};
  auto want = scorer->TokenLogProbs(sequences);
  REQUIRE(want.ok());
  const GenerationRequest request = GreedyRequest(kSequences[1], 40);
  auto want_generated = generator->Generate({request});
  REQUIRE(want_generated.ok());

  std::atomic<bool> stop{false};
  std::atomic<int> generations{0}, wrong_generations{0};
  std::thread busy([&] {
    while (!stop) {
      auto got = generator->Generate({request});
      if (!got.ok() || (*got)[0].token_ids != (*want_generated)[0].token_ids) ++wrong_generations;
      ++generations;
    }
  });
  int wrong_scores = 0;
  for (int i = 0; i < 200 || generations < 3; ++i) {
    auto got = scorer->TokenLogProbs(sequences);
    REQUIRE(got.ok());
    if (MaxAbsDiff(*got, *want) > 1e-5) ++wrong_scores;
  }
  stop = true;
  busy.join();
  CHECK(wrong_scores == 0);
  CHECK(wrong_generations == 0);
  CHECK(generations >= 3);
}

// ---- Samplers: SampleToken on the host, the batched inverse CDF on the device. ----

TEST_CASE("both samplers draw from the model's distribution under temperature, top-k and top-p",
          "[model][generate][sampler]") {
  auto model = TinyModel(Arch::kQwen3);
  const std::vector<int64_t> prompt = kSequences[2];
  const std::vector<float> last = NextTokenLogits(*model, prompt);

  SamplingParams plain, top_k, top_p;
  plain.temperature = 1.3;
  top_k.temperature = 1.0;
  top_k.top_k = 6;
  top_p.temperature = 0.7;
  top_p.top_p = 0.8;
  const int n = 3000;
  for (auto sampler : {GenerateOptions::Sampler::kHost, GenerateOptions::Sampler::kDevice}) {
    const bool device = sampler == GenerateOptions::Sampler::kDevice;
    GenerateOptions options;
    options.sampler = sampler;
    for (const SamplingParams* params : {&plain, &top_k, &top_p}) {
      const std::map<int64_t, int> counts = FirstTokenCounts(*model, prompt, *params, n, options);
      const std::vector<double> want = TargetDistribution(last, *params);
      const int support =
          static_cast<int>(std::count_if(want.begin(), want.end(), [](double q) { return q > 0; }));
      int dof = 0;
      const double stat = ChiSquare(counts, want, n, &dof);
      INFO((device ? "device" : "host")
           << " sampler, temperature " << params->temperature << ", top_k " << params->top_k
           << ", top_p " << params->top_p << ": chi-square " << stat << " on " << dof
           << " degrees of freedom, support " << support << ", " << counts.size()
           << " distinct tokens drawn");
      REQUIRE(dof >= 3);
      CHECK(stat < ChiSquareCritical(dof));
      if (params == &top_k) CHECK(support == 6);
      if (params == &top_p) CHECK(support < 100);

      // The check has power: the same draws against the distribution without
      // the temperature (or the cuts) are rejected.
      SamplingParams other = *params;
      other.temperature = params->temperature == 1.0 ? 1.6 : 1.0;
      other.top_k = 0;
      other.top_p = 1.0;
      int other_dof = 0;
      CHECK(ChiSquare(counts, TargetDistribution(last, other), n, &other_dof) >
            ChiSquareCritical(std::max(other_dof, 1)));
    }
  }
}

TEST_CASE(
    "the device sampler is reproducible per seed, independent of the batch, and returns "
    "teacher-forced log-probs",
    "[model][generate][sampler]") {
  auto model = TinyModel(Arch::kLlama);
  GenerateOptions device, host;
  device.sampler = GenerateOptions::Sampler::kDevice;
  host.sampler = GenerateOptions::Sampler::kHost;
  SamplingParams params;
  params.temperature = 1.1;
  params.top_k = 50;
  params.top_p = 0.95;
  auto request = [&](uint64_t seed, std::vector<int64_t> prompt) {
    return SampledRequest(std::move(prompt), params, seed, 12);
  };
  const std::vector<GenerationRequest> both = {request(1, kSequences[0]), request(2, kSequences[1]),
                                               GreedyRequest(kSequences[2], 12)};
  auto a = model->Generate(both, device);
  auto b = model->Generate(both, device);
  auto alone = model->Generate({both[1]}, device);
  auto other_seed = model->Generate({request(3, kSequences[1])}, device);
  auto greedy_host = model->Generate({both[2]}, host);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(alone.ok());
  REQUIRE(other_seed.ok());
  REQUIRE(greedy_host.ok());
  CHECK((*a)[0].token_ids == (*b)[0].token_ids);
  CHECK((*a)[1].token_ids == (*b)[1].token_ids);
  CHECK((*alone)[0].token_ids == (*a)[1].token_ids);
  CHECK((*other_seed)[0].token_ids != (*a)[1].token_ids);
  // Greedy is the argmax on either side.
  CHECK((*a)[2].token_ids == (*greedy_host)[0].token_ids);
  // Without the cache, the device sampler follows the same greedy path.
  GenerateOptions device_no_cache = device;
  device_no_cache.use_cache = false;
  auto recomputed = model->Generate({both[2]}, device_no_cache);
  REQUIRE(recomputed.ok());
  CHECK((*recomputed)[0].token_ids == (*a)[2].token_ids);

  std::vector<std::vector<int64_t>> full;
  for (size_t i = 0; i < both.size(); ++i) {
    std::vector<int64_t> s = both[i].prompt;
    s.insert(s.end(), (*a)[i].token_ids.begin(), (*a)[i].token_ids.end());
    full.push_back(s);
  }
  // Rows drawn in chunks (as a large batch is, to bound the temporaries)
  // come out exactly as drawn all together.
  for (int64_t chunk_rows : {1, 2}) {
    GenerateOptions chunked = device;
    chunked.sampler_chunk_rows = chunk_rows;
    auto c = model->Generate(both, chunked);
    REQUIRE(c.ok());
    for (size_t i = 0; i < both.size(); ++i) {
      CHECK((*c)[i].token_ids == (*a)[i].token_ids);
      CHECK((*c)[i].logprobs == (*a)[i].logprobs);
    }
  }
  // A temperature too small for a float is greedy, not a division by zero.
  GenerationRequest cold = both[2];
  cold.params.temperature = 1e-40;
  cold.params.seed = 5;
  auto frozen = model->Generate({cold}, device);
  REQUIRE(frozen.ok());
  CHECK((*frozen)[0].token_ids == (*a)[2].token_ids);

  auto tf = model->TokenLogProbs(full);
  REQUIRE(tf.ok());
  for (size_t i = 0; i < both.size(); ++i) {
    const size_t p = both[i].prompt.size();
    REQUIRE((*a)[i].logprobs.size() == 12);
    for (size_t t = 0; t < 12; ++t) {
      CHECK((*a)[i].logprobs[t] == Approx((*tf)[i][p - 1 + t]).margin(1e-4));
    }
  }
}
TEST_CASE("logits that are not finite fail generation on either sampler instead of drawing a token",
          "[model][generate][sampler]") {
  auto model = TinyModel(Arch::kQwen3);
  {
    c10::NoGradGuard no_grad;
    model->transformer()->named_parameters().at("model.norm.weight").fill_(NAN);
  }
  for (auto sampler : {GenerateOptions::Sampler::kHost, GenerateOptions::Sampler::kDevice}) {
    GenerateOptions options;
    options.sampler = sampler;
    GenerationRequest sampled = GreedyRequest(kSequences[0], 3);
    sampled.params.temperature = 1.0;
    for (const GenerationRequest& r : {GreedyRequest(kSequences[0], 3), sampled}) {
      auto got = model->Generate({r}, options);
      REQUIRE_FALSE(got.ok());
      CHECK(got.status().code() == StatusCode::kInternal);
      CHECK_THAT(got.status().message(), Catch::Contains("not finite"));
    }
  }
}

}  // namespace
}  // namespace cascade::model
