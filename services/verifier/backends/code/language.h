// Language back-ends: how to turn a source file into a running program.
//
// Each language says where its source goes, how to compile it (if at all),
// and how to run it, all as absolute commands inside the sandbox, where the
// code directory is kCodeDirInside. Adding a language is one subclass and
// one line in MakeLanguages().
//
// Thread-safety: Language objects are immutable after construction.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_LANGUAGE_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_LANGUAGE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "services/verifier/backends/code/sandbox.h"

namespace cascade::verifier {

class Language {
 public:
  virtual ~Language() = default;
  // Canonical name ("python", "cpp").
  virtual absl::string_view name() const = 0;
  // Names users may give in `language` and fence tags that mark this
  // language's code blocks, lower case.
  virtual std::vector<std::string> aliases() const = 0;
  // File name of the source inside the code directory ("main.py").
  virtual std::string source_file() const = 0;
  // Compile command, or empty when the language is interpreted. It runs with
  // the code directory writable.
  virtual std::vector<std::string> compile_command() const { return {}; }
  // Command that runs the program.
  virtual std::vector<std::string> run_command() const = 0;
  // Environment of both commands ("KEY=VALUE").
  virtual std::vector<std::string> environment() const;
  // True when a failed run means the source did not even parse (interpreted
  // languages report syntax errors only when run).
  virtual bool IsSyntaxError(const RunResult& run) const { return false; }
};

struct LanguageOptions {
  std::string python = "/usr/bin/python3";  // not the PATH wrapper: ~78 ms per start
  std::string gxx = "/usr/bin/g++";
  std::vector<std::string> cxx_flags = {"-std=c++17", "-O2", "-pipe", "-fmax-errors=20"};
};

// Every supported language.
std::vector<std::unique_ptr<Language>> MakeLanguages(const LanguageOptions& options);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_LANGUAGE_H_
