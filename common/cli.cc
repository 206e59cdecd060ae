#include "common/cli.h"

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cascade {

namespace {
constexpr absl::string_view kHelpMarker = "cascade:help-requested";
}  // namespace

absl::Status HelpRequested() { return absl::CancelledError(kHelpMarker); }

bool IsHelpRequested(const absl::Status& status) {
  return status.code() == absl::StatusCode::kCancelled && status.message() == kHelpMarker;
}

FlagSet::FlagSet(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void FlagSet::AddString(const std::string& name, std::string* target, const std::string& help,
                        bool required) {
  flags_.push_back({name, help, *target, false, required, false,
                    [target](const std::string& value) {
                      *target = value;
                      return absl::OkStatus();
                    }});
}

void FlagSet::AddInt(const std::string& name, int* target, const std::string& help) {
  flags_.push_back({name, help, absl::StrCat(*target), false, false, false,
                    [target, name](const std::string& value) {
                      if (!absl::SimpleAtoi(value, target)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", name, ": expected an integer, got \"", value, "\""));
                      }
                      return absl::OkStatus();
                    }});
}

void FlagSet::AddDouble(const std::string& name, double* target, const std::string& help) {
  flags_.push_back({name, help, absl::StrCat(*target), false, false, false,
                    [target, name](const std::string& value) {
                      if (!absl::SimpleAtod(value, target)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", name, ": expected a number, got \"", value, "\""));
                      }
                      return absl::OkStatus();
                    }});
}

void FlagSet::AddBool(const std::string& name, bool* target, const std::string& help) {
  flags_.push_back({name, help, *target ? "true" : "false", true, false, false,
                    [target, name](const std::string& value) {
                      if (!absl::SimpleAtob(value, target)) {
                        return absl::InvalidArgumentError(
                            absl::StrCat("--", name, ": expected true or false, got \"", value,
                                         "\""));
                      }
                      return absl::OkStatus();
                    }});
}

namespace {

// "metrics_port", "metrics-port": one flag. Binaries differ in the spelling
// they document; users should not have to remember which.
std::string Canonical(std::string name) {
  for (char& c : name) {
    if (c == '_') c = '-';
  }
  return name;
}

}  // namespace

FlagSet::Flag* FlagSet::Find(const std::string& name) {
  const std::string wanted = Canonical(name);
  for (Flag& flag : flags_) {
    if (Canonical(flag.name) == wanted) return &flag;
  }
  return nullptr;
}

absl::StatusOr<std::vector<std::string>> FlagSet::Parse(int argc, char** argv, int first) {
  std::vector<std::string> positional;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") return HelpRequested();
    if (arg == "--") {
      for (++i; i < argc; ++i) positional.emplace_back(argv[i]);
      break;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Flag* flag = Find(name);  // either spelling: _ and - are one
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (flag->is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
    }
    absl::Status set = flag->set(value);
    if (!set.ok()) return set;
    flag->seen = true;
  }
  for (const Flag& flag : flags_) {
    if (flag.required && !flag.seen) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag.name, " is required"));
    }
  }
  return positional;
}

std::string FlagSet::Usage() const {
  std::string text = absl::StrCat("usage: ", command_, " [flags]\n\n", summary_,
                                  "\n\nflags (- and _ in a flag's name are interchangeable):\n");
  for (const Flag& flag : flags_) {
    std::string left = absl::StrCat("  --", flag.name, flag.is_bool ? "" : " VALUE");
    absl::StrAppendFormat(&text, "%-28s %s", left, flag.help);
    if (flag.required) {
      text += " (required)";
    } else if (!flag.default_text.empty()) {
      absl::StrAppend(&text, " (default: ", flag.default_text, ")");
    }
    text += "\n";
  }
  return text;
}

int FlagSet::ExitForParseError(const absl::Status& status) const {
  if (IsHelpRequested(status)) {
    std::cout << Usage();
    return kExitOk;
  }
  std::cerr << command_ << ": " << status.message() << "\n(run with --help for usage)\n";
  return kExitUsage;
}

}  // namespace cascade
