#include "services/reward_model/reward_model_core.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "common/status_macros.h"

namespace cascade::reward_model {
namespace {

namespace fs = std::filesystem;

// Process-wide metric families, labelled by method ("score" / "judge").
struct Metrics {
  prometheus::Family<prometheus::Counter>& items;
  prometheus::Family<prometheus::Counter>& tokens;
  prometheus::Family<prometheus::Histogram>& batch_seconds;

  static Metrics& Get() {
    static Metrics* m = new Metrics{
        prometheus::BuildCounter()
            .Name("cascade_reward_model_items_total")
            .Help("Items scored or judged")
            .Register(*MetricsRegistry()),
        prometheus::BuildCounter()
            .Name("cascade_reward_model_tokens_total")
            .Help("Tokens run through the networks")
            .Register(*MetricsRegistry()),
        prometheus::BuildHistogram()
            .Name("cascade_reward_model_batch_seconds")
            .Help("Wall time of one forward batch")
            .Register(*MetricsRegistry()),
    };
    return *m;
  }
  void Record(const std::string& method, size_t items_n, size_t tokens_n, double seconds) {
    items.Add({{"method", method}}).Increment(static_cast<double>(items_n));
    tokens.Add({{"method", method}}).Increment(static_cast<double>(tokens_n));
    batch_seconds.Add({{"method", method}}, LatencyBuckets()).Observe(seconds);
  }
};

absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> LoadTokenizer(const std::string& dir) {
  const fs::path path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(path)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": no tokenizer.json (the model directory must carry its tokenizer)"));
  }
  return tokenizer::Tokenizer::FromFile(path.string());
}

}  // namespace

absl::StatusOr<tokenizer::Role> ParseRole(absl::string_view role) {
  if (role == "system") return tokenizer::Role::kSystem;
  if (role == "user") return tokenizer::Role::kUser;
  if (role == "assistant") return tokenizer::Role::kAssistant;
  if (role == "tool") return tokenizer::Role::kTool;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown role \"", role, "\" (expected one of: system, user, assistant, tool)"));
}

absl::StatusOr<std::vector<tokenizer::ChatMessage>> ParsePrompt(const Json& value,
                                                                const JsonPath& path) {
  std::vector<tokenizer::ChatMessage> messages;
  if (value.is_string()) {
    tokenizer::ChatMessage m;
    m.role = tokenizer::Role::kUser;
    m.content = value.get<std::string>();
    messages.push_back(std::move(m));
    return messages;
  }
  if (!value.is_array()) {
    return path.Error(absl::StrCat("expected a string or a list of chat messages, got ",
                                   JsonTypeName(value)));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    JsonPath at = path.Index(i);
    RETURN_IF_ERROR(ExpectObject(value[i], at));
    ASSIGN_OR_RETURN(std::string role, GetString(value[i], "role", at));
    ASSIGN_OR_RETURN(std::string content, GetString(value[i], "content", at));
    auto parsed = ParseRole(role);
    if (!parsed.ok()) return at.Key("role").Error(parsed.status().message());
    tokenizer::ChatMessage m;
    m.role = *parsed;
    m.content = std::move(content);
    messages.push_back(std::move(m));
  }
  return messages;
}

absl::StatusOr<std::vector<PreferencePair>> ParsePairsJsonl(absl::string_view text,
                                                            const std::string& source) {
  std::vector<PreferencePair> pairs;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(source, ": line ", line_no);
    ASSIGN_OR_RETURN(Json item, ParseJson(line, where));
    JsonPath path(where);
    RETURN_IF_ERROR(ExpectObject(item, path));
    auto prompt = item.find("prompt");
    if (prompt == item.end() || prompt->is_null()) {
      return path.Key("prompt").Error("required field is missing");
    }
    PreferencePair pair;
    ASSIGN_OR_RETURN(pair.prompt, ParsePrompt(*prompt, path.Key("prompt")));
    ASSIGN_OR_RETURN(pair.chosen, GetString(item, "chosen", path));
    ASSIGN_OR_RETURN(pair.rejected, GetString(item, "rejected", path));
    pair.line = line_no;
    pairs.push_back(std::move(pair));
  }
  if (pairs.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": no pairs"));
  return pairs;
}

absl::StatusOr<std::vector<PreferencePair>> ReadPairsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParsePairsJsonl(buffer.str(), path);
}

absl::StatusOr<std::vector<int32_t>> RenderScoreItem(const tokenizer::Tokenizer& tokenizer,
                                                     const ScoreItem& item, int64_t max_tokens) {
  std::vector<tokenizer::ChatMessage> messages = item.prompt;
  tokenizer::ChatMessage answer;
  answer.role = tokenizer::Role::kAssistant;
  answer.content = item.response;
  messages.push_back(std::move(answer));
  ASSIGN_OR_RETURN(tokenizer::RenderedChat chat,
                   tokenizer::RenderChat(tokenizer, messages, {}, tokenizer::ChatTemplateOptions{}));
  std::vector<int32_t> ids = std::move(chat.ids);
  if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) {
    ids.erase(ids.begin(), ids.end() - max_tokens);
  }
  return ids;
}

absl::StatusOr<AnswerTokens> JudgeAnswerTokens(const tokenizer::Tokenizer& tokenizer) {
  auto single = [&](std::initializer_list<const char*> words) {
    std::vector<int32_t> ids;
    for (const char* w : words) {
      std::vector<int32_t> enc = tokenizer.Encode(w, /*allow_special=*/false);
      if (enc.size() == 1 && std::find(ids.begin(), ids.end(), enc[0]) == ids.end()) {
        ids.push_back(enc[0]);
      }
    }
    return ids;
  };
  AnswerTokens tokens;
  tokens.yes = single({"yes", "Yes", "YES", " yes", " Yes"});
  tokens.no = single({"no", "No", "NO", " no", " No"});
  auto drop_shared = [](std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    a.erase(std::remove_if(a.begin(), a.end(),
                           [&](int32_t id) { return std::find(b.begin(), b.end(), id) != b.end(); }),
            a.end());
  };
  std::vector<int32_t> yes_copy = tokens.yes;
  drop_shared(tokens.yes, tokens.no);
  drop_shared(tokens.no, yes_copy);
  if (tokens.yes.empty() || tokens.no.empty()) {
    return absl::FailedPreconditionError(
        "the judge's tokenizer encodes none of \"yes\"/\"Yes\"/\" yes\" or none of "
        "\"no\"/\"No\"/\" no\" as a single token; it cannot answer yes/no questions");
  }
  return tokens;
}

std::vector<std::vector<size_t>> BatchByTokenBudget(const std::vector<size_t>& lengths,
                                                    int64_t token_budget) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
  std::vector<std::vector<size_t>> batches;
  std::vector<size_t> current;
  for (size_t index : order) {
    // Sorted ascending, so the newcomer is the longest row of the batch.
    const int64_t rows = static_cast<int64_t>(current.size()) + 1;
    if (!current.empty() && rows * static_cast<int64_t>(lengths[index]) > token_budget) {
      batches.push_back(std::move(current));
      current.clear();
    }
    current.push_back(index);
  }
  if (!current.empty()) batches.push_back(std::move(current));
  return batches;
}

absl::StatusOr<std::unique_ptr<RewardModelCore>> RewardModelCore::Load(
    const std::string& rm_dir, const std::string& judge_dir, const RewardModelOptions& options) {
  if (rm_dir.empty() && judge_dir.empty()) {
    return absl::InvalidArgumentError("a reward model directory, a judge model directory or both are required");
  }
  std::unique_ptr<RewardModelCore> core(new RewardModelCore());
  core->options_ = options;
  if (!rm_dir.empty()) {
    ASSIGN_OR_RETURN(core->scorer_, RewardNet::Load(rm_dir, options.net));
    ASSIGN_OR_RETURN(core->scorer_tokenizer_, LoadTokenizer(rm_dir));
  }
  if (!judge_dir.empty()) {
    ASSIGN_OR_RETURN(core->judge_, JudgeNet::Load(judge_dir, options.net));
    ASSIGN_OR_RETURN(core->judge_tokenizer_, LoadTokenizer(judge_dir));
    auto tokens = JudgeAnswerTokens(*core->judge_tokenizer_);
    if (!tokens.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(judge_dir, ": ", tokens.status().message()));
    }
    core->answer_tokens_ = *std::move(tokens);
  }
  Metrics::Get();  // families exist (at zero) before the first request
  return core;
}

absl::StatusOr<std::vector<float>> RewardModelCore::Score(absl::Span<const ScoreItem> items) const {
  if (scorer_ == nullptr) {
    return absl::FailedPreconditionError("this server has no reward model (start it with --model)");
  }
  std::vector<std::vector<int32_t>> ids(items.size());
  std::vector<size_t> lengths(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto rendered = RenderScoreItem(*scorer_tokenizer_, items[i], options_.max_sequence_tokens);
    if (!rendered.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("items[", i, "]: ", rendered.status().message()));
    }
    ids[i] = *std::move(rendered);
    lengths[i] = ids[i].size();
  }
  std::vector<float> scores(items.size());
  for (const std::vector<size_t>& batch : BatchByTokenBudget(lengths, options_.token_budget)) {
    const absl::Time start = absl::Now();
    std::vector<std::vector<int32_t>> rows;
    size_t tokens = 0;
    for (size_t index : batch) {
      rows.push_back(ids[index]);
      tokens += ids[index].size();
    }
    ASSIGN_OR_RETURN(std::vector<float> out, scorer_->Score(rows));
    for (size_t j = 0; j < batch.size(); ++j) scores[batch[j]] = out[j];
    Metrics::Get().Record("score", batch.size(), tokens, absl::ToDoubleSeconds(absl::Now() - start));
  }
  return scores;
}

absl::StatusOr<std::vector<double>> RewardModelCore::Judge(absl::Span<const std::string> questions) const {
  if (judge_ == nullptr) {
    return absl::FailedPreconditionError("this server has no judge model (start it with --judge_model)");
  }
  std::vector<std::vector<int32_t>> ids(questions.size());
  std::vector<size_t> lengths(questions.size());
  tokenizer::ChatTemplateOptions chat;
  chat.add_generation_prompt = true;
  for (size_t i = 0; i < questions.size(); ++i) {
    tokenizer::ChatMessage m;
    m.role = tokenizer::Role::kUser;
    m.content = questions[i];
    m.flag = options_.judge_no_think ? tokenizer::ThinkingFlag::kNoThink : tokenizer::ThinkingFlag::kNone;
    auto rendered = tokenizer::RenderChat(*judge_tokenizer_, {m}, {}, chat);
    if (!rendered.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("items[", i, "]: ", rendered.status().message()));
    }
    ids[i] = std::move(rendered->ids);
    // The answer follows the end of the prompt, so a long question loses its start.
    if (options_.max_sequence_tokens > 0 &&
        static_cast<int64_t>(ids[i].size()) > options_.max_sequence_tokens) {
      ids[i].erase(ids[i].begin(), ids[i].end() - options_.max_sequence_tokens);
    }
    lengths[i] = ids[i].size();
  }
  std::vector<double> p(questions.size());
  for (const std::vector<size_t>& batch : BatchByTokenBudget(lengths, options_.token_budget)) {
    const absl::Time start = absl::Now();
    std::vector<std::vector<int32_t>> rows;
    size_t tokens = 0;
    for (size_t index : batch) {
      rows.push_back(ids[index]);
      tokens += ids[index].size();
    }
    ASSIGN_OR_RETURN(std::vector<double> out,
                     judge_->ProbabilityYes(rows, answer_tokens_.yes, answer_tokens_.no));
    for (size_t j = 0; j < batch.size(); ++j) p[batch[j]] = out[j];
    Metrics::Get().Record("judge", batch.size(), tokens, absl::ToDoubleSeconds(absl::Now() - start));
  }
  return p;
}

}  // namespace cascade::reward_model
