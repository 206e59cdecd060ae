// learner: the trainable policy of Cascade.
//
//   learner init --arch {qwen3,qwen2,llama} ... --out DIR
//
// Training steps, checkpoints and weight publishing build on the model
// runtime in later work.
#include <iostream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/logging.h"
#include "model/cli.h"

namespace {

constexpr char kTopUsage[] =
    "usage: learner <command> [flags]\n\n"
    "The trainable policy of Cascade.\n\n"
    "commands:\n"
    "  init   write a fresh random Hugging Face-format model directory\n\n"
    "Run 'learner <command> --help' for its flags.\n";

}  // namespace

int main(int argc, char** argv) {
  cascade::SetLogProcessName("learner");
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "init") {
    std::vector<std::string> args(argv + 2, argv + argc);
    return cascade::model::RunInitCommand(args, std::cout, std::cerr);
  }
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kTopUsage;
    return cascade::kExitOk;
  }
  std::cerr << (command.empty() ? "learner: missing command\n"
                                : "learner: unknown command \"" + command + "\"\n")
            << kTopUsage;
  return cascade::kExitUsage;
}
