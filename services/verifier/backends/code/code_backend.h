// The verifier's `code` backend: runs a model-written program against
// stdin/stdout tests in the sandbox (sandbox.h).
//
// Item fields (DESIGN.md §4):
//   response  raw code or a fenced block (```python / ```cpp)
//   language  "python" | "cpp" (aliases: python3, py, c++, cpp17, ...)
//   tests     [{input, output}] (also {inputs, outputs}, or either as a JSON or
//             Python-literal string)
//   limits    optional {time_s, memory_mb, output_kb}, clamped to the maxima below
//   options   optional {compare: "tokens" | "exact" | "float", tolerance,
//             run_all: false = stop at the first failure (reward 0 or 1);
//                      true = run every test, reward = pass fraction}
//
// Result: reward 1 and verdict "correct" when every test is accepted, else
// "incorrect" (reward 0, or the pass fraction with run_all). details holds
// the per-test verdicts (accepted, wrong_answer, time_limit, memory_limit,
// runtime_error, output_limit, compile_error, blocked) with time and memory,
// and `first_failure` names the first test that failed and its verdict.
//
// Concurrency: at most `max_concurrency` items run at once (one per CPU by
// default); up to `max_queued` more wait for a slot until their deadline;
// beyond that Check() fails at once with RESOURCE_EXHAUSTED (backpressure).
//
// Thread-safety: Check() is thread-safe.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_CODE_BACKEND_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_CODE_BACKEND_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/verifier/backends/backend.h"
#include "services/verifier/backends/code/language.h"
#include "services/verifier/backends/code/sandbox.h"

namespace cascade::verifier {

// Per-test verdicts.
inline constexpr absl::string_view kVerdictAccepted = "accepted";
inline constexpr absl::string_view kVerdictWrongAnswer = "wrong_answer";
inline constexpr absl::string_view kVerdictTimeLimit = "time_limit";
inline constexpr absl::string_view kVerdictMemoryLimit = "memory_limit";
inline constexpr absl::string_view kVerdictRuntimeError = "runtime_error";
inline constexpr absl::string_view kVerdictOutputLimit = "output_limit";
inline constexpr absl::string_view kVerdictCompileError = "compile_error";
inline constexpr absl::string_view kVerdictBlocked = "blocked";
inline constexpr std::array<absl::string_view, 8> kTestVerdicts = {
    kVerdictAccepted,     kVerdictWrongAnswer,  kVerdictTimeLimit,    kVerdictMemoryLimit,
    kVerdictRuntimeError, kVerdictOutputLimit,  kVerdictCompileError, kVerdictBlocked};

// Counters for metrics; the service reads them (e.g. into Prometheus).
// Thread-safe: plain atomics.
struct CodeBackendStats {
  std::atomic<int64_t> checks{0};            // items finished (any outcome)
  std::atomic<int64_t> runs{0};              // sandbox runs (compiles and tests)
  std::atomic<int64_t> compiles{0};
  std::atomic<int64_t> sandbox_failures{0};  // the sandbox itself failed
  std::atomic<int64_t> rejected{0};          // RESOURCE_EXHAUSTED: queue full
  std::atomic<int64_t> deadline_exceeded{0};
  std::atomic<int64_t> queue_depth{0};       // items waiting for a slot now
  std::atomic<int64_t> active{0};            // items running now
  std::atomic<int64_t> run_wall_micros{0};   // summed wall time of runs
  std::array<std::atomic<int64_t>, kTestVerdicts.size()> verdicts{};  // per kTestVerdicts

  int64_t verdict_count(absl::string_view verdict) const;
};

// One sandbox run, for histograms (run time, memory) and logs.
struct CodeRunEvent {
  absl::string_view language;
  bool compile = false;        // a compile step rather than a test
  absl::string_view verdict;   // a kTestVerdicts entry
  double wall_s = 0;
  double cpu_s = 0;
  int64_t peak_memory_bytes = 0;
};

struct CodeBackendOptions {
  SandboxOptions sandbox;            // max_concurrency there sizes the pool too
  LanguageOptions languages;
  // Items allowed to wait for a slot; -1 = 4 x max_concurrency.
  int max_queued = -1;
  // Defaults when an item gives no `limits`, and the maxima it may ask for.
  double default_time_s = 2.0;
  int64_t default_memory_mb = 512;
  int64_t default_output_kb = 16 << 10;
  double max_time_s = 30.0;
  int64_t max_memory_mb = 4096;
  int64_t max_output_kb = 256 << 10;
  // Wall-clock limit of a test = time_s * wall_time_factor + wall_time_slack_s
  // (a sleeping program uses no CPU but still holds a slot).
  double wall_time_factor = 2.0;
  double wall_time_slack_s = 0.5;
  // Compiler limits (a template bomb must end as compile_error).
  double compile_time_s = 20.0;
  int64_t compile_memory_mb = 2048;
  // Where counters go; null = kept privately (see stats()).
  std::shared_ptr<CodeBackendStats> stats;
  // Called after every sandbox run (from the worker thread); may be empty.
  std::function<void(const CodeRunEvent&)> on_run;
};

class CodeBackend : public Backend {
 public:
  ~CodeBackend() override = default;
  // Which protections are active, for the start-up log.
  virtual const SandboxCapabilities& capabilities() const = 0;
  virtual const CodeBackendStats& stats() const = 0;
  virtual const Sandbox& sandbox() const = 0;
};

// Creates the backend and its sandbox. Fails (FAILED_PRECONDITION, naming what
// is missing) when the host cannot contain untrusted code, unless
// options.sandbox.allow_degraded.
absl::StatusOr<std::unique_ptr<CodeBackend>> NewCodeBackend(CodeBackendOptions options);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_CODE_BACKEND_H_
