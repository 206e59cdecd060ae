// rollout: generation replicas for Cascade.
//
//   rollout tokenize --tokenizer PATH --input IN.jsonl [--decode]
//   rollout score --model DIR --input IN.jsonl [--output OUT.jsonl]
//   rollout serve --model DIR [--address A] [--metrics_port M] [--version V]
//
// Exit status: 0 success, 1 failure, 2 usage error.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/logging.h"
#include "absl/strings/str_cat.h"
#include "common/metrics.h"
#include "common/server.h"
#include "model/cli.h"
#include "model/runtime.h"
#include "services/rollout/heap_tuning.h"
#include "services/rollout/learner_registration.h"
#include "services/rollout/rollout_core.h"
#include "services/rollout/rollout_service.h"
#include "tokenizer/tokenize_command.h"
#include "tokenizer/tokenizer.h"

namespace cascade::rollout {
namespace {

constexpr char kTopUsage[] =
    "usage: rollout <command> [flags]\n\n"
    "Generation replicas for Cascade.\n\n"
    "commands:\n"
    "  tokenize   {\"text\"} JSONL lines to {\"ids\"} with a model's tokenizer (--decode: reverse)\n"
    "  score      teacher-forced per-token log-probs of {\"ids\"} JSONL lines\n"
    "  serve      the Rollout gRPC service (Generate, UpdateWeights, GetState)\n\n"
    "Run 'rollout <command> --help' for its flags.\n";

int Tokenize(int argc, char** argv) {
  std::string tokenizer_path;
  std::string input_path;
  bool decode = false;
  FlagSet flags("rollout tokenize",
                "Encodes {\"text\": ...} JSONL lines to {\"ids\": [...]} lines (same order) with a\n"
                "Hugging Face tokenizer.json, a model directory, or GPT-2 encoder.json +\n"
                "vocab.bpe. --decode reads {\"ids\"} lines and writes {\"text\"} lines.\n"
                "A malformed line gets an {\"error\"} line in its place and is named on\n"
                "stderr; the exit status is then 1.");
  flags.AddString("tokenizer", &tokenizer_path,
                  "tokenizer.json, or a directory holding it (or encoder.json + vocab.bpe)",
                  /*required=*/true);
  flags.AddString("input", &input_path, "input JSONL file ('-' for stdin)", /*required=*/true);
  flags.AddBool("decode", &decode, "ids to text instead of text to ids");
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());

  auto tokenizer = tokenizer::Tokenizer::FromFile(tokenizer_path);
  if (!tokenizer.ok()) {
    std::cerr << "rollout tokenize: " << tokenizer.status().message() << "\n";
    return kExitFailure;
  }
  std::ifstream file;
  std::istream* in = &std::cin;
  if (input_path != "-") {
    file.open(input_path, std::ios::binary);
    if (!file) {
      std::cerr << "rollout tokenize: " << input_path << ": cannot open file\n";
      return kExitFailure;
    }
    in = &file;
  }
  absl::Status status = tokenizer::RunTokenizeCommand(
      **tokenizer, *in, std::cout, std::cerr, decode, input_path == "-" ? "<stdin>" : input_path);
  std::cout.flush();
  if (!status.ok()) {
    std::cerr << "rollout tokenize: " << status.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

int Serve(int argc, char** argv) {
  BlockTerminationSignals();
  KeepLargeAllocationsInHeap();
  std::string model_dir;
  std::string address = "0.0.0.0:50053";
  int metrics_port = 9103;
  std::string device = "cpu";
  std::string dtype;
  int threads = 0;
  int max_batch_tokens = 16384;
  int max_queued_requests = 256;
  int version = 0;
  std::string learner, advertise;
  FlagSet flags("rollout serve",
                "Serves generation from a Hugging Face model directory until SIGTERM. New\n"
                "weights arrive through UpdateWeights; requests name the version they need.");
  flags.AddString("model", &model_dir, "model directory (config.json, *.safetensors, tokenizer.json)",
                  /*required=*/true);
  flags.AddString("address", &address, "host:port to listen on (port 0 = any free port)");
  flags.AddInt("metrics_port", &metrics_port, "Prometheus /metrics port (-1 = off, 0 = any)");
  flags.AddString("device", &device, "cpu, cuda or cuda:N");
  flags.AddString("dtype", &dtype, "float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)");
  flags.AddInt("threads", &threads, "CPU intra-op threads (0 = every core)");
  flags.AddInt("max_batch_tokens", &max_batch_tokens,
               "token budget of the running batch: sum of prompt + max_new_tokens over its "
               "sequences (sequences join it between decoding steps while it fits)");
  flags.AddInt("max_queued_requests", &max_queued_requests,
               "requests waiting before RESOURCE_EXHAUSTED");
  flags.AddInt("version", &version, "policy version of the weights in --model (0 = base model)");
  flags.AddString("learner", &learner,
                  "learner host:port to register with once listening (RegisterRollout, retried "
                  "until it answers); empty: the learner lists this replica itself");
  flags.AddString("advertise", &advertise,
                  "this replica's host:port as the learner reaches it (default: the --address "
                  "host, or this machine's host name when it is a wildcard, and the bound port)");
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  if (max_batch_tokens < 1 || max_queued_requests < 1 || version < 0) {
    return flags.ExitForParseError(absl::InvalidArgumentError(
        "--max_batch_tokens and --max_queued_requests must be positive, --version non-negative"));
  }

  auto loaded = model::Model::Load(model_dir, {.device = device, .dtype = dtype, .num_threads = threads});
  if (!loaded.ok()) {
    CASCADE_LOG(ERROR) << "rollout serve: " << loaded.status().message();
    return kExitFailure;
  }
  // Response.text needs the model's tokenizer; without one it stays empty.
  std::unique_ptr<tokenizer::Tokenizer> tok;
  if (std::filesystem::exists(std::filesystem::path(model_dir) / "tokenizer.json")) {
    auto t = tokenizer::Tokenizer::FromFile(model_dir);
    if (!t.ok()) {
      CASCADE_LOG(ERROR) << "rollout serve: " << t.status().message();
      return kExitFailure;
    }
    tok = std::move(*t);
  } else {
    CASCADE_LOG(WARNING) << model_dir << " has no tokenizer.json: responses carry ids only";
  }
  RolloutCore core(std::move(*loaded), version,
                   {.max_batch_tokens = max_batch_tokens, .max_queued_requests = max_queued_requests});
  RolloutServiceOptions service_options;
  if (tok != nullptr) {
    service_options.decode = [t = tok.get()](const std::vector<int64_t>& ids) {
      std::vector<int32_t> narrow(ids.begin(), ids.end());
      return t->Decode(narrow);
    };
  }
  RolloutServiceImpl service(&core, service_options);
  std::unique_ptr<LearnerRegistration> registration;
  const int code = ServeUntilTerminated(
      "rollout", {.address = address}, metrics_port, {&service},
      absl::StrCat(" serving version ", version), [&](int port) {
        if (learner.empty()) return;
        registration = std::make_unique<LearnerRegistration>(LearnerRegistrationOptions{
            .learner = learner,
            .advertised = advertise.empty() ? DefaultAdvertisedAddress(address, port) : advertise});
        registration->Start();
      });
  registration.reset();  // stops a registration still retrying
  return code;
}

}  // namespace
}  // namespace cascade::rollout

int main(int argc, char** argv) {
  cascade::SetLogProcessName("rollout");
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "tokenize") return cascade::rollout::Tokenize(argc, argv);
  if (command == "score") {
    std::vector<std::string> args(argv + 2, argv + argc);
    return cascade::model::RunScoreCommand(args, std::cout, std::cerr);
  }
  if (command == "serve") return cascade::rollout::Serve(argc, argv);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << cascade::rollout::kTopUsage;
    return cascade::kExitOk;
  }
  std::cerr << (command.empty() ? "rollout: missing command\n"
                                : "rollout: unknown command \"" + command + "\"\n")
            << cascade::rollout::kTopUsage;
  return cascade::kExitUsage;
}
