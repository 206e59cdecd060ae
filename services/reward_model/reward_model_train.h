// Bradley–Terry training of a reward model, the `reward_model train` command:
//
//   reward_model train --pairs PAIRS.jsonl --model DIR --out DIR
//                      [--epochs N] [--lr X] [--batch N] [--holdout F] [--seed S]
//
// DIR is a reward-model checkpoint or a causal LM (e.g. from `learner
// init`), which gets a fresh scalar head. A `holdout` fraction of the pairs
// (shuffled by `seed`) is kept out of training; after each epoch one JSON
// line goes to stdout:
//   {"epoch": 1, "train_loss": .., "train_accuracy": .., "heldout_loss": ..,
//    "heldout_accuracy": .., "heldout_pairs": n}
// and the model is written to --out in Hugging Face sequence-classification
// format with the tokenizer files of DIR.
#ifndef CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_TRAIN_H_
#define CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_TRAIN_H_

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/reward_model/reward_net.h"

namespace cascade::reward_model {

struct TrainOptions {
  std::string pairs_path;
  std::string model_dir;
  std::string out_dir;
  int epochs = 3;
  double learning_rate = 1e-3;
  // Pairs per optimizer step.
  int batch_pairs = 16;
  // Fraction of pairs held out for evaluation, in [0, 1).
  double holdout = 0.2;
  uint64_t seed = 0;
  // Longest conversation trained on; longer ones keep their last tokens.
  int64_t max_sequence_tokens = 1024;
  NetOptions net;
};

struct EpochReport {
  int epoch = 0;
  double train_loss = 0.0;
  double train_accuracy = 0.0;
  double heldout_loss = 0.0;
  double heldout_accuracy = 0.0;
  size_t heldout_pairs = 0;
};

// Trains and saves; writes one JSON line per epoch to `progress`.
absl::StatusOr<std::vector<EpochReport>> TrainRewardModel(const TrainOptions& options,
                                                          std::ostream& progress);

// The command: `args` excludes "reward_model train". Exit codes 0/1/2.
int RunTrainCommand(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace cascade::reward_model

#endif  // CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_TRAIN_H_
