#include "services/reward_model/reward_model_train.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <ostream>
#include <optional>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/json_util.h"
#include "common/status_macros.h"
#include "services/reward_model/reward_model_core.h"
#include "tokenizer/tokenizer.h"

namespace cascade::reward_model {
namespace {

namespace fs = std::filesystem;

struct TokenizedPair {
  std::vector<int32_t> chosen;
  std::vector<int32_t> rejected;
};

// The tokenizer files a model directory carries, copied into the output.
std::vector<std::string> TokenizerFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "vocab.json", "merges.txt", "generation_config.json"}) {
    fs::path p = fs::path(dir) / name;
    if (fs::exists(p)) files.push_back(p.string());
  }
  return files;
}

// Mean loss and accuracy of the pairs under the current weights.
absl::StatusOr<std::pair<double, double>> Evaluate(const RewardNet& net,
                                                   const std::vector<TokenizedPair>& pairs,
                                                   size_t batch) {
  double loss = 0.0, correct = 0.0;
  for (size_t begin = 0; begin < pairs.size(); begin += batch) {
    const size_t end = std::min(pairs.size(), begin + batch);
    std::vector<std::vector<int32_t>> rows;
    for (size_t i = begin; i < end; ++i) rows.push_back(pairs[i].chosen);
    for (size_t i = begin; i < end; ++i) rows.push_back(pairs[i].rejected);
    ASSIGN_OR_RETURN(std::vector<float> r, net.Score(rows));
    const size_t n = end - begin;
    for (size_t i = 0; i < n; ++i) {
      const double margin = static_cast<double>(r[i]) - r[n + i];
      // -log sigmoid(m) = log(1 + exp(-m)), computed without overflow.
      loss += margin > 0 ? std::log1p(std::exp(-margin)) : -margin + std::log1p(std::exp(margin));
      correct += margin > 0 ? 1.0 : 0.0;
    }
  }
  const double n = static_cast<double>(pairs.size());
  return std::make_pair(loss / n, correct / n);
}

}  // namespace

absl::StatusOr<std::vector<EpochReport>> TrainRewardModel(const TrainOptions& options,
                                                          std::ostream& progress) {
  if (!(options.holdout >= 0.0 && options.holdout < 1.0)) {
    return absl::InvalidArgumentError("--holdout must be in [0, 1)");
  }
  if (options.epochs < 1 || options.batch_pairs < 1 || !(options.learning_rate > 0)) {
    return absl::InvalidArgumentError("--epochs, --batch and --lr must be positive");
  }
  // 1. Pairs and tokenizer first: a bad file fails before any weight loads.
  ASSIGN_OR_RETURN(std::vector<PreferencePair> pairs, ReadPairsFile(options.pairs_path));
  const fs::path tokenizer_path = fs::path(options.model_dir) / "tokenizer.json";
  if (!fs::exists(tokenizer_path)) {
    return absl::FailedPreconditionError(
        absl::StrCat(options.model_dir, ": no tokenizer.json (the model directory must carry its tokenizer)"));
  }
  ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::FromFile(tokenizer_path.string()));
  std::vector<TokenizedPair> tokenized;
  tokenized.reserve(pairs.size());
  for (const PreferencePair& pair : pairs) {
    TokenizedPair t;
    auto chosen = RenderScoreItem(*tok, {pair.prompt, pair.chosen}, options.max_sequence_tokens);
    auto rejected = RenderScoreItem(*tok, {pair.prompt, pair.rejected}, options.max_sequence_tokens);
    if (!chosen.ok() || !rejected.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.pairs_path, ": line ", pair.line, ": ",
          (!chosen.ok() ? chosen.status() : rejected.status()).message()));
    }
    t.chosen = *std::move(chosen);
    t.rejected = *std::move(rejected);
    tokenized.push_back(std::move(t));
  }
  // 2. The held-out split, fixed by the seed.
  std::mt19937_64 rng(options.seed);
  std::shuffle(tokenized.begin(), tokenized.end(), rng);
  size_t heldout_n = static_cast<size_t>(std::llround(options.holdout * tokenized.size()));
  if (options.holdout > 0 && heldout_n == 0 && tokenized.size() >= 2) heldout_n = 1;
  if (heldout_n >= tokenized.size()) {
    return absl::InvalidArgumentError(absl::StrCat(options.pairs_path, ": ", tokenized.size(),
                                                   " pairs leave nothing to train on with --holdout ",
                                                   options.holdout));
  }
  std::vector<TokenizedPair> heldout(tokenized.begin(), tokenized.begin() + heldout_n);
  std::vector<TokenizedPair> train(tokenized.begin() + heldout_n, tokenized.end());

  // 3. The network: a reward model, or a causal LM that gets a fresh head.
  ASSIGN_OR_RETURN(std::unique_ptr<RewardNet> net,
                   RewardNet::Load(options.model_dir, options.net, /*allow_new_head=*/true, options.seed));
  if (!net->has_configured_pad()) {
    if (std::optional<int32_t> pad = tok->TokenId("<|endoftext|>")) net->set_pad_token_id(*pad);
  }

  // 4. Epochs of shuffled mini-batches; evaluation after each.
  std::vector<EpochReport> reports;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    std::shuffle(train.begin(), train.end(), rng);
    double loss_sum = 0.0, acc_sum = 0.0;
    size_t seen = 0;
    for (size_t begin = 0; begin < train.size(); begin += options.batch_pairs) {
      const size_t end = std::min(train.size(), begin + static_cast<size_t>(options.batch_pairs));
      std::vector<std::vector<int32_t>> chosen, rejected;
      for (size_t i = begin; i < end; ++i) {
        chosen.push_back(train[i].chosen);
        rejected.push_back(train[i].rejected);
      }
      ASSIGN_OR_RETURN(TrainStepResult step, net->TrainStep(chosen, rejected, options.learning_rate));
      loss_sum += step.loss * (end - begin);
      acc_sum += step.accuracy * (end - begin);
      seen += end - begin;
    }
    EpochReport report;
    report.epoch = epoch;
    report.train_loss = loss_sum / seen;
    report.train_accuracy = acc_sum / seen;
    report.heldout_pairs = heldout.size();
    if (!heldout.empty()) {
      ASSIGN_OR_RETURN(auto eval, Evaluate(*net, heldout, 64));
      report.heldout_loss = eval.first;
      report.heldout_accuracy = eval.second;
    }
    Json line = {{"epoch", report.epoch},
                 {"train_loss", report.train_loss},
                 {"train_accuracy", report.train_accuracy},
                 {"heldout_loss", report.heldout_loss},
                 {"heldout_accuracy", report.heldout_accuracy},
                 {"heldout_pairs", report.heldout_pairs}};
    progress << line.dump() << std::endl;
    reports.push_back(report);
  }
  // 5. Hugging Face output with the tokenizer files.
  RETURN_IF_ERROR(net->Save(options.out_dir, TokenizerFiles(options.model_dir)));
  return reports;
}

int RunTrainCommand(int argc, char** argv, std::ostream& out, std::ostream& err) {
  TrainOptions options;
  int seed = 0;
  FlagSet flags("reward_model train",
                "Bradley–Terry training, loss -log sigmoid(r_chosen - r_rejected), on\n"
                "{\"prompt\", \"chosen\", \"rejected\"} JSONL lines (prompt: a string or a list of\n"
                "chat messages). --model is a reward model or a causal LM (which gets a fresh\n"
                "scalar head). One JSON line per epoch with held-out pairwise accuracy goes\n"
                "to stdout; the model is written to --out in Hugging Face format.");
  flags.AddString("pairs", &options.pairs_path, "preference pairs, JSONL", /*required=*/true);
  flags.AddString("model", &options.model_dir, "starting model directory", /*required=*/true);
  flags.AddString("out", &options.out_dir, "output directory", /*required=*/true);
  flags.AddInt("epochs", &options.epochs, "passes over the training pairs");
  flags.AddDouble("lr", &options.learning_rate, "Adam learning rate");
  flags.AddInt("batch", &options.batch_pairs, "pairs per optimizer step");
  flags.AddDouble("holdout", &options.holdout, "fraction of pairs held out for evaluation");
  flags.AddInt("seed", &seed, "seed of the split, the shuffles and a fresh head");
  flags.AddInt("threads", &options.net.num_threads, "CPU threads (0 = all)");
  flags.AddString("device", &options.net.device, "cpu, cuda or cuda:N");
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  if (!positional->empty()) {
    return flags.ExitForParseError(
        absl::InvalidArgumentError("unexpected argument \"" + positional->front() + "\""));
  }
  options.seed = static_cast<uint64_t>(seed);
  auto reports = TrainRewardModel(options, out);
  if (!reports.ok()) {
    err << "reward_model train: " << reports.status().message() << "\n";
    return absl::IsInvalidArgument(reports.status()) && reports.status().message().find("--") == 0
               ? kExitUsage
               : kExitFailure;
  }
  err << "reward_model train: wrote " << options.out_dir << "\n";
  return kExitOk;
}

}  // namespace cascade::reward_model
