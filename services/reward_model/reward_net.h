// The reward model's network: the transformer of model/ with a scalar head on
// the last token, in the Hugging Face `<Arch>ForSequenceClassification`
// layout with num_labels = 1 (weights `model.*` + `score.weight` [1, hidden],
// no lm_head; config.json adds architectures, id2label and pad_token_id), so
// checkpoints written here load in transformers and existing RM checkpoints
// load here. Also the judge network: a causal LM whose next-token
// distribution after a question is read for two sets of answer tokens.
//
// This is the reward model's only torch translation unit; the header names
// no torch type.
//
// Thread-safety: Score() and the judge's ProbabilityYes() are const and safe
// to call concurrently; TrainStep() updates the weights in place and must not
// run concurrently with anything else on the same object.
#ifndef CASCADE_SERVICES_REWARD_MODEL_REWARD_NET_H_
#define CASCADE_SERVICES_REWARD_MODEL_REWARD_NET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/config.h"

namespace cascade::reward_model {

struct NetOptions {
  // "cpu", "cuda" or "cuda:N".
  std::string device = "cpu";
  // Compute dtype; empty: float32 on CPU, bfloat16 on CUDA.
  std::string dtype;
  // CPU intra-op threads; 0 = every hardware thread.
  int num_threads = 0;
};

struct TrainStepResult {
  // Mean Bradley–Terry loss -log sigmoid(r_chosen - r_rejected) before the step.
  double loss = 0.0;
  // Fraction of pairs with r_chosen > r_rejected before the step.
  double accuracy = 0.0;
};

class RewardNet {
 public:
  // Loads a sequence-classification checkpoint. With `allow_new_head`, a
  // causal LM directory (no score.weight) is accepted too and gets a fresh
  // head N(0, initializer_range) seeded by `head_seed` (the start of RM
  // training); without it such a directory is refused. A score.weight whose
  // shape is not [1, hidden] (num_labels != 1) is refused naming the file.
  static absl::StatusOr<std::unique_ptr<RewardNet>> Load(const std::string& dir,
                                                         const NetOptions& options,
                                                         bool allow_new_head = false,
                                                         uint64_t head_seed = 0);
  ~RewardNet();
  RewardNet(const RewardNet&) = delete;
  RewardNet& operator=(const RewardNet&) = delete;

  // Writes config.json (architectures "<Arch>ForSequenceClassification",
  // num_labels 1 via id2label, pad_token_id), model.safetensors and copies
  // `extra_files` (tokenizer files) into `dir`.
  absl::Status Save(const std::string& dir, const std::vector<std::string>& extra_files) const;

  const model::ModelConfig& config() const;
  int64_t pad_token_id() const;
  // Recorded in config.json on Save. Hugging Face pools at the last token
  // that is not the pad token, so the pad must never occur inside a
  // conversation (<|endoftext|>, not <|im_end|>).
  void set_pad_token_id(int64_t id);
  // Whether config.json named a pad token (else the first eos id stands in).
  bool has_configured_pad() const;

  // One scalar per sequence (the head applied to the final hidden state of
  // its last token). Sequences of different lengths share one forward.
  absl::StatusOr<std::vector<float>> Score(const std::vector<std::vector<int32_t>>& sequences) const;

  // One Adam step on the mean Bradley–Terry loss of the pairs
  // (chosen[i], rejected[i]).
  absl::StatusOr<TrainStepResult> TrainStep(const std::vector<std::vector<int32_t>>& chosen,
                                            const std::vector<std::vector<int32_t>>& rejected,
                                            double learning_rate);

  struct Impl;

 private:
  explicit RewardNet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A causal LM asked yes/no questions.
class JudgeNet {
 public:
  static absl::StatusOr<std::unique_ptr<JudgeNet>> Load(const std::string& dir,
                                                        const NetOptions& options);
  ~JudgeNet();
  JudgeNet(const JudgeNet&) = delete;
  JudgeNet& operator=(const JudgeNet&) = delete;

  const model::ModelConfig& config() const;

  // For each prompt: sum of p(next token in yes_ids) divided by that sum
  // plus the sum over no_ids, from the distribution after the prompt's last
  // token. P(yes) + P(no) = 1 by construction.
  absl::StatusOr<std::vector<double>> ProbabilityYes(
      const std::vector<std::vector<int32_t>>& prompts, const std::vector<int32_t>& yes_ids,
      const std::vector<int32_t>& no_ids) const;

  struct Impl;

 private:
  explicit JudgeNet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cascade::reward_model

#endif  // CASCADE_SERVICES_REWARD_MODEL_REWARD_NET_H_
