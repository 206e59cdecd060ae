// verifier: rule-based rewards for math, instruction following, code and
// SWE patches.
//
//   verifier serve [--port P] [--metrics_port M] [--backends math,if,swe]
//   verifier eval --backend B --input IN.jsonl [--output OUT.jsonl] [--jobs N] [--strict]
#include <fstream>
#include <iostream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server.h"
#include "services/verifier/backend_registry.h"
#include "services/verifier/verifier_core.h"
#include "services/verifier/verifier_eval.h"
#include "services/verifier/verifier_service.h"

namespace cascade::verifier {
namespace {

constexpr char kTopUsage[] =
    "usage: verifier <command> [flags]\n\n"
    "Rule-based rewards for Cascade: math answers, instruction following,\n"
    "sandboxed code and SWE patches.\n\n"
    "commands:\n"
    "  serve   run the Verifier gRPC service\n"
    "  eval    score a JSONL file offline, one output line per input line\n\n"
    "Run 'verifier <command> --help' for its flags.\n";

// --item_timeout_s > 0 replaces every backend's default limit.
void ApplyItemTimeoutFlag(double seconds, VerifierOptions& options) {
  if (seconds <= 0) return;
  options.default_item_timeout = absl::Seconds(seconds);
  options.backend_item_timeouts.clear();
}

int Eval(int argc, char** argv) {
  std::string backend;
  std::string input_path;
  std::string output_path;
  int jobs = 0;
  bool strict = false;
  double item_timeout_s = 0.0;
  FlagSet flags("verifier eval",
                "Scores a JSONL file offline: one {\"reward\", \"verdict\", \"details\"} line\n"
                "per input line, same order. Malformed lines are reported on stderr with\n"
                "their line number and scored as invalid_input; the exit status is 1 when\n"
                "any line was malformed, 0 otherwise.");
  flags.AddString("backend", &backend,
                  "backend: " + absl::StrJoin(KnownBackendNames(), ", "), /*required=*/true);
  flags.AddString("input", &input_path, "input JSONL file ('-' for stdin)", /*required=*/true);
  flags.AddString("output", &output_path, "output JSONL file (default: stdout)");
  flags.AddInt("jobs", &jobs, "worker threads (0 = one per core)");
  flags.AddBool("strict", &strict, "stop at the first malformed line (exit 1)");
  std::string judge_address;
  flags.AddString("judge_address", &judge_address,
                  "reward_model host:port for swe similarity=semantic (default: none)");
  flags.AddDouble("item_timeout_s", &item_timeout_s,
                  "time limit per item, seconds (0 = backend default: 10, code 120)");
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  if (!positional->empty()) {
    return flags.ExitForParseError(
        absl::InvalidArgumentError("unexpected argument \"" + positional->front() + "\""));
  }

  BackendConfig config;
  config.code_workers = jobs;
  config.judge_address = judge_address;
  auto backends = BuildBackends({backend}, config);
  if (!backends.ok()) return flags.ExitForParseError(backends.status());

  std::ifstream input_file;
  std::istream* in = &std::cin;
  if (input_path != "-") {
    input_file.open(input_path, std::ios::binary);
    if (!input_file) {
      std::cerr << "verifier eval: " << input_path << ": cannot open file\n";
      return kExitFailure;
    }
    in = &input_file;
  }
  std::ofstream output_file;
  std::ostream* out = &std::cout;
  if (!output_path.empty()) {
    output_file.open(output_path, std::ios::binary | std::ios::trunc);
    if (!output_file) {
      std::cerr << "verifier eval: " << output_path << ": cannot write file\n";
      return kExitFailure;
    }
    out = &output_file;
  }

  VerifierOptions options;
  options.workers_per_backend = jobs;
  ApplyItemTimeoutFlag(item_timeout_s, options);
  VerifierCore core(std::move(*backends), options);
  EvalOptions eval;
  eval.backend = backend;
  eval.input_name = input_path == "-" ? "<stdin>" : input_path;
  eval.strict = strict;
  auto summary = RunEval(core, eval, *in, *out, std::cerr);
  out->flush();
  if (!summary.ok()) {
    std::cerr << "verifier eval: " << summary.status().message() << "\n";
    return kExitFailure;
  }
  std::cerr << "verifier eval: " << FormatEvalSummary(*summary) << "\n";
  if (out == &output_file && !output_file) {
    std::cerr << "verifier eval: " << output_path << ": write failed\n";
    return kExitFailure;
  }
  return summary->malformed > 0 ? kExitFailure : kExitOk;
}

int Serve(int argc, char** argv) {
  BlockTerminationSignals();
  std::string address = "0.0.0.0:50052";
  int metrics_port = 9102;
  std::string backend_list = absl::StrJoin(KnownBackendNames(), ",");
  int workers = 0;
  int queue_capacity = 4096;
  int max_requests = 16;
  double item_timeout_s = 0.0;
  double max_connection_age_s = 120.0;
  std::string judge_address;
  FlagSet flags("verifier serve", "Runs the Verifier gRPC service until SIGTERM.");
  flags.AddString("judge_address", &judge_address,
                  "reward_model host:port for swe similarity=semantic (default: none)");
  flags.AddString("address", &address, "host:port to listen on (port 0 = any free port)");
  flags.AddInt("metrics_port", &metrics_port, "Prometheus /metrics port (-1 = off, 0 = any)");
  flags.AddString("backends", &backend_list, "comma-separated backends to serve");
  flags.AddInt("workers", &workers, "worker threads per backend (0 = one per core)");
  flags.AddInt("queue_capacity", &queue_capacity, "items queued per backend before RESOURCE_EXHAUSTED");
  flags.AddInt("max_requests", &max_requests, "Verify calls processed at once");
  flags.AddDouble("item_timeout_s", &item_timeout_s,
                  "default time limit per item, seconds (0 = backend default: 10, code 120)");
  flags.AddDouble("max_connection_age_s", &max_connection_age_s, kMaxConnectionAgeHelp);
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());

  BackendConfig config;
  config.code_workers = workers;
  config.judge_address = judge_address;
  std::vector<std::string> names = absl::StrSplit(backend_list, ',', absl::SkipEmpty());
  auto backends = BuildBackends(names, config);
  if (!backends.ok()) return flags.ExitForParseError(backends.status());

  VerifierOptions options;
  options.workers_per_backend = workers;
  options.queue_capacity = queue_capacity;
  ApplyItemTimeoutFlag(item_timeout_s, options);
  VerifierCore core(std::move(*backends), options);
  VerifierServiceImpl service(&core, {.max_concurrent_requests = max_requests});
  const ServerOptions server_options{
      .address = address, .max_connection_age = MaxConnectionAgeFromSeconds(max_connection_age_s)};
  return ServeUntilTerminated("verifier", server_options, metrics_port, {&service},
                              " with backends " + absl::StrJoin(names, ","));
}

}  // namespace
}  // namespace cascade::verifier

int main(int argc, char** argv) {
  cascade::SetLogProcessName("verifier");
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "eval") return cascade::verifier::Eval(argc, argv);
  if (command == "serve") return cascade::verifier::Serve(argc, argv);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << cascade::verifier::kTopUsage;
    return cascade::kExitOk;
  }
  std::cerr << (command.empty() ? "verifier: missing command\n"
                                : "verifier: unknown command \"" + command + "\"\n")
            << cascade::verifier::kTopUsage;
  return cascade::kExitUsage;
}
