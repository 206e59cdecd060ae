// Reward-model logic without gRPC: rendering (prompt, response) pairs with
// the chat template, scoring them in batches bounded by a token budget, the
// yes/no judge, and the preference-pair file format.
//
// Scoring: each item becomes the conversation prompt + one assistant turn
// holding the response, rendered by tokenizer/chat_template.h with the
// model's own tokenizer.json; the reward is the scalar head on the last
// token (see reward_net.h).
//
// Judge: the question becomes one user turn (optionally with /no_think),
// followed by the generation prompt "<|im_start|>assistant\n"; P(yes) is the
// next-token probability of the yes tokens renormalized over yes and no
// tokens (JudgeAnswerTokens below says which tokens).
//
// Thread-safety: a loaded RewardModelCore is immutable; Score and Judge may
// run concurrently.
#ifndef CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CORE_H_
#define CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/json_util.h"
#include "services/reward_model/reward_net.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace cascade::reward_model {

// "system" | "user" | "assistant" | "tool".
absl::StatusOr<tokenizer::Role> ParseRole(absl::string_view role);

// A prompt as the pair files and requests give it: a string (one user turn)
// or a list of {"role", "content"} objects.
absl::StatusOr<std::vector<tokenizer::ChatMessage>> ParsePrompt(const Json& value,
                                                                const JsonPath& path);

struct PreferencePair {
  std::vector<tokenizer::ChatMessage> prompt;
  std::string chosen;
  std::string rejected;
  int line = 0;  // 1-based line in the file it came from
};

// JSONL of {"prompt", "chosen", "rejected"}; blank lines are skipped. Errors
// name the line and field: "PAIRS.jsonl: line 7: chosen: required field is missing".
absl::StatusOr<std::vector<PreferencePair>> ParsePairsJsonl(absl::string_view text,
                                                            const std::string& source);
absl::StatusOr<std::vector<PreferencePair>> ReadPairsFile(const std::string& path);

struct ScoreItem {
  std::vector<tokenizer::ChatMessage> prompt;
  std::string response;
};

// Token ids of prompt + assistant(response). Conversations longer than
// `max_tokens` keep their last max_tokens ids: the reward is read at the end.
absl::StatusOr<std::vector<int32_t>> RenderScoreItem(const tokenizer::Tokenizer& tokenizer,
                                                     const ScoreItem& item, int64_t max_tokens);

// The answer tokens of the judge. Candidates "yes", "Yes", "YES", " yes",
// " Yes" and "no", "No", "NO", " no", " No"; those the tokenizer encodes as a
// single token are used (after "<|im_start|>assistant\n" the answer has no
// leading space, so "yes"/"Yes" carry the mass; Qwen3 and GPT-2 have all ten
// as single tokens). An id on both sides is dropped. FAILED_PRECONDITION
// when a side is left with none.
struct AnswerTokens {
  std::vector<int32_t> yes;
  std::vector<int32_t> no;
};
absl::StatusOr<AnswerTokens> JudgeAnswerTokens(const tokenizer::Tokenizer& tokenizer);

struct RewardModelOptions {
  // Device, dtype and threads of both networks.
  NetOptions net;
  // Tokens per forward pass (rows x longest row); items are sorted by length
  // and grouped under it. A single longer item still runs alone.
  int64_t token_budget = 8192;
  // Longest conversation scored; longer ones keep their last tokens.
  int64_t max_sequence_tokens = 4096;
  // Appends /no_think to the judge's question (Qwen3-style models answer at once).
  bool judge_no_think = true;
};

class RewardModelCore {
 public:
  // `rm_dir`: a sequence-classification checkpoint with tokenizer.json (may
  // be empty: no Score). `judge_dir`: a causal LM with tokenizer.json (may be
  // empty: no Judge). At least one is required.
  static absl::StatusOr<std::unique_ptr<RewardModelCore>> Load(const std::string& rm_dir,
                                                               const std::string& judge_dir,
                                                               const RewardModelOptions& options = {});
  RewardModelCore(const RewardModelCore&) = delete;
  RewardModelCore& operator=(const RewardModelCore&) = delete;

  bool has_scorer() const { return scorer_ != nullptr; }
  bool has_judge() const { return judge_ != nullptr; }

  // One reward per item, same order. FAILED_PRECONDITION without a reward model.
  absl::StatusOr<std::vector<float>> Score(absl::Span<const ScoreItem> items) const;
  // P(yes) per question, same order. FAILED_PRECONDITION without a judge.
  absl::StatusOr<std::vector<double>> Judge(absl::Span<const std::string> questions) const;

  const AnswerTokens& answer_tokens() const { return answer_tokens_; }

 private:
  RewardModelCore() = default;

  RewardModelOptions options_;
  std::unique_ptr<RewardNet> scorer_;
  std::unique_ptr<tokenizer::Tokenizer> scorer_tokenizer_;
  std::unique_ptr<JudgeNet> judge_;
  std::unique_ptr<tokenizer::Tokenizer> judge_tokenizer_;
  AnswerTokens answer_tokens_;
};

// Indices of `lengths` grouped into batches whose rows x longest row stays
// within `token_budget` (a longer single item forms its own batch); shorter
// items first, so padding stays small.
std::vector<std::vector<size_t>> BatchByTokenBudget(const std::vector<size_t>& lengths,
                                                    int64_t token_budget);

}  // namespace cascade::reward_model

#endif  // CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CORE_H_
