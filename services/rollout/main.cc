// rollout: generation replicas for Cascade.
//
//   rollout tokenize --tokenizer PATH --input IN.jsonl [--decode]
//   rollout score --model DIR --input IN.jsonl [--output OUT.jsonl]
//
// The serving side (Generate, UpdateWeights) builds on the model runtime.
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/logging.h"
#include "model/cli.h"
#include "tokenizer/tokenize_command.h"
#include "tokenizer/tokenizer.h"

namespace cascade::rollout {
namespace {

constexpr char kTopUsage[] =
    "usage: rollout <command> [flags]\n\n"
    "Generation replicas for Cascade.\n\n"
    "commands:\n"
    "  tokenize   {\"text\"} JSONL lines to {\"ids\"} with a model's tokenizer (--decode: reverse)\n"
    "  score      teacher-forced per-token log-probs of {\"ids\"} JSONL lines\n\n"
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
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << cascade::rollout::kTopUsage;
    return cascade::kExitOk;
  }
  std::cerr << (command.empty() ? "rollout: missing command\n"
                                : "rollout: unknown command \"" + command + "\"\n")
            << cascade::rollout::kTopUsage;
  return cascade::kExitUsage;
}
