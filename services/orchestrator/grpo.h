// The orchestrator's share of GRPO (DESIGN.md §1), without I/O: group
// advantages, dynamic filtering, reward composition for IF-RL, the stage's
// learning-rate schedule and deterministic prompt sampling.
//
// Thread-safety: pure functions; PromptSampler is immutable after construction.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_GRPO_H_
#define CASCADE_SERVICES_ORCHESTRATOR_GRPO_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "services/orchestrator/cascade_config.h"

namespace cascade::orchestrator {

// Mean and population standard deviation (both 0 for no values).
void MeanStd(const std::vector<double>& values, double* mean, double* std);

// A_i = (r_i - mean(r)) / (std(r) + eps), std over the group (population).
std::vector<double> GroupAdvantages(const std::vector<double>& rewards, double eps = 1e-6);

// False when every reward of the group is equal: zero advantages, no gradient;
// dynamic filtering drops such groups.
bool HasRewardVariance(const std::vector<double>& rewards);

// IF-RL for thinking models: r_i = R_IF(o_i) + sigmoid(R̂_RM(o_i)) where
// R_IF(o_i) = 1, else 0; R̂_RM is the RM score normalised within the group
// (mean subtracted, divided by std; 0 when the group's scores are equal).
std::vector<double> IfPlusRmRewards(const std::vector<double>& if_rewards,
                                    const std::vector<double>& rm_scores);

// The learning rate of `step` (0-based) of a stage with `total_steps` steps.
double StageLearningRate(const StageConfig& stage, int64_t step, int64_t total_steps);

// Steps of a stage: `steps`, or enough for `epochs` passes over `examples`.
int64_t StageTotalSteps(const StageConfig& stage, int64_t examples);

// A 64-bit seed mixed from its parts (splitmix64), so every random choice of
// a job is a function of (job seed, stage, step, round) and a resumed job
// draws exactly what the interrupted one drew.
uint64_t MixSeed(std::initializer_list<uint64_t> parts);

// Which prompts a step trains on. The main batch walks a per-epoch
// permutation of the dataset in order (every prompt once per epoch); refill
// rounds draw extra prompts at random from a stream of their own. Retired
// prompts are skipped.
class PromptSampler {
 public:
  PromptSampler(int64_t examples, uint64_t seed);

  // Indices for the main batch of `step`: positions [step * batch, +batch)
  // of the epoch permutations, minus retired ones (so possibly fewer).
  std::vector<int64_t> MainBatch(int64_t step, int64_t batch,
                                 const std::set<int64_t>& retired) const;
  // `count` distinct random indices not in `exclude` nor retired (fewer when
  // the dataset runs out).
  std::vector<int64_t> Refill(int64_t step, int64_t round, int64_t count,
                              const std::set<int64_t>& exclude,
                              const std::set<int64_t>& retired) const;
  // The epoch `step`'s main batch starts in.
  int64_t EpochOf(int64_t step, int64_t batch) const;

 private:
  std::vector<int64_t> Permutation(int64_t epoch) const;
  int64_t examples_;
  uint64_t seed_;
};

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_GRPO_H_
