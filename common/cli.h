// A small command-line flag parser with the project's exit-code contract:
// --help prints usage and exits 0; bad usage prints the error and exits 2;
// failures exit 1 (DESIGN.md §4).
//
// Accepts `--name value`, `--name=value`, and bare `--flag` for booleans
// (`--flag=false` too); `-` and `_` in a name are interchangeable
// (`--metrics-port` is `--metrics_port`). Everything else is positional.
//
//   FlagSet flags("verifier eval", "Scores a JSONL file offline.");
//   std::string input;
//   flags.AddString("input", &input, "JSONL file to score", /*required=*/true);
//   auto positional = flags.Parse(argc, argv, /*first=*/2);
//   if (!positional.ok()) return flags.ExitForParseError(positional.status());
#ifndef CASCADE_COMMON_CLI_H_
#define CASCADE_COMMON_CLI_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cascade {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// The "help was requested" outcome of Parse().
absl::Status HelpRequested();
bool IsHelpRequested(const absl::Status& status);

class FlagSet {
 public:
  FlagSet(std::string command, std::string summary);

  void AddString(const std::string& name, std::string* target, const std::string& help,
                 bool required = false);
  void AddInt(const std::string& name, int* target, const std::string& help);
  void AddDouble(const std::string& name, double* target, const std::string& help);
  void AddBool(const std::string& name, bool* target, const std::string& help);

  // Parses argv[first..argc); returns the positional arguments. Errors are
  // INVALID_ARGUMENT naming the flag; --help gives HelpRequested().
  absl::StatusOr<std::vector<std::string>> Parse(int argc, char** argv, int first = 1);

  std::string Usage() const;

  // Prints usage (help) or the error to the right stream; returns the exit code.
  int ExitForParseError(const absl::Status& status) const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    bool is_bool = false;
    bool required = false;
    bool seen = false;
    std::function<absl::Status(const std::string&)> set;
  };
  Flag* Find(const std::string& name);

  std::string command_;
  std::string summary_;
  std::vector<Flag> flags_;
};

}  // namespace cascade

#endif  // CASCADE_COMMON_CLI_H_
