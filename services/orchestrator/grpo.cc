#include "services/orchestrator/grpo.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace cascade::orchestrator {
namespace {

constexpr double kPi = 3.14159265358979323846;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

void MeanStd(const std::vector<double>& values, double* mean, double* std) {
  *mean = 0.0;
  *std = 0.0;
  if (values.empty()) return;
  for (double v : values) *mean += v;
  *mean /= static_cast<double>(values.size());
  double var = 0.0;
  for (double v : values) var += (v - *mean) * (v - *mean);
  *std = std::sqrt(var / static_cast<double>(values.size()));
}

std::vector<double> GroupAdvantages(const std::vector<double>& rewards, double eps) {
  double mean, std;
  MeanStd(rewards, &mean, &std);
  std::vector<double> advantages;
  advantages.reserve(rewards.size());
  for (double r : rewards) advantages.push_back((r - mean) / (std + eps));
  return advantages;
}

bool HasRewardVariance(const std::vector<double>& rewards) {
  for (double r : rewards) {
    if (r != rewards.front()) return true;
  }
  return false;
}

std::vector<double> IfPlusRmRewards(const std::vector<double>& if_rewards,
                                    const std::vector<double>& rm_scores) {
  double mean, std;
  MeanStd(rm_scores, &mean, &std);
  std::vector<double> rewards;
  for (size_t i = 0; i < if_rewards.size(); ++i) {
    const double normalized = std > 0 ? (rm_scores[i] - mean) / std : 0.0;
    rewards.push_back(if_rewards[i] >= 1.0 ? 1.0 + 1.0 / (1.0 + std::exp(-normalized)) : 0.0);
  }
  return rewards;
}

double StageLearningRate(const StageConfig& stage, int64_t step, int64_t total_steps) {
  const double peak = stage.learning_rate;
  if (stage.lr_schedule == LrScheduleKind::kConstant) return peak;
  if (step < stage.warmup_steps) {
    return peak * static_cast<double>(step + 1) / static_cast<double>(stage.warmup_steps + 1);
  }
  if (stage.lr_schedule == LrScheduleKind::kLinearWarmup) return peak;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - stage.warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - stage.warmup_steps) / static_cast<double>(decay_steps));
  const double floor = stage.min_lr_ratio * peak;
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(kPi * progress));
}

int64_t StageTotalSteps(const StageConfig& stage, int64_t examples) {
  if (stage.steps > 0) return stage.steps;
  const int64_t prompts = stage.epochs * examples;
  return std::max<int64_t>(1, (prompts + stage.batch_prompts - 1) / stage.batch_prompts);
}

uint64_t MixSeed(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x243F6A8885A308D3ULL;
  for (uint64_t part : parts) h = SplitMix64(h ^ SplitMix64(part));
  return h;
}

PromptSampler::PromptSampler(int64_t examples, uint64_t seed) : examples_(examples), seed_(seed) {}

std::vector<int64_t> PromptSampler::Permutation(int64_t epoch) const {
  std::vector<int64_t> order(examples_);
  std::iota(order.begin(), order.end(), 0);
  // Fisher-Yates with our own generator: std::shuffle's algorithm is not
  // specified, and a resumed job must draw the same order on any build.
  std::mt19937_64 rng(MixSeed({seed_, 0x5045524DULL, static_cast<uint64_t>(epoch)}));
  for (int64_t i = examples_ - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

int64_t PromptSampler::EpochOf(int64_t step, int64_t batch) const {
  return examples_ == 0 ? 0 : step * batch / examples_;
}

std::vector<int64_t> PromptSampler::MainBatch(int64_t step, int64_t batch,
                                              const std::set<int64_t>& retired) const {
  std::vector<int64_t> out;
  if (examples_ == 0) return out;
  int64_t cached_epoch = -1;
  std::vector<int64_t> order;
  for (int64_t position = step * batch; position < (step + 1) * batch; ++position) {
    const int64_t epoch = position / examples_;
    if (epoch != cached_epoch) {
      order = Permutation(epoch);
      cached_epoch = epoch;
    }
    const int64_t index = order[position % examples_];
    if (retired.count(index) == 0) out.push_back(index);
  }
  return out;
}

std::vector<int64_t> PromptSampler::Refill(int64_t step, int64_t round, int64_t count,
                                           const std::set<int64_t>& exclude,
                                           const std::set<int64_t>& retired) const {
  std::vector<int64_t> candidates;
  for (int64_t i = 0; i < examples_; ++i) {
    if (exclude.count(i) == 0 && retired.count(i) == 0) candidates.push_back(i);
  }
  std::mt19937_64 rng(MixSeed({seed_, 0x52454649ULL, static_cast<uint64_t>(step),
                               static_cast<uint64_t>(round)}));
  std::vector<int64_t> out;
  for (int64_t k = 0; k < count && !candidates.empty(); ++k) {
    const size_t j = static_cast<size_t>(rng() % candidates.size());
    out.push_back(candidates[j]);
    candidates[j] = candidates.back();
    candidates.pop_back();
  }
  return out;
}

}  // namespace cascade::orchestrator
