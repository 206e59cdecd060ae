// Runs a binary of this build as a child process, for tests of the CLI
// contract (exit codes, stderr) and of servers (start, SIGTERM, drain).
//
// Not thread-safe; one object per child.
#ifndef CASCADE_TESTS_UTIL_SUBPROCESS_H_
#define CASCADE_TESTS_UTIL_SUBPROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace cascade::testing {

// Output of a finished command.
struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv to completion (killing it after `timeout`), feeding `stdin_text`.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_text = "",
                         absl::Duration timeout = absl::Seconds(120));

// A long-running child (a server). Its stderr goes to a temp file that
// WaitForStderr() polls.
class Subprocess {
 public:
  explicit Subprocess(const std::vector<std::string>& argv);
  ~Subprocess();  // SIGKILLs the child if still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits until stderr contains `needle`; returns the stderr text so far,
  // or nullopt on timeout or exit.
  std::optional<std::string> WaitForStderr(const std::string& needle, absl::Duration timeout);
  std::string Stderr() const;
  void Signal(int signal);
  // Waits for exit; returns the exit code (128 + signal) or nullopt on timeout.
  std::optional<int> Wait(absl::Duration timeout);

 private:
  pid_t pid_ = -1;
  std::string stderr_path_;
  bool exited_ = false;
  int exit_code_ = -1;
};

// The port from a "listening on port N" log line, or -1.
int ParseListeningPort(const std::string& log);

// The port from a "metrics on :N/metrics" log line, or -1.
int ParseMetricsPort(const std::string& log);

// A loopback TCP port that was free a moment ago (for a child told to listen
// on it, e.g. a rendezvous master that cannot report its port); -1 on error.
int FreeLoopbackPort();

// The body and headers of http://127.0.0.1:port/metrics ("" when unreachable).
std::string HttpGetMetrics(int port);

// The value of one sample line ("name{labels} value") in /metrics text, or -1.
double MetricValue(const std::string& metrics, const std::string& sample);

}  // namespace cascade::testing

#endif  // CASCADE_TESTS_UTIL_SUBPROCESS_H_
