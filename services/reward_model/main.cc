// reward_model: Bradley–Terry reward model and yes/no judge.
//
//   reward_model train --pairs PAIRS.jsonl --model DIR --out DIR [--epochs N] [--lr X] ...
//   reward_model score --model DIR --input IN.jsonl [--output OUT.jsonl]
//   reward_model judge --judge_model DIR --input IN.jsonl [--output OUT.jsonl]
//   reward_model serve [--model DIR] [--judge_model DIR] [--address A] [--metrics_port M]
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server.h"
#include "common/status_macros.h"
#include "services/reward_model/reward_model_core.h"
#include "services/reward_model/reward_model_service.h"
#include "services/reward_model/reward_model_train.h"

namespace cascade::reward_model {
namespace {

constexpr char kTopUsage[] =
    "usage: reward_model <command> [flags]\n\n"
    "Bradley–Terry reward model and yes/no judge for Cascade.\n\n"
    "commands:\n"
    "  train   train a reward model on preference pairs (Hugging Face output)\n"
    "  score   score {\"prompt\", \"response\"} JSONL lines offline\n"
    "  judge   P(yes) of {\"question\"} JSONL lines offline\n"
    "  serve   run the RewardModel gRPC service\n\n"
    "Run 'reward_model <command> --help' for its flags.\n";

// Reads every line of `path`; "-" is stdin.
absl::StatusOr<std::string> ReadInput(const std::string& path) {
  std::stringstream buffer;
  if (path == "-") {
    buffer << std::cin.rdbuf();
    return buffer.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status WriteOutput(const std::string& path, const std::string& text) {
  if (path.empty()) {
    std::cout << text;
    std::cout.flush();
    return absl::OkStatus();
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

// Non-blank lines of a JSONL text, parsed, each with its 1-based number.
absl::StatusOr<std::vector<std::pair<int, Json>>> ParseLines(const std::string& text,
                                                            const std::string& source) {
  std::vector<std::pair<int, Json>> lines;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++n;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(source, ": line ", n);
    ASSIGN_OR_RETURN(Json item, ParseJson(line, where));
    RETURN_IF_ERROR(ExpectObject(item, JsonPath(where)));
    lines.emplace_back(n, std::move(item));
  }
  return lines;
}

int OfflineCommand(int argc, char** argv, bool judge) {
  std::string model_dir, input_path, output_path;
  RewardModelOptions options;
  FlagSet flags(judge ? "reward_model judge" : "reward_model score",
                judge ? "P(yes) of each {\"question\"} line: {\"probability_yes\": p} lines out."
                      : "Reward of each {\"prompt\", \"response\"} line (prompt: a string or chat\n"
                        "messages): {\"score\": r} lines out, same order.");
  flags.AddString(judge ? "judge_model" : "model", &model_dir,
                  judge ? "causal LM directory" : "reward model directory", /*required=*/true);
  flags.AddString("input", &input_path, "input JSONL file ('-' for stdin)", /*required=*/true);
  flags.AddString("output", &output_path, "output JSONL file (default: stdout)");
  flags.AddInt("threads", &options.net.num_threads, "CPU threads (0 = all)");
  flags.AddString("device", &options.net.device, "cpu, cuda or cuda:N");
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  const std::string name = judge ? "reward_model judge: " : "reward_model score: ";

  auto text = ReadInput(input_path);
  if (!text.ok()) {
    std::cerr << name << text.status().message() << "\n";
    return kExitFailure;
  }
  const std::string source = input_path == "-" ? "<stdin>" : input_path;
  auto lines = ParseLines(*text, source);
  if (!lines.ok()) {
    std::cerr << name << lines.status().message() << "\n";
    return kExitFailure;
  }
  std::vector<ScoreItem> items;
  std::vector<std::string> questions;
  for (const auto& [n, item] : *lines) {
    JsonPath path(absl::StrCat(source, ": line ", n));
    absl::Status st;
    if (judge) {
      auto q = GetString(item, "question", path);
      if (q.ok()) questions.push_back(*q);
      st = q.status();
    } else {
      auto prompt = item.find("prompt");
      auto response = GetString(item, "response", path);
      if (prompt == item.end()) {
        st = path.Key("prompt").Error("required field is missing");
      } else if (!response.ok()) {
        st = response.status();
      } else {
        auto messages = ParsePrompt(*prompt, path.Key("prompt"));
        if (messages.ok()) items.push_back({*std::move(messages), *response});
        st = messages.status();
      }
    }
    if (!st.ok()) {
      std::cerr << name << st.message() << "\n";
      return kExitFailure;
    }
  }
  auto core = RewardModelCore::Load(judge ? "" : model_dir, judge ? model_dir : "", options);
  if (!core.ok()) {
    std::cerr << name << core.status().message() << "\n";
    return kExitFailure;
  }
  std::string out;
  if (judge) {
    auto p = (*core)->Judge(questions);
    if (!p.ok()) {
      std::cerr << name << p.status().message() << "\n";
      return kExitFailure;
    }
    for (double v : *p) out += Json{{"probability_yes", v}}.dump() + "\n";
  } else {
    auto scores = (*core)->Score(items);
    if (!scores.ok()) {
      std::cerr << name << scores.status().message() << "\n";
      return kExitFailure;
    }
    for (float s : *scores) out += Json{{"score", s}}.dump() + "\n";
  }
  if (absl::Status st = WriteOutput(output_path, out); !st.ok()) {
    std::cerr << name << st.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

int Serve(int argc, char** argv) {
  BlockTerminationSignals();
  std::string model_dir, judge_dir;
  std::string address = "0.0.0.0:50055";
  int metrics_port = 9105;
  int max_requests = 4;
  int token_budget = 8192;
  double max_connection_age_s = 120.0;
  RewardModelOptions options;
  FlagSet flags("reward_model serve",
                "Runs the RewardModel gRPC service (Score with --model, Judge with\n"
                "--judge_model) until SIGTERM.");
  flags.AddString("model", &model_dir, "reward model directory (sequence classification)");
  flags.AddString("judge_model", &judge_dir, "causal LM directory for Judge");
  flags.AddString("address", &address, "host:port to listen on (port 0 = any free port)");
  flags.AddInt("metrics_port", &metrics_port, "Prometheus /metrics port (-1 = off, 0 = any)");
  flags.AddInt("max_requests", &max_requests, "calls processed at once");
  flags.AddInt("token_budget", &token_budget, "tokens per forward batch");
  flags.AddInt("threads", &options.net.num_threads, "CPU threads (0 = all)");
  flags.AddString("device", &options.net.device, "cpu, cuda or cuda:N");
  flags.AddDouble("max_connection_age_s", &max_connection_age_s, kMaxConnectionAgeHelp);
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  if (model_dir.empty() && judge_dir.empty()) {
    return flags.ExitForParseError(
        absl::InvalidArgumentError("--model, --judge_model or both are required"));
  }
  options.token_budget = token_budget;
  auto core = RewardModelCore::Load(model_dir, judge_dir, options);
  if (!core.ok()) {
    CASCADE_LOG(ERROR) << core.status().message();
    return kExitFailure;
  }
  RewardModelServiceImpl service(core->get(), {.max_concurrent_requests = max_requests});
  const ServerOptions server_options{
      .address = address, .max_connection_age = MaxConnectionAgeFromSeconds(max_connection_age_s)};
  return ServeUntilTerminated("reward_model", server_options, metrics_port, {&service},
                              std::string(model_dir.empty() ? "" : " with a reward model") +
                                  (judge_dir.empty() ? "" : " with a judge"));
}

}  // namespace
}  // namespace cascade::reward_model

int main(int argc, char** argv) {
  cascade::SetLogProcessName("reward_model");
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "train") return cascade::reward_model::RunTrainCommand(argc, argv, std::cout, std::cerr);
  if (command == "score") return cascade::reward_model::OfflineCommand(argc, argv, /*judge=*/false);
  if (command == "judge") return cascade::reward_model::OfflineCommand(argc, argv, /*judge=*/true);
  if (command == "serve") return cascade::reward_model::Serve(argc, argv);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << cascade::reward_model::kTopUsage;
    return cascade::kExitOk;
  }
  std::cerr << (command.empty() ? "reward_model: missing command\n"
                                : "reward_model: unknown command \"" + command + "\"\n")
            << cascade::reward_model::kTopUsage;
  return cascade::kExitUsage;
}
