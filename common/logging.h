// Minimal leveled logging to stderr (this Abseil has no absl/log).
//
//   CASCADE_LOG(INFO) << "verifier listening on " << port;
//
// Each line: "I1126 12:41:20.123456 verifier] message". Thread-safe: a line
// is formatted in full and written with one call.
#ifndef CASCADE_COMMON_LOGGING_H_
#define CASCADE_COMMON_LOGGING_H_

#include <sstream>
#include <string>

#include "absl/strings/string_view.h"

namespace cascade {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Process name shown in every line (set once from main).
void SetLogProcessName(absl::string_view name);
// Lines below this level are dropped. Default: kInfo; CASCADE_LOG_LEVEL env
// ("debug", "info", "warning", "error") overrides at start-up.
void SetMinLogLevel(LogLevel level);
bool LogLevelEnabled(LogLevel level);

class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace cascade

#define CASCADE_LOG_LEVEL_DEBUG ::cascade::LogLevel::kDebug
#define CASCADE_LOG_LEVEL_INFO ::cascade::LogLevel::kInfo
#define CASCADE_LOG_LEVEL_WARNING ::cascade::LogLevel::kWarning
#define CASCADE_LOG_LEVEL_ERROR ::cascade::LogLevel::kError

#define CASCADE_LOG(level)                                        \
  if (!::cascade::LogLevelEnabled(CASCADE_LOG_LEVEL_##level)) {   \
  } else                                                          \
    ::cascade::LogLine(CASCADE_LOG_LEVEL_##level).stream()

#endif  // CASCADE_COMMON_LOGGING_H_
