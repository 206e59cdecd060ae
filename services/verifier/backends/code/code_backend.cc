#include "services/verifier/backends/code/code_backend.h"

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "services/verifier/backends/code/code_text.h"

namespace cascade::verifier {

int64_t CodeBackendStats::verdict_count(absl::string_view verdict) const {
  for (size_t i = 0; i < kTestVerdicts.size(); ++i) {
    if (kTestVerdicts[i] == verdict) return verdicts[i].load();
  }
  return 0;
}

namespace {

constexpr size_t kStderrInDetails = 2048;

// Admission control: a bounded number of running items and a bounded wait
// queue. Check() runs on the caller's thread once admitted, so no work is
// handed between threads; the "pool" is the set of admitted callers.
class Admission {
 public:
  Admission(int max_active, int max_queued, CodeBackendStats* stats)
      : max_active_(max_active), max_queued_(max_queued), stats_(stats) {}

  // OK once admitted; RESOURCE_EXHAUSTED when the queue is full;
  // DEADLINE_EXCEEDED when `cancel` expires while waiting.
  absl::Status Acquire(const CancelToken& cancel) {
    std::unique_lock<std::mutex> lock(mu_);
    if (active_ < max_active_ && waiting_ == 0) {
      ++active_;
      stats_->active.store(active_);
      return absl::OkStatus();
    }
    if (waiting_ >= max_queued_) {
      stats_->rejected.fetch_add(1);
      return absl::ResourceExhaustedError(absl::StrCat(
          "code backend is saturated: ", active_, " items running and ", waiting_,
          " queued (max_queued ", max_queued_, "); retry later"));
    }
    ++waiting_;
    stats_->queue_depth.store(waiting_);
    while (active_ >= max_active_) {
      if (cancel.Expired()) {
        --waiting_;
        stats_->queue_depth.store(waiting_);
        return absl::DeadlineExceededError("deadline passed while waiting for a sandbox slot");
      }
      // Wake up now and then to notice an explicit Cancel().
      absl::Time until = std::min(cancel.deadline(), absl::Now() + absl::Milliseconds(100));
      freed_.wait_until(lock, absl::ToChronoTime(until));
    }
    --waiting_;
    ++active_;
    stats_->queue_depth.store(waiting_);
    stats_->active.store(active_);
    return absl::OkStatus();
  }

  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --active_;
      stats_->active.store(active_);
    }
    freed_.notify_one();
  }

 private:
  const int max_active_;
  const int max_queued_;
  CodeBackendStats* const stats_;
  std::mutex mu_;
  std::condition_variable freed_;
  int active_ = 0;   // guarded by mu_
  int waiting_ = 0;  // guarded by mu_
};

struct ItemLimits {
  double time_s;
  int64_t memory_bytes;
  int64_t output_bytes;
};

struct ItemOptions {
  CompareMode compare = CompareMode::kTokens;
  double tolerance = 1e-6;
  bool run_all = false;
};

std::string Truncate(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return absl::StrCat(text.substr(0, max), "\n[... ", text.size() - max, " more bytes]");
}

// Turns valid UTF-8 or not into something nlohmann can serialize.
std::string SafeText(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('?');
    }
  }
  return out;
}

class CodeBackendImpl : public CodeBackend {
 public:
  CodeBackendImpl(CodeBackendOptions options, std::unique_ptr<Sandbox> sandbox)
      : options_(std::move(options)),
        sandbox_(std::move(sandbox)),
        languages_(MakeLanguages(options_.languages)),
        stats_(options_.stats ? options_.stats : std::make_shared<CodeBackendStats>()),
        admission_(sandbox_->max_concurrency(),
                   options_.max_queued >= 0 ? options_.max_queued
                                            : 4 * sandbox_->max_concurrency(),
                   stats_.get()) {}

  absl::string_view name() const override { return "code"; }
  const SandboxCapabilities& capabilities() const override { return sandbox_->capabilities(); }
  const CodeBackendStats& stats() const override { return *stats_; }
  const Sandbox& sandbox() const override { return *sandbox_; }

  absl::StatusOr<CheckResult> Check(const Json& item, const JsonPath& path,
                                    const CancelToken& cancel) const override {
    absl::StatusOr<CheckResult> result = CheckItem(item, path, cancel);
    stats_->checks.fetch_add(1);
    if (result.status().code() == absl::StatusCode::kDeadlineExceeded) {
      stats_->deadline_exceeded.fetch_add(1);
    }
    return result;
  }

 private:
  const Language* FindLanguage(absl::string_view name) const {
    std::string lower = absl::AsciiStrToLower(name);
    for (const auto& language : languages_) {
      for (const std::string& alias : language->aliases()) {
        if (alias == lower) return language.get();
      }
    }
    return nullptr;
  }

  absl::StatusOr<ItemLimits> ParseLimits(const Json& item, const JsonPath& path) const {
    ItemLimits limits{options_.default_time_s, options_.default_memory_mb << 20,
                      options_.default_output_kb << 10};
    auto it = item.find("limits");
    if (it == item.end() || it->is_null()) return limits;
    JsonPath at = path.Key("limits");
    RETURN_IF_ERROR(ExpectObject(*it, at));
    ASSIGN_OR_RETURN(double time_s, GetNumberOr(*it, "time_s", at, options_.default_time_s));
    ASSIGN_OR_RETURN(double memory_mb,
                     GetNumberOr(*it, "memory_mb", at, options_.default_memory_mb));
    ASSIGN_OR_RETURN(double output_kb,
                     GetNumberOr(*it, "output_kb", at, options_.default_output_kb));
    if (!(time_s > 0)) return at.Key("time_s").Error("must be positive");
    if (!(memory_mb > 0)) return at.Key("memory_mb").Error("must be positive");
    if (!(output_kb > 0)) return at.Key("output_kb").Error("must be positive");
    limits.time_s = std::min(time_s, options_.max_time_s);
    limits.memory_bytes =
        static_cast<int64_t>(std::min<double>(memory_mb, options_.max_memory_mb) * (1 << 20));
    limits.output_bytes =
        static_cast<int64_t>(std::min<double>(output_kb, options_.max_output_kb) * 1024);
    return limits;
  }

  absl::StatusOr<ItemOptions> ParseOptions(const Json& item, const JsonPath& path) const {
    ItemOptions parsed;
    auto it = item.find("options");
    if (it == item.end() || it->is_null()) return parsed;
    JsonPath at = path.Key("options");
    RETURN_IF_ERROR(ExpectObject(*it, at));
    ASSIGN_OR_RETURN(std::string compare, GetStringOr(*it, "compare", at, "tokens"));
    absl::StatusOr<CompareMode> mode = ParseCompareMode(compare);
    if (!mode.ok()) return at.Key("compare").Error(mode.status().message());
    parsed.compare = *mode;
    ASSIGN_OR_RETURN(parsed.tolerance, GetNumberOr(*it, "tolerance", at, 1e-6));
    if (!(parsed.tolerance >= 0)) return at.Key("tolerance").Error("must be >= 0");
    ASSIGN_OR_RETURN(parsed.run_all, GetBoolOr(*it, "run_all", at, false));
    return parsed;
  }

  // The verdict of one finished test run.
  absl::string_view Classify(const RunResult& run, const TestCase& test,
                             const ItemOptions& item_options, int64_t memory_bytes) const {
    if (run.output_exceeded) return kVerdictOutputLimit;
    if (run.oom_killed) return kVerdictMemoryLimit;
    if (run.wall_timeout || run.cpu_timeout) {
      // A program pinned at its memory limit can spend its time in reclaim
      // before the OOM killer acts; the limit it hit first is memory.
      if (run.peak_memory_bytes >= memory_bytes / 10 * 9) return kVerdictMemoryLimit;
      return kVerdictTimeLimit;
    }
    if (run.term_signal == SIGSYS) return kVerdictBlocked;
    if (!run.exited || run.exit_code != 0) {
      // Allocation failures under RLIMIT_AS (no memory cgroup) or a cgroup
      // that made malloc fail rather than killing.
      if (absl::StrContains(run.stderr_data, "MemoryError") ||
          absl::StrContains(run.stderr_data, "std::bad_alloc")) {
        return kVerdictMemoryLimit;
      }
      return kVerdictRuntimeError;
    }
    return OutputsMatch(run.stdout_data, test.output, item_options.compare,
                        item_options.tolerance)
               ? kVerdictAccepted
               : kVerdictWrongAnswer;
  }

  void Record(const Language& language, bool compile, absl::string_view verdict,
              const RunResult& run) const {
    stats_->runs.fetch_add(1);
    if (compile) stats_->compiles.fetch_add(1);
    stats_->run_wall_micros.fetch_add(static_cast<int64_t>(run.wall_s * 1e6));
    for (size_t i = 0; i < kTestVerdicts.size(); ++i) {
      if (kTestVerdicts[i] == verdict) stats_->verdicts[i].fetch_add(1);
    }
    if (options_.on_run) {
      options_.on_run(CodeRunEvent{language.name(), compile, verdict, run.wall_s, run.cpu_s,
                                   run.peak_memory_bytes});
    }
  }

  static Json RunDetails(const RunResult& run) {
    Json details = {{"time_s", run.cpu_s},
                    {"wall_s", run.wall_s},
                    {"memory_kb", run.peak_memory_bytes / 1024}};
    if (run.exited) {
      details["exit_code"] = run.exit_code;
    } else if (run.term_signal != 0) {
      details["signal"] = run.term_signal;
      const char* name = sigabbrev_np(run.term_signal);
      if (name != nullptr) details["signal_name"] = absl::StrCat("SIG", name);
    }
    return details;
  }

  absl::StatusOr<RunResult> RunInSandbox(const RunSpec& spec, const CancelToken& cancel) const {
    absl::StatusOr<RunResult> run = sandbox_->Run(spec, &cancel);
    if (!run.ok()) {
      if (run.status().code() == absl::StatusCode::kInternal) {
        stats_->sandbox_failures.fetch_add(1);
      }
      return run.status();
    }
    if (run->cancelled) {
      return absl::DeadlineExceededError("check ran past its time limit");
    }
    return run;
  }

  absl::StatusOr<CheckResult> CheckItem(const Json& item, const JsonPath& path,
                                        const CancelToken& cancel) const {
    // 1. Parse the item before queueing: malformed items cost no slot.
    RETURN_IF_ERROR(ExpectObject(item, path));
    ASSIGN_OR_RETURN(std::string response, GetString(item, "response", path));
    ASSIGN_OR_RETURN(std::string language_name, GetString(item, "language", path));
    const Language* language = FindLanguage(language_name);
    if (language == nullptr) {
      std::vector<std::string> names;
      for (const auto& l : languages_) names.emplace_back(l->name());
      return path.Key("language").Error(absl::StrCat("unknown language \"", language_name,
                                                     "\" (expected one of: ",
                                                     absl::StrJoin(names, ", "), ")"));
    }
    auto tests_it = item.find("tests");
    if (tests_it == item.end()) return path.Error("missing required field \"tests\"");
    ASSIGN_OR_RETURN(std::vector<TestCase> tests, ParseTests(*tests_it, path.Key("tests")));
    ASSIGN_OR_RETURN(ItemLimits limits, ParseLimits(item, path));
    ASSIGN_OR_RETURN(ItemOptions item_options, ParseOptions(item, path));

    // 2. Wait for a slot.
    RETURN_IF_ERROR(admission_.Acquire(cancel));
    struct Releaser {
      Admission* admission;
      ~Releaser() { admission->Release(); }
    } releaser{&admission_};

    // 3. Write the program into a fresh code directory.
    CheckResult result;
    result.verdict = std::string(kVerdictIncorrect);
    Json& details = result.details;
    details["language"] = std::string(language->name());
    details["tests_total"] = tests.size();
    std::string program = ExtractProgram(response, language->aliases());
    ASSIGN_OR_RETURN(std::string code_dir, sandbox_->MakeCodeDir());
    struct DirRemover {
      const Sandbox* sandbox;
      std::string dir;
      ~DirRemover() { sandbox->RemoveCodeDir(dir); }
    } remover{sandbox_.get(), code_dir};
    {
      std::ofstream out(code_dir + "/" + language->source_file(), std::ios::binary);
      out << program;
      if (!out) return absl::InternalError(absl::StrCat("cannot write into ", code_dir));
    }
    auto fail_compile = [&](Json compile) {
      compile["verdict"] = std::string(kVerdictCompileError);
      details["compile"] = compile;
      details["first_failure"] = {{"test", nullptr},
                                  {"verdict", std::string(kVerdictCompileError)}};
      details["tests_run"] = 0;
      details["passed"] = 0;
      result.reward = 0.0;
      return result;
    };
    if (absl::StripAsciiWhitespace(program).empty()) {
      return fail_compile({{"reason", "no program in the response"}});
    }

    // 4. Compile once per response.
    std::vector<std::string> compile_command = language->compile_command();
    if (!compile_command.empty()) {
      RunSpec spec;
      spec.argv = compile_command;
      spec.env = language->environment();
      spec.code_dir = code_dir;
      spec.code_dir_writable = true;
      spec.cpu_time_s = options_.compile_time_s;
      spec.wall_time_s = options_.compile_time_s * 1.5;
      spec.memory_bytes = options_.compile_memory_mb << 20;
      spec.max_processes = 32;
      spec.stdout_bytes = 1 << 20;
      spec.stderr_bytes = 1 << 20;
      spec.file_bytes = 256LL << 20;
      ASSIGN_OR_RETURN(RunResult run, RunInSandbox(spec, cancel));
      bool ok = run.exited && run.exit_code == 0 && !run.output_exceeded;
      Record(*language, /*compile=*/true, ok ? kVerdictAccepted : kVerdictCompileError, run);
      if (!ok) {
        Json compile = RunDetails(run);
        compile["reason"] = run.oom_killed                          ? "memory_limit"
                            : (run.wall_timeout || run.cpu_timeout) ? "time_limit"
                            : run.output_exceeded                   ? "output_limit"
                                                                    : "compiler_error";
        compile["stderr"] = SafeText(Truncate(run.stderr_data, kStderrInDetails));
        return fail_compile(compile);
      }
      details["compile"] = RunDetails(run);
    }

    // 5. Run the tests.
    Json per_test = Json::array();
    size_t passed = 0;
    bool first_failure_set = false;
    for (size_t i = 0; i < tests.size(); ++i) {
      RETURN_IF_ERROR(cancel.Check());
      RunSpec spec;
      spec.argv = language->run_command();
      spec.env = language->environment();
      spec.stdin_data = tests[i].input;
      spec.code_dir = code_dir;
      spec.cpu_time_s = limits.time_s;
      spec.wall_time_s = limits.time_s * options_.wall_time_factor + options_.wall_time_slack_s;
      spec.memory_bytes = limits.memory_bytes;
      spec.stdout_bytes = limits.output_bytes;
      ASSIGN_OR_RETURN(RunResult run, RunInSandbox(spec, cancel));
      absl::string_view verdict = Classify(run, tests[i], item_options, limits.memory_bytes);
      if (i == 0 && verdict == kVerdictRuntimeError && language->IsSyntaxError(run)) {
        Record(*language, /*compile=*/true, kVerdictCompileError, run);
        Json compile = RunDetails(run);
        compile["reason"] = "syntax_error";
        compile["stderr"] = SafeText(Truncate(run.stderr_data, kStderrInDetails));
        return fail_compile(compile);
      }
      Record(*language, /*compile=*/false, verdict, run);
      Json test_details = RunDetails(run);
      test_details["test"] = i;
      test_details["verdict"] = std::string(verdict);
      if (verdict == kVerdictAccepted) {
        ++passed;
      } else {
        if (verdict == kVerdictRuntimeError && !run.stderr_data.empty()) {
          test_details["stderr"] = SafeText(Truncate(run.stderr_data, kStderrInDetails));
        }
        if (!first_failure_set) {
          details["first_failure"] = test_details;
          first_failure_set = true;
        }
      }
      per_test.push_back(std::move(test_details));
      if (verdict != kVerdictAccepted && !item_options.run_all) break;
    }
    details["tests"] = std::move(per_test);
    details["tests_run"] = details["tests"].size();
    details["passed"] = passed;
    if (passed == tests.size()) {
      result.reward = 1.0;
      result.verdict = std::string(kVerdictCorrect);
    } else {
      result.reward = item_options.run_all ? static_cast<double>(passed) / tests.size() : 0.0;
    }
    return result;
  }

  const CodeBackendOptions options_;
  std::unique_ptr<Sandbox> sandbox_;
  std::vector<std::unique_ptr<Language>> languages_;
  std::shared_ptr<CodeBackendStats> stats_;
  mutable Admission admission_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CodeBackend>> NewCodeBackend(CodeBackendOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Sandbox> sandbox, Sandbox::Create(options.sandbox));
  return std::unique_ptr<CodeBackend>(new CodeBackendImpl(std::move(options), std::move(sandbox)));
}

}  // namespace cascade::verifier
