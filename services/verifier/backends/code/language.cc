#include "services/verifier/backends/code/language.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cascade::verifier {

std::vector<std::string> Language::environment() const {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp", "TMPDIR=/tmp"};
}

namespace {

class PythonLanguage : public Language {
 public:
  explicit PythonLanguage(std::string interpreter) : interpreter_(std::move(interpreter)) {}
  absl::string_view name() const override { return "python"; }
  std::vector<std::string> aliases() const override {
    return {"python", "python3", "py", "py3"};
  }
  std::string source_file() const override { return "main.py"; }
  std::vector<std::string> run_command() const override {
    return {interpreter_, absl::StrCat(kCodeDirInside, "/main.py")};
  }
  std::vector<std::string> environment() const override {
    std::vector<std::string> env = Language::environment();
    // The code directory is read-only; do not even try to write .pyc files.
    env.push_back("PYTHONDONTWRITEBYTECODE=1");
    env.push_back("PYTHONHASHSEED=0");
    return env;
  }
  // A parse error is printed without a traceback; errors raised while running
  // (including SyntaxError from eval) come with one.
  bool IsSyntaxError(const RunResult& run) const override {
    const std::string& err = run.stderr_data;
    return run.exited && run.exit_code == 1 && !absl::StrContains(err, "Traceback (most recent") &&
           (absl::StrContains(err, "SyntaxError:") || absl::StrContains(err, "IndentationError:") ||
            absl::StrContains(err, "TabError:"));
  }

 private:
  std::string interpreter_;
};

class CppLanguage : public Language {
 public:
  CppLanguage(std::string compiler, std::vector<std::string> flags)
      : compiler_(std::move(compiler)), flags_(std::move(flags)) {}
  absl::string_view name() const override { return "cpp"; }
  std::vector<std::string> aliases() const override {
    return {"cpp", "c++", "cpp17", "c++17", "cxx", "cc"};
  }
  std::string source_file() const override { return "main.cpp"; }
  std::vector<std::string> compile_command() const override {
    std::vector<std::string> command = {compiler_};
    command.insert(command.end(), flags_.begin(), flags_.end());
    command.push_back("-o");
    command.push_back(absl::StrCat(kCodeDirInside, "/main"));
    command.push_back(absl::StrCat(kCodeDirInside, "/main.cpp"));
    return command;
  }
  std::vector<std::string> run_command() const override {
    return {absl::StrCat(kCodeDirInside, "/main")};
  }

 private:
  std::string compiler_;
  std::vector<std::string> flags_;
};

}  // namespace

std::vector<std::unique_ptr<Language>> MakeLanguages(const LanguageOptions& options) {
  std::vector<std::unique_ptr<Language>> languages;
  languages.push_back(std::make_unique<PythonLanguage>(options.python));
  languages.push_back(std::make_unique<CppLanguage>(options.gxx, options.cxx_flags));
  return languages;
}

}  // namespace cascade::verifier
