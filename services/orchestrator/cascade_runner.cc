#include "services/orchestrator/cascade_runner.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "services/orchestrator/grpo.h"
#include "tokenizer/chat_template.h"

namespace cascade::orchestrator {
namespace fs = std::filesystem;
using absl::StrCat;

namespace {

double Seconds(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

// Reads manifest.json's checksum of the weights, "" when absent.
std::string WeightsSha256(const std::string& checkpoint_dir) {
  std::ifstream in(fs::path(checkpoint_dir) / "manifest.json");
  if (!in) return "";
  Json manifest = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || !manifest.contains("sha256")) return "";
  return manifest["sha256"].value("model.safetensors", "");
}

// Runs fn(0..n-1) on min(n, max_threads) threads, each taking the next index.
void ParallelFor(size_t n, const std::function<void(size_t)>& fn, size_t max_threads = SIZE_MAX) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) fn(i);
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min(n, max_threads); ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
}

// Calls in flight at once to one scored service (verifier, reward model).
constexpr size_t kMaxConcurrentScoreCalls = 32;

// How many calls carry `items` items to a service with `addresses` entries:
// enough that none exceeds items_per_call, and at least one per address.
size_t ScoreCallCount(size_t items, size_t addresses, int64_t items_per_call) {
  const size_t by_size = (items + static_cast<size_t>(items_per_call) - 1) / static_cast<size_t>(items_per_call);
  return std::min(items, std::max(addresses, by_size));
}

// "<stage>-<steps done>-<name>": sorts oldest first.
std::string CheckpointName(int stage_index, int64_t steps_done, const std::string& name) {
  return absl::StrFormat("%02d-%05d-%s", stage_index, steps_done, name);
}

}  // namespace

struct CascadeRunner::Stage {
  const StageConfig* config = nullptr;
  int index = 0;
  // The learner's optimizer state belongs to this scope: "<job>/<stage>" of
  // the latest stage up to this one with reset_optimizer, "" when none.
  std::string optimizer_scope;
  std::vector<Example> train;
  std::vector<Example> eval;
  int64_t total_steps = 0;
  std::unique_ptr<PromptSampler> sampler;
};

struct CascadeRunner::Metrics {
  Metrics() {
    auto& r = *MetricsRegistry();
    step = &prometheus::BuildGauge().Name("cascade_orchestrator_step").Help("Steps of the running stage done").Register(r);
    reward_mean = &prometheus::BuildGauge().Name("cascade_orchestrator_reward_mean").Help("Mean reward of the last step").Register(r);
    reward_std = &prometheus::BuildGauge().Name("cascade_orchestrator_reward_std").Help("Reward standard deviation of the last step").Register(r);
    filtered = &prometheus::BuildGauge().Name("cascade_orchestrator_filtered_fraction").Help("Fraction of prompt groups dropped by dynamic filtering in the last step").Register(r);
    length = &prometheus::BuildGauge().Name("cascade_orchestrator_response_tokens_mean").Help("Mean response length of the last step, tokens").Register(r);
    truncation = &prometheus::BuildGauge().Name("cascade_orchestrator_truncation_rate").Help("Fraction of responses cut at the length limit in the last step").Register(r);
    phase = &prometheus::BuildHistogram().Name("cascade_orchestrator_step_phase_seconds").Help("Step time by phase").Register(r);
    steps = &prometheus::BuildCounter().Name("cascade_orchestrator_steps_total").Help("Training steps completed").Register(r);
    tokens = &prometheus::BuildCounter().Name("cascade_orchestrator_generated_tokens_total").Help("Response tokens generated for training").Register(r);
    eval = &prometheus::BuildGauge().Name("cascade_orchestrator_eval_reward").Help("Mean eval reward of a domain after a stage").Register(r);
    auto& last = prometheus::BuildGauge().Name("cascade_orchestrator_last_step_timestamp_seconds").Help("Unix time of the last completed step").Register(r);
    last_step_time = &last.Add({});
    auto& v = prometheus::BuildGauge().Name("cascade_orchestrator_policy_version").Help("Policy version the rollout replicas serve").Register(r);
    version = &v.Add({});
    auto& s = prometheus::BuildGauge().Name("cascade_orchestrator_stage_index").Help("Index of the running stage").Register(r);
    stage_index = &s.Add({});
  }
  prometheus::Family<prometheus::Gauge>* step;
  prometheus::Family<prometheus::Gauge>* reward_mean;
  prometheus::Family<prometheus::Gauge>* reward_std;
  prometheus::Family<prometheus::Gauge>* filtered;
  prometheus::Family<prometheus::Gauge>* length;
  prometheus::Family<prometheus::Gauge>* truncation;
  prometheus::Family<prometheus::Histogram>* phase;
  prometheus::Family<prometheus::Counter>* steps;
  prometheus::Family<prometheus::Counter>* tokens;
  prometheus::Family<prometheus::Gauge>* eval;
  prometheus::Gauge* last_step_time;
  prometheus::Gauge* version;
  prometheus::Gauge* stage_index;

  void Observe(const std::string& stage, const StepRecord& s) {
    step->Add({{"stage", stage}}).Set(static_cast<double>(s.step + 1));
    reward_mean->Add({{"stage", stage}}).Set(s.reward_mean);
    reward_std->Add({{"stage", stage}}).Set(s.reward_std);
    filtered->Add({{"stage", stage}}).Set(s.filtered_fraction);
    length->Add({{"stage", stage}}).Set(s.response_tokens_mean);
    truncation->Add({{"stage", stage}}).Set(s.truncation_rate);
    const double other = std::max(0.0, s.total_s - s.generate_s - s.verify_s - s.train_s - s.sync_s);
    for (auto [name, value] : {std::pair<const char*, double>{"generate", s.generate_s},
                               {"verify", s.verify_s}, {"train", s.train_s}, {"sync", s.sync_s},
                               {"other", other}}) {
      phase->Add({{"stage", stage}, {"phase", name}}, LatencyBuckets()).Observe(value);
    }
    steps->Add({{"stage", stage}}).Increment();
    last_step_time->Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  }
};

std::string FormatDurationShort(double seconds) {
  if (seconds < 0) seconds = 0;
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string FormatProgressLine(const Progress& p, size_t stages) {
  std::string line = absl::StrFormat("[stage %d/%d %s] step %d/%d", p.stage_index + 1, stages,
                                     p.stage_name, p.step, p.total_steps);
  if (p.has_last_step) {
    const StepRecord& s = p.last_step;
    if (p.stage_kind == "sft") {
      absl::StrAppendFormat(&line, " loss %.4f len %.1f | train %.1fs", s.loss, s.response_tokens_mean, s.train_s);
    } else {
      absl::StrAppendFormat(&line, " reward %.3f±%.3f filtered %.0f%% len %.1f trunc %.0f%% loss %.4f",
                            s.reward_mean, s.reward_std, 100 * s.filtered_fraction, s.response_tokens_mean,
                            100 * s.truncation_rate, s.loss);
      absl::StrAppendFormat(&line, " | gen %.1fs verify %.1fs train %.1fs sync %.1fs", s.generate_s,
                            s.verify_s, s.train_s, s.sync_s);
    }
  }
  absl::StrAppend(&line, " | ETA ", FormatDurationShort(p.eta_s));
  return line;
}

CascadeRunner::CascadeRunner(CascadeConfig config, std::string job_id, JobStore* store,
                             RunnerServices services, const tokenizer::Tokenizer* tokenizer)
    : config_(std::move(config)),
      job_id_(std::move(job_id)),
      store_(store),
      services_(services),
      tokenizer_(tokenizer),
      metrics_(std::make_unique<Metrics>()) {
  for (const char* stop : {"<|im_end|>", "<|endoftext|>"}) {
    if (auto id = tokenizer_->TokenId(stop)) stop_ids_.push_back(*id);
  }
}

CascadeRunner::~CascadeRunner() = default;

Progress CascadeRunner::progress() const {
  absl::MutexLock lock(&mu_);
  return progress_;
}

void CascadeRunner::Publish(const Progress& progress) {
  {
    absl::MutexLock lock(&mu_);
    progress_ = progress;
  }
  if (progress_callback_) progress_callback_(progress);
}

void CascadeRunner::SetActivity(const std::string& activity) {
  Progress p = progress();
  p.activity = activity;
  Publish(p);
}

absl::Status CascadeRunner::Prepare() {
  for (size_t i = 0; i < config_.stages.size(); ++i) {
    const StageConfig& sc = config_.stages[i];
    auto stage = std::make_unique<Stage>();
    stage->config = &sc;
    stage->index = static_cast<int>(i);
    if (sc.reset_optimizer) {
      stage->optimizer_scope = StrCat(job_id_, "/", sc.name);
    } else if (!stages_.empty()) {
      stage->optimizer_scope = stages_.back()->optimizer_scope;
    }
    ASSIGN_OR_RETURN(stage->train, LoadDataset(sc.train, sc.kind, sc.reward.type, sc.system_prompt));
    if (sc.eval.has_value() && sc.kind == StageKind::kGrpo) {
      ASSIGN_OR_RETURN(stage->eval, LoadDataset(*sc.eval, sc.kind, sc.reward.type, sc.system_prompt));
      if (sc.eval_limit > 0 && static_cast<int64_t>(stage->eval.size()) > sc.eval_limit) {
        stage->eval.resize(sc.eval_limit);
      }
    }
    stage->total_steps = StageTotalSteps(sc, static_cast<int64_t>(stage->train.size()));
    stage->sampler = std::make_unique<PromptSampler>(
        static_cast<int64_t>(stage->train.size()), MixSeed({config_.seed, i}));
    stages_.push_back(std::move(stage));
  }
  return absl::OkStatus();
}

std::vector<int32_t> CascadeRunner::PromptIds(const Example& example, bool think) const {
  std::vector<tokenizer::ChatMessage> messages;
  for (const ChatTurn& turn : example.messages) {
    tokenizer::ChatMessage m;
    m.role = turn.role == "system"      ? tokenizer::Role::kSystem
             : turn.role == "assistant" ? tokenizer::Role::kAssistant
                                        : tokenizer::Role::kUser;
    m.content = turn.content;
    messages.push_back(std::move(m));
  }
  // The mode flag goes on the last user turn (DESIGN.md §1, chat template);
  // no-think prompts also get the empty think block, so the model answers
  // directly, as Qwen3 does with enable_thinking=false.
  messages.back().flag = think ? tokenizer::ThinkingFlag::kThink : tokenizer::ThinkingFlag::kNoThink;
  tokenizer::ChatTemplateOptions options;
  options.add_generation_prompt = true;
  options.prefill_empty_think = !think;
  auto rendered = tokenizer::RenderChat(*tokenizer_, messages, {}, options);
  if (!rendered.ok()) return {};
  return rendered->ids;
}

std::string CascadeRunner::AnswerText(const cascade::v1::Response& response) const {
  std::vector<int32_t> ids(response.token_ids().begin(), response.token_ids().end());
  while (!ids.empty() && std::find(stop_ids_.begin(), stop_ids_.end(), ids.back()) != stop_ids_.end()) {
    ids.pop_back();
  }
  std::string text = tokenizer_->Decode(ids);
  // Rewards judge the final answer, not the reasoning before it.
  if (size_t end = text.rfind("</think>"); end != std::string::npos) {
    text = text.substr(end + 8);
    text.erase(0, text.find_first_not_of(" \n"));
  }
  return text;
}

absl::Status CascadeRunner::EnsurePublished(double* seconds) {
  if (published_version_ == version_) return absl::OkStatus();
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(cascade::v1::PublishWeightsResponse published,
                   services_.learner->PublishWeights("grpc", absl::Seconds(config_.services.call_timeout_s)));
  if (published.version() != version_) {
    return absl::InternalError(StrCat("learner published version ", published.version(),
                                      " but its version is ", version_));
  }
  if (published.acknowledged() < static_cast<int>(services_.rollout->size())) {
    return absl::UnavailableError(StrCat("only ", published.acknowledged(), " of ",
                                         services_.rollout->size(),
                                         " rollout replicas acknowledged version ", version_));
  }
  published_version_ = version_;
  metrics_->version->Set(static_cast<double>(version_));
  if (seconds != nullptr) *seconds += Seconds(start);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<cascade::v1::Response>>> CascadeRunner::Generate(
    const Stage& stage, const std::vector<std::vector<int32_t>>& prompts, int group_size,
    double temperature, int64_t max_new_tokens, uint64_t seed) {
  const StageConfig& sc = *stage.config;
  const size_t n = prompts.size();
  std::vector<std::vector<cascade::v1::Response>> out(n);
  if (n == 0) return out;
  // Prompts are split across replicas; each shard keeps the request's seed
  // and its prompts' positions, so samples do not depend on the split.
  const size_t shards = std::min(n, services_.rollout->size());
  std::vector<absl::Status> statuses(shards);
  ParallelFor(shards, [&](size_t shard) {
    cascade::v1::GenerateRequest request;
    request.set_samples_per_prompt(group_size);
    request.set_policy_version(version_);
    auto* sampling = request.mutable_sampling();
    sampling->set_temperature(static_cast<float>(temperature));
    sampling->set_top_p(static_cast<float>(sc.top_p));
    sampling->set_top_k(static_cast<int32_t>(sc.top_k));
    sampling->set_max_new_tokens(static_cast<int32_t>(max_new_tokens));
    for (int32_t id : stop_ids_) sampling->add_stop_token_ids(id);
    sampling->set_seed(MixSeed({seed, shard}));
    std::vector<size_t> positions;
    for (size_t i = shard; i < n; i += shards) {
      auto* prompt = request.add_prompts();
      prompt->set_prompt_id(std::to_string(i));
      prompt->mutable_token_ids()->Add(prompts[i].begin(), prompts[i].end());
      positions.push_back(i);
    }
    auto responses = services_.rollout->Call(shard, [&](rollout::RolloutClientInterface& client) {
      return client.Generate(request, absl::Seconds(config_.services.call_timeout_s));
    });
    if (!responses.ok()) {
      statuses[shard] = responses.status();
      return;
    }
    for (cascade::v1::Response& r : *responses) {
      const size_t i = std::stoul(r.prompt_id());
      out[i].push_back(std::move(r));
    }
  });
  for (const absl::Status& s : statuses) RETURN_IF_ERROR(s);
  for (auto& group : out) {
    std::sort(group.begin(), group.end(), [](const auto& a, const auto& b) {
      return a.sample_index() < b.sample_index();
    });
    if (static_cast<int>(group.size()) != group_size) {
      return absl::InternalError(StrCat("rollout returned ", group.size(), " responses for a prompt, expected ",
                                        group_size));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<double>>> CascadeRunner::Verify(
    const Stage& stage, const std::vector<const Example*>& examples,
    const std::vector<std::vector<std::string>>& answers) {
  const StageConfig& sc = *stage.config;
  const std::string backend = VerifierBackendFor(sc.reward.type);
  std::vector<verifier::ClientItem> items;
  std::vector<std::pair<size_t, size_t>> where;
  for (size_t i = 0; i < examples.size(); ++i) {
    for (size_t j = 0; j < answers[i].size(); ++j) {
      verifier::ClientItem item;
      item.response = answers[i][j];
      item.spec = sc.reward.backend_options;
      for (auto& [key, value] : examples[i]->spec.items()) item.spec[key] = value;
      items.push_back(std::move(item));
      where.emplace_back(i, j);
    }
  }
  std::vector<std::vector<double>> rewards(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) rewards[i].resize(answers[i].size(), 0.0);
  // Items are sharded across calls and the calls across replicas; a shard
  // whose replica dies moves to another one (ReplicaPool), so the step
  // completes.
  const size_t shards = ScoreCallCount(items.size(), services_.verifier->size(), config_.services.items_per_call);
  std::vector<absl::Status> statuses(shards);
  ParallelFor(shards, [&](size_t shard) {
    std::vector<verifier::ClientItem> part;
    std::vector<size_t> index;
    for (size_t k = shard; k < items.size(); k += shards) {
      part.push_back(items[k]);
      index.push_back(k);
    }
    auto results = services_.verifier->Call(shard, [&](verifier::VerifierClientInterface& client) {
      return client.Verify(backend, part, absl::Seconds(sc.reward.item_timeout_s),
                           absl::Seconds(config_.services.call_timeout_s));
    });
    if (!results.ok()) {
      statuses[shard] = results.status();
      return;
    }
    for (size_t k = 0; k < results->size(); ++k) {
      const auto [i, j] = where[index[k]];
      const verifier::ClientResult& result = (*results)[k];
      double reward = result.reward;
      if (sc.reward.partial_credit && result.details.contains("passed") && result.details.contains("total") &&
          result.details["total"].is_number() && result.details["total"].get<double>() > 0) {
        reward = result.details["passed"].get<double>() / result.details["total"].get<double>();
      }
      rewards[i][j] = reward;
    }
  }, kMaxConcurrentScoreCalls);
  for (const absl::Status& s : statuses) RETURN_IF_ERROR(s);
  return rewards;
}

absl::StatusOr<std::vector<std::vector<double>>> CascadeRunner::RewardModelScores(
    const std::vector<const Example*>& examples, const std::vector<std::vector<std::string>>& answers) {
  std::vector<reward_model::ClientScoreItem> items;
  for (size_t i = 0; i < examples.size(); ++i) {
    for (const std::string& answer : answers[i]) {
      reward_model::ClientScoreItem item;
      for (const ChatTurn& turn : examples[i]->messages) item.prompt.push_back({turn.role, turn.content});
      item.response = answer;
      items.push_back(std::move(item));
    }
  }
  // Contiguous shards, one call each, spread over the replicas.
  const size_t shards = ScoreCallCount(items.size(), services_.reward_model->size(), config_.services.items_per_call);
  std::vector<float> scores(items.size());
  std::vector<absl::Status> statuses(shards);
  ParallelFor(shards, [&](size_t shard) {
    const size_t begin = items.size() * shard / shards;
    const size_t end = items.size() * (shard + 1) / shards;
    std::vector<reward_model::ClientScoreItem> part(items.begin() + begin, items.begin() + end);
    auto part_scores = services_.reward_model->Call(shard, [&](reward_model::RewardModelClientInterface& client) {
      return client.Score(part, absl::Seconds(config_.services.call_timeout_s));
    });
    if (!part_scores.ok()) {
      statuses[shard] = part_scores.status();
    } else if (part_scores->size() != part.size()) {
      statuses[shard] = absl::InternalError(
          StrCat("reward model returned ", part_scores->size(), " scores for ", part.size(), " items"));
    } else {
      std::copy(part_scores->begin(), part_scores->end(), scores.begin() + begin);
    }
  }, kMaxConcurrentScoreCalls);
  for (const absl::Status& s : statuses) RETURN_IF_ERROR(s);
  std::vector<std::vector<double>> out(examples.size());
  size_t k = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    for (size_t j = 0; j < answers[i].size(); ++j) out[i].push_back(scores[k++]);
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<double>>> CascadeRunner::Score(
    const Stage& stage, const std::vector<const Example*>& examples,
    const std::vector<std::vector<cascade::v1::Response>>& responses, bool for_eval) {
  std::vector<std::vector<std::string>> answers(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    for (const auto& r : responses[i]) answers[i].push_back(AnswerText(r));
  }
  const RewardType type = stage.config->reward.type;
  if (type == RewardType::kRewardModel) return RewardModelScores(examples, answers);
  ASSIGN_OR_RETURN(auto verified, Verify(stage, examples, answers));
  // Evaluation reports the verifiable part alone: with one sample per
  // prompt there is no group to normalise the RM score in.
  if (type != RewardType::kIfPlusRm || for_eval) return verified;
  ASSIGN_OR_RETURN(auto rm, RewardModelScores(examples, answers));
  for (size_t i = 0; i < verified.size(); ++i) verified[i] = IfPlusRmRewards(verified[i], rm[i]);
  return verified;
}

absl::Status CascadeRunner::Evaluate(int after_stage_index, int64_t at_step) {
  SetActivity("eval");
  RETURN_IF_ERROR(EnsurePublished(nullptr));
  for (const auto& stage : stages_) {
    if (stage->eval.empty()) continue;
    const StageConfig& sc = *stage->config;
    std::vector<const Example*> examples;
    for (const Example& e : stage->eval) examples.push_back(&e);
    const int64_t max_tokens = sc.LimitsAt(stage->total_steps - 1).max_response_tokens;
    // Evaluation asks in the stage's mode; "both" evaluates without thinking.
    std::vector<std::vector<int32_t>> prompts;
    for (const Example* e : examples) prompts.push_back(PromptIds(*e, sc.thinking == ThinkingMode::kThink));
    ASSIGN_OR_RETURN(auto responses, Generate(*stage, prompts, /*group_size=*/1, sc.eval_temperature,
                                              max_tokens, MixSeed({config_.seed, 0xE7A1ULL})));
    ASSIGN_OR_RETURN(auto rewards, Score(*stage, examples, responses, /*for_eval=*/true));
    // Evaluation scores every response as it is, cut or not: the training
    // policy for overlong responses is a training choice, and forcing 0 would
    // flatter domains whose rewards go below it (swe: -1 when unparseable).
    double sum = 0.0;
    int64_t count = 0;
    for (const std::vector<double>& group : rewards) {
      for (double reward : group) {
        sum += reward;
        ++count;
      }
    }
    // Two samples per domain in the job's events: what the policy says, not
    // only how it scores.
    for (size_t i = 0; i < std::min<size_t>(2, examples.size()); ++i) {
      RETURN_IF_ERROR(store_->AddEvent(
          job_id_, "info",
          absl::StrFormat("eval sample after %s step %d, %s: %s -> %s (reward %.3f)",
                          config_.stages[after_stage_index].name, at_step, sc.domain,
                          examples[i]->messages.back().content, AnswerText(responses[i][0]),
                          rewards[i][0])));
    }
    EvalRecord record;
    record.after_stage_index = after_stage_index;
    record.at_step = at_step;
    record.domain_stage_index = stage->index;
    record.domain = sc.domain;
    record.reward_mean = count > 0 ? sum / static_cast<double>(count) : 0.0;
    record.samples = count;
    RETURN_IF_ERROR(store_->AddEval(job_id_, record));
    metrics_->eval->Add({{"after_stage", config_.stages[after_stage_index].name}, {"domain", sc.domain}})
        .Set(record.reward_mean);
    CASCADE_LOG(INFO) << "eval after " << config_.stages[after_stage_index].name << " step " << at_step
                      << ": " << sc.domain << " " << absl::StrFormat("%.3f", record.reward_mean);
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointRecord> CascadeRunner::Checkpoint(int stage_index, int64_t steps_done) {
  SetActivity("checkpoint");
  const std::string dir =
      (fs::path(config_.output_dir) / "checkpoints" /
       CheckpointName(stage_index, steps_done, config_.stages[stage_index].name))
          .string();
  ASSIGN_OR_RETURN(int64_t step, services_.learner->SaveCheckpoint(
                                     dir, absl::Seconds(config_.services.call_timeout_s)));
  if (step != version_) {
    return absl::InternalError(StrCat("checkpoint holds step ", step, ", expected version ", version_));
  }
  CheckpointRecord record;
  record.stage_index = stage_index;
  record.steps_done = steps_done;
  record.policy_version = version_;
  record.path = dir;
  record.weights_sha256 = WeightsSha256(dir);
  return record;
}

absl::Status CascadeRunner::PruneCheckpoints() {
  // Keeps the two newest checkpoints (resume points) and every stage's last
  // one (the model after each stage); deletes the others.
  std::error_code error;
  const fs::path root = fs::path(config_.output_dir) / "checkpoints";
  if (!fs::is_directory(root, error)) return absl::OkStatus();
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    if (entry.is_directory() && fs::exists(entry.path() / "manifest.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  std::set<std::string> keep(names.end() - std::min<size_t>(2, names.size()), names.end());
  for (size_t i = 0; i < stages_.size(); ++i) {
    keep.insert(CheckpointName(static_cast<int>(i), stages_[i]->total_steps, config_.stages[i].name));
  }
  for (const std::string& name : names) {
    if (keep.count(name) == 0) fs::remove_all(root / name, error);
  }
  return absl::OkStatus();
}

absl::Status CascadeRunner::SftStep(int stage_index, int64_t step, StepRecord* record) {
  const Stage& stage = *stages_[stage_index];
  const StageConfig& sc = *stage.config;
  SetActivity("train");
  std::vector<int64_t> picked = stage.sampler->MainBatch(step, sc.batch_prompts, {});
  cascade::v1::TrainStepRequest request;
  request.set_loss(cascade::v1::LOSS_KIND_SFT);
  request.set_policy_version(version_);
  request.set_learning_rate(static_cast<float>(StageLearningRate(sc, step, stage.total_steps)));
  request.set_micro_batch_tokens(sc.micro_batch_tokens);
  request.set_optimizer_scope(stage.optimizer_scope);
  const CurriculumPhase limits = sc.LimitsAt(step);
  double length_sum = 0.0;
  int64_t truncated = 0;
  for (size_t k = 0; k < picked.size(); ++k) {
    const Example& example = stage.train[picked[k]];
    const bool think = sc.thinking == ThinkingMode::kThink || (sc.thinking == ThinkingMode::kBoth && k % 2 == 0);
    std::vector<int32_t> prompt = PromptIds(example, think);
    std::vector<int32_t> response = tokenizer_->Encode(example.response, /*allow_special=*/false);
    if (!stop_ids_.empty()) response.push_back(stop_ids_.front());
    if (static_cast<int64_t>(response.size()) > limits.max_response_tokens) {
      response.resize(limits.max_response_tokens);
      ++truncated;
    }
    length_sum += static_cast<double>(response.size());
    auto* sequence = request.add_sequences();
    for (int32_t id : prompt) {
      sequence->add_token_ids(id);
      sequence->add_loss_mask(0);
    }
    for (int32_t id : response) {
      sequence->add_token_ids(id);
      sequence->add_loss_mask(1);
    }
    sequence->set_advantage(1.0f);
  }
  const absl::Time train_start = absl::Now();
  ASSIGN_OR_RETURN(cascade::v1::TrainStepResponse trained,
                   services_.learner->TrainStep(request, absl::Seconds(config_.services.call_timeout_s)));
  record->train_s = Seconds(train_start);
  version_ = trained.policy_version();
  record->loss = trained.loss();
  record->entropy = trained.entropy();
  record->response_tokens_mean = picked.empty() ? 0.0 : length_sum / static_cast<double>(picked.size());
  record->truncation_rate = picked.empty() ? 0.0 : static_cast<double>(truncated) / static_cast<double>(picked.size());
  record->extra["learning_rate"] = trained.learning_rate();
  record->extra["grad_norm"] = trained.grad_norm();
  if (trained.optimizer_reset()) record->extra["optimizer_reset"] = true;
  record->extra["sequences"] = picked.size();
  return absl::OkStatus();
}

absl::Status CascadeRunner::GrpoStep(int stage_index, int64_t step, StepRecord* record, bool* trained_out) {
  const Stage& stage = *stages_[stage_index];
  const StageConfig& sc = *stage.config;
  const CurriculumPhase limits = sc.LimitsAt(step);
  std::set<int64_t> retired;
  {
    ASSIGN_OR_RETURN(std::vector<std::string> ids, store_->RetiredPrompts(job_id_, stage_index));
    std::set<std::string> retired_ids(ids.begin(), ids.end());
    for (size_t i = 0; i < stage.train.size(); ++i) {
      if (retired_ids.count(stage.train[i].id)) retired.insert(static_cast<int64_t>(i));
    }
  }
  RETURN_IF_ERROR(EnsurePublished(&record->sync_s));

  std::vector<int64_t> picked = stage.sampler->MainBatch(step, sc.batch_prompts, retired);
  std::set<int64_t> seen(picked.begin(), picked.end());
  cascade::v1::TrainStepRequest request;
  request.set_loss(cascade::v1::LOSS_KIND_GRPO);
  request.set_policy_version(version_);
  request.set_learning_rate(static_cast<float>(StageLearningRate(sc, step, stage.total_steps)));
  request.set_micro_batch_tokens(sc.micro_batch_tokens);
  request.set_optimizer_scope(stage.optimizer_scope);
  std::vector<double> all_rewards;
  int64_t groups_total = 0, groups_kept = 0, responses_total = 0, truncated = 0, skipped_long = 0;
  double length_sum = 0.0;
  int64_t rounds = 0;
  // Solved-by-all / by-none prompts, for retirement at the epoch's end.
  std::vector<std::string> solved_all, solved_none;
  for (int64_t round = 0; round <= sc.filtering.max_refill_rounds; ++round) {
    if (cancelled_.load()) return absl::CancelledError("job cancelled");
    std::vector<const Example*> examples;
    std::vector<std::vector<int32_t>> prompt_ids;
    for (int64_t index : picked) {
      const Example& example = stage.train[index];
      // Mode per prompt position, as Generate decides it.
      const size_t position = examples.size();
      const bool think = sc.thinking == ThinkingMode::kThink ||
                         (sc.thinking == ThinkingMode::kBoth && position % 2 == 0);
      std::vector<int32_t> ids = PromptIds(example, think);
      if (static_cast<int64_t>(ids.size()) > limits.max_prompt_tokens || ids.empty()) {
        ++skipped_long;
        continue;
      }
      examples.push_back(&example);
      prompt_ids.push_back(std::move(ids));
    }
    ++rounds;
    SetActivity("generate");
    const absl::Time generate_start = absl::Now();
    ASSIGN_OR_RETURN(auto responses,
                     Generate(stage, prompt_ids, static_cast<int>(sc.group_size), sc.temperature,
                              limits.max_response_tokens,
                              MixSeed({config_.seed, static_cast<uint64_t>(stage_index),
                                       static_cast<uint64_t>(step), static_cast<uint64_t>(round)})));
    record->generate_s += Seconds(generate_start);
    SetActivity("verify");
    const absl::Time verify_start = absl::Now();
    ASSIGN_OR_RETURN(auto rewards, Score(stage, examples, responses, /*for_eval=*/false));
    record->verify_s += Seconds(verify_start);

    for (size_t i = 0; i < examples.size(); ++i) {
      std::vector<double>& group = rewards[i];
      std::vector<bool> overlong(group.size(), false);
      for (size_t j = 0; j < group.size(); ++j) {
        const auto& r = responses[i][j];
        overlong[j] = r.finish_reason() == cascade::v1::FINISH_REASON_LENGTH;
        if (overlong[j]) ++truncated;
        if (overlong[j] && sc.overlong == OverlongPolicy::kZeroReward) group[j] = 0.0;
        length_sum += r.token_ids_size();
        ++responses_total;
        all_rewards.push_back(group[j]);
      }
      ++groups_total;
      const bool all_max = std::all_of(group.begin(), group.end(), [](double r) { return r >= 1.0; });
      const bool all_zero = std::all_of(group.begin(), group.end(), [](double r) { return r <= 0.0; });
      if (all_max) solved_all.push_back(examples[i]->id);
      if (all_zero) solved_none.push_back(examples[i]->id);
      if (sc.filtering.enabled && !HasRewardVariance(group)) continue;
      if (groups_kept >= sc.batch_prompts) continue;
      ++groups_kept;
      const std::vector<double> advantages = GroupAdvantages(group);
      for (size_t j = 0; j < group.size(); ++j) {
        if (overlong[j] && sc.overlong == OverlongPolicy::kExclude) continue;
        const auto& r = responses[i][j];
        if (r.token_ids_size() == 0) continue;
        auto* sequence = request.add_sequences();
        for (int32_t id : prompt_ids[i]) {
          sequence->add_token_ids(id);
          sequence->add_loss_mask(0);
        }
        for (int k = 0; k < r.token_ids_size(); ++k) {
          sequence->add_token_ids(r.token_ids(k));
          sequence->add_loss_mask(1);
          sequence->add_rollout_logprobs(r.logprobs(k));
        }
        sequence->set_advantage(static_cast<float>(advantages[j]));
      }
    }
    if (!sc.filtering.enabled || groups_kept >= sc.batch_prompts || round == sc.filtering.max_refill_rounds) break;
    picked = stage.sampler->Refill(step, round + 1, sc.batch_prompts - groups_kept, seen, retired);
    if (picked.empty()) break;
    seen.insert(picked.begin(), picked.end());
  }

  MeanStd(all_rewards, &record->reward_mean, &record->reward_std);
  record->filtered_fraction =
      groups_total > 0 ? static_cast<double>(groups_total - groups_kept) / static_cast<double>(groups_total) : 0.0;
  record->response_tokens_mean = responses_total > 0 ? length_sum / static_cast<double>(responses_total) : 0.0;
  record->truncation_rate =
      responses_total > 0 ? static_cast<double>(truncated) / static_cast<double>(responses_total) : 0.0;
  record->extra["groups"] = groups_total;
  record->extra["groups_kept"] = groups_kept;
  record->extra["sampling_rounds"] = rounds;
  record->extra["max_response_tokens"] = limits.max_response_tokens;
  if (skipped_long > 0) record->extra["prompts_over_limit"] = skipped_long;
  metrics_->tokens->Add({{"stage", sc.name}}).Increment(length_sum);

  *trained_out = request.sequences_size() > 0;
  if (*trained_out) {
    SetActivity("train");
    const absl::Time train_start = absl::Now();
    ASSIGN_OR_RETURN(cascade::v1::TrainStepResponse trained,
                     services_.learner->TrainStep(request, absl::Seconds(config_.services.call_timeout_s)));
    record->train_s = Seconds(train_start);
    version_ = trained.policy_version();
    record->loss = trained.loss();
    record->entropy = trained.entropy();
    record->logprob_mismatch = trained.logprob_mismatch();
    record->extra["learning_rate"] = trained.learning_rate();
    record->extra["grad_norm"] = trained.grad_norm();
    if (trained.optimizer_reset()) record->extra["optimizer_reset"] = true;
    record->extra["train_tokens"] = trained.tokens();
    SetActivity("sync");
    RETURN_IF_ERROR(EnsurePublished(&record->sync_s));
  } else {
    // Every group was filtered out: no gradient, the policy stays as it is.
    record->extra["skipped_train"] = true;
  }

  // Epoch end: retire prompts that every sample solved (or none did).
  const int64_t epoch_now = stage.sampler->EpochOf(step, sc.batch_prompts);
  const int64_t epoch_next = stage.sampler->EpochOf(step + 1, sc.batch_prompts);
  if (epoch_next != epoch_now && (sc.filtering.retire_solved || sc.filtering.retire_unsolved)) {
    std::vector<std::string> retire;
    if (sc.filtering.retire_solved) retire.insert(retire.end(), solved_all.begin(), solved_all.end());
    if (sc.filtering.retire_unsolved) retire.insert(retire.end(), solved_none.begin(), solved_none.end());
    if (!retire.empty()) RETURN_IF_ERROR(store_->RetirePrompts(job_id_, stage_index, step + 1, retire));
    record->extra["retired"] = retire.size();
  }
  return absl::OkStatus();
}

absl::Status CascadeRunner::RunStage(int stage_index, int64_t first_step) {
  Stage& stage = *stages_[stage_index];
  const StageConfig& sc = *stage.config;
  metrics_->stage_index->Set(stage_index);
  StageRecord stage_record;
  stage_record.stage_index = stage_index;
  stage_record.name = sc.name;
  stage_record.domain = sc.domain;
  stage_record.kind = std::string(StageKindName(sc.kind));
  stage_record.total_steps = stage.total_steps;
  stage_record.state = "running";
  {
    ASSIGN_OR_RETURN(auto existing, store_->Stages(job_id_));
    for (const StageRecord& s : existing) {
      if (s.stage_index == stage_index) stage_record.start_version = s.start_version;
    }
  }
  if (first_step == 0) {
    stage_record.start_version = version_;
    if (stage_index > 0) {
      // The previous stage's end evaluation measured these same weights: it
      // is this stage's starting point.
      ASSIGN_OR_RETURN(auto evals, store_->Evals(job_id_));
      for (EvalRecord e : evals) {
        if (e.after_stage_index == stage_index - 1 && e.at_step == stages_[stage_index - 1]->total_steps) {
          e.after_stage_index = stage_index;
          e.at_step = -1;
          RETURN_IF_ERROR(store_->AddEval(job_id_, e));
        }
      }
    }
  }
  RETURN_IF_ERROR(store_->PutStage(job_id_, stage_record));
  CASCADE_LOG(INFO) << "stage " << stage_index << " \"" << sc.name << "\" (" << StageKindName(sc.kind)
                    << ", " << sc.domain << "): steps " << first_step << ".." << stage.total_steps;

  for (int64_t step = first_step; step < stage.total_steps; ++step) {
    if (cancelled_.load()) return absl::CancelledError("job cancelled");
    Progress p = progress();
    p.stage_index = stage_index;
    p.stage_name = sc.name;
    p.stage_kind = std::string(StageKindName(sc.kind));
    p.step = step;
    p.total_steps = stage.total_steps;
    p.activity = "step";
    Publish(p);

    // The previous step's bookkeeping (its row, checkpoint pruning, metrics)
    // happened after its time was taken: it counts as this step's "other".
    const absl::Time start = absl::Now() - absl::Seconds(bookkeeping_s_);
    StepRecord record;
    record.stage_index = stage_index;
    record.step = step;
    bool trained = true;
    if (sc.kind == StageKind::kSft) {
      RETURN_IF_ERROR(SftStep(stage_index, step, &record));
    } else {
      RETURN_IF_ERROR(GrpoStep(stage_index, step, &record, &trained));
    }
    record.policy_version = version_;
    const bool last = step + 1 == stage.total_steps;
    // Evaluation and checkpoint before the step's row: a crash in between
    // rolls both back with the step (job_store.h, resume protocol).
    if (last || (sc.eval_every > 0 && (step + 1) % sc.eval_every == 0)) {
      const absl::Time eval_start = absl::Now();
      RETURN_IF_ERROR(Evaluate(stage_index, step + 1));
      record.extra["eval_s"] = Seconds(eval_start);
    }
    std::optional<CheckpointRecord> checkpoint;
    if (last || (sc.checkpoint_every > 0 && (step + 1) % sc.checkpoint_every == 0)) {
      const absl::Time checkpoint_start = absl::Now();
      ASSIGN_OR_RETURN(checkpoint, Checkpoint(stage_index, step + 1));
      record.extra["checkpoint_s"] = Seconds(checkpoint_start);
    }
    // Evaluation and checkpoints are cadence work, not step work: the
    // breakdown covers the step itself.
    record.total_s = Seconds(start) - record.extra.value("eval_s", 0.0) - record.extra.value("checkpoint_s", 0.0);
    record.created_at = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
    const absl::Time bookkeeping_start = absl::Now();
    RETURN_IF_ERROR(store_->RecordStep(job_id_, record, checkpoint));
    if (checkpoint.has_value()) RETURN_IF_ERROR(PruneCheckpoints());
    metrics_->Observe(sc.name, record);
    bookkeeping_s_ = Seconds(bookkeeping_start);
    step_seconds_total_ += Seconds(start);
    ++steps_timed_;

    p.step = step + 1;
    p.has_last_step = true;
    p.last_step = record;
    int64_t remaining = stage.total_steps - step - 1;
    for (size_t k = stage_index + 1; k < stages_.size(); ++k) remaining += stages_[k]->total_steps;
    p.eta_s = remaining * step_seconds_total_ / static_cast<double>(steps_timed_);
    p.activity = "step done";
    CASCADE_LOG(INFO) << FormatProgressLine(p, stages_.size());
    Publish(p);
  }
  stage_record.end_version = version_;
  stage_record.state = "done";
  RETURN_IF_ERROR(store_->PutStage(job_id_, stage_record));
  RETURN_IF_ERROR(store_->AddEvent(job_id_, "info",
                                   StrCat("stage ", sc.name, " done at policy version ", version_)));
  return absl::OkStatus();
}

absl::Status CascadeRunner::Run() {
  RETURN_IF_ERROR(Prepare());
  std::error_code error;
  fs::create_directories(fs::path(config_.output_dir) / "checkpoints", error);
  if (error) return absl::InternalError(StrCat(config_.output_dir, ": ", error.message()));
  ASSIGN_OR_RETURN(const std::vector<StageRecord> existing, store_->Stages(job_id_));
  for (size_t i = 0; i < stages_.size(); ++i) {
    const bool present = std::any_of(existing.begin(), existing.end(), [i](const StageRecord& s) {
      return s.stage_index == static_cast<int>(i);
    });
    if (present) continue;
    StageRecord record;
    record.stage_index = static_cast<int>(i);
    record.name = config_.stages[i].name;
    record.domain = config_.stages[i].domain;
    record.kind = std::string(StageKindName(config_.stages[i].kind));
    record.total_steps = stages_[i]->total_steps;
    RETURN_IF_ERROR(store_->PutStage(job_id_, record));
  }

  int start_stage = 0;
  int64_t start_step = 0;
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> latest, store_->LatestCheckpoint(job_id_));
  if (latest.has_value()) {
    SetActivity("restore");
    ASSIGN_OR_RETURN(version_, services_.learner->LoadCheckpoint(
                                   latest->path, absl::Seconds(config_.services.call_timeout_s)));
    ASSIGN_OR_RETURN(int64_t removed, store_->RollBackTo(job_id_, *latest));
    RETURN_IF_ERROR(store_->AddEvent(
        job_id_, "info",
        StrCat("resumed from ", latest->path, " (stage ", latest->stage_index, ", ", latest->steps_done,
               " steps done, version ", version_, "); ", removed, " later step(s) will be redone")));
    start_stage = latest->stage_index;
    start_step = latest->steps_done;
    if (start_step >= stages_[start_stage]->total_steps) {
      ++start_stage;
      start_step = 0;
    }
  } else {
    if (!config_.services.learner.empty()) {
      // A remote learner holds whatever it trained last (another job's
      // policy); this job starts from its own model, as a new version.
      SetActivity("load model");
      ASSIGN_OR_RETURN(version_, services_.learner->LoadModel(config_.model,
                                                              absl::Seconds(config_.services.call_timeout_s)));
      RETURN_IF_ERROR(store_->AddEvent(job_id_, "info",
                                       StrCat("learner loaded ", config_.model, " as version ", version_)));
    }
    // A fresh start: the baseline evaluation, then checkpoint 0, the first
    // resume point (evaluations redone after a crash replace their rows).
    ASSIGN_OR_RETURN(version_, services_.learner->SaveCheckpoint(
                                   (fs::path(config_.output_dir) / "checkpoints" / CheckpointName(0, 0, "start")).string(),
                                   absl::Seconds(config_.services.call_timeout_s)));
    // Registering rollout replicas happens outside; the first publish brings
    // them to this version.
    RETURN_IF_ERROR(Evaluate(/*after_stage_index=*/0, /*at_step=*/-1));
    CheckpointRecord start;
    start.stage_index = 0;
    start.steps_done = 0;
    start.policy_version = version_;
    start.path = (fs::path(config_.output_dir) / "checkpoints" / CheckpointName(0, 0, "start")).string();
    start.weights_sha256 = WeightsSha256(start.path);
    RETURN_IF_ERROR(store_->RecordCheckpoint(job_id_, start));
  }
  for (int i = start_stage; i < static_cast<int>(stages_.size()); ++i) {
    RETURN_IF_ERROR(RunStage(i, i == start_stage ? start_step : 0));
  }
  SetActivity("done");
  return absl::OkStatus();
}

}  // namespace cascade::orchestrator
