#include "services/orchestrator/grpo.h"

#include <cmath>
#include <set>

#include <catch2/catch.hpp>

namespace cascade::orchestrator {
namespace {

TEST_CASE("group advantages are rewards standardised within the group") {
  const std::vector<double> a = GroupAdvantages({1.0, 0.0, 0.0, 1.0});
  // mean 0.5, population std 0.5
  REQUIRE(a.size() == 4);
  CHECK(a[0] == Approx(1.0).epsilon(1e-5));
  CHECK(a[1] == Approx(-1.0).epsilon(1e-5));
  double sum = 0;
  for (double v : a) sum += v;
  CHECK(std::abs(sum) < 1e-9);
  const std::vector<double> flat = GroupAdvantages({0.3, 0.3, 0.3});
  for (double v : flat) CHECK(v == 0.0);
}

TEST_CASE("dynamic filtering keeps only groups whose rewards differ") {
  CHECK_FALSE(HasRewardVariance({1, 1, 1, 1}));
  CHECK_FALSE(HasRewardVariance({0, 0}));
  CHECK(HasRewardVariance({0, 0, 1}));
}

TEST_CASE("IF+RM rewards add the sigmoid of the group-normalised RM score only where IF passed") {
  const std::vector<double> r = IfPlusRmRewards({1, 1, 0, 1}, {2.0, 0.0, 5.0, 1.0});
  // RM over the group: mean 2, std sqrt(3.5); normalised 0, -1.069, 1.604, -0.535
  const double std = std::sqrt(3.5);
  CHECK(r[0] == Approx(1.5));
  CHECK(r[1] == Approx(1.0 + 1.0 / (1.0 + std::exp(2.0 / std))));
  CHECK(r[2] == 0.0);
  CHECK(r[3] == Approx(1.0 + 1.0 / (1.0 + std::exp(1.0 / std))));
  CHECK(r[1] < r[3]);
}

TEST_CASE("learning-rate schedules warm up and decay as configured") {
  StageConfig stage;
  stage.learning_rate = 1.0;
  CHECK(StageLearningRate(stage, 7, 10) == 1.0);
  stage.lr_schedule = LrScheduleKind::kCosine;
  stage.warmup_steps = 1;
  stage.min_lr_ratio = 0.1;
  CHECK(StageLearningRate(stage, 0, 11) == Approx(0.5));
  CHECK(StageLearningRate(stage, 1, 11) == Approx(1.0));
  CHECK(StageLearningRate(stage, 11, 11) == Approx(0.1));
  CHECK(StageLearningRate(stage, 6, 11) == Approx(0.55));
}

TEST_CASE("epochs become steps over the dataset") {
  StageConfig stage;
  stage.batch_prompts = 8;
  stage.epochs = 2;
  CHECK(StageTotalSteps(stage, 20) == 5);
  stage.steps = 3;
  CHECK(StageTotalSteps(stage, 20) == 3);
}

TEST_CASE("the prompt sampler visits every prompt once per epoch, reproducibly") {
  PromptSampler sampler(10, 42);
  std::multiset<int64_t> epoch0;
  for (int step = 0; step < 5; ++step) {
    for (int64_t i : sampler.MainBatch(step, 2, {})) epoch0.insert(i);
  }
  CHECK(epoch0.size() == 10);
  CHECK(std::set<int64_t>(epoch0.begin(), epoch0.end()).size() == 10);
  PromptSampler again(10, 42);
  CHECK(sampler.MainBatch(7, 3, {}) == again.MainBatch(7, 3, {}));
  PromptSampler other(10, 43);
  bool differs = false;
  for (int step = 0; step < 5; ++step) differs |= sampler.MainBatch(step, 2, {}) != other.MainBatch(step, 2, {});
  CHECK(differs);
  // Retired prompts are skipped; refills avoid what the step already has.
  const std::vector<int64_t> main = sampler.MainBatch(0, 4, {});
  const std::vector<int64_t> without = sampler.MainBatch(0, 4, {main[0]});
  CHECK(without.size() == 3);
  const std::set<int64_t> exclude(main.begin(), main.end());
  const std::vector<int64_t> refill = sampler.Refill(0, 1, 3, exclude, {});
  CHECK(refill.size() == 3);
  for (int64_t i : refill) CHECK(exclude.count(i) == 0);
  CHECK(sampler.Refill(0, 1, 100, exclude, {}).size() == 6);
  CHECK(sampler.EpochOf(4, 2) == 0);
  CHECK(sampler.EpochOf(5, 2) == 1);
}

TEST_CASE("mixed seeds depend on every part") {
  CHECK(MixSeed({1, 2, 3}) == MixSeed({1, 2, 3}));
  CHECK(MixSeed({1, 2, 3}) != MixSeed({1, 3, 2}));
  CHECK(MixSeed({0}) != MixSeed({0, 0}));
}

}  // namespace
}  // namespace cascade::orchestrator
