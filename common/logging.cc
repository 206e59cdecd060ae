#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cascade {
namespace {

LogLevel LevelFromEnvironment() {
  const char* env = std::getenv("CASCADE_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  std::string value = absl::AsciiStrToLower(env);
  if (value == "debug") return LogLevel::kDebug;
  if (value == "warning") return LogLevel::kWarning;
  if (value == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int> g_min_level{static_cast<int>(LevelFromEnvironment())};

absl::Mutex g_name_mu;
std::string* g_process_name ABSL_GUARDED_BY(g_name_mu) = new std::string("cascade");

char LevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return 'D';
    case LogLevel::kInfo: return 'I';
    case LogLevel::kWarning: return 'W';
    case LogLevel::kError: return 'E';
  }
  return '?';
}

}  // namespace

void SetLogProcessName(absl::string_view name) {
  absl::MutexLock lock(&g_name_mu);
  *g_process_name = std::string(name);
}

void SetMinLogLevel(LogLevel level) { g_min_level.store(static_cast<int>(level)); }

bool LogLevelEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed);
}

LogLine::~LogLine() {
  std::string name;
  {
    absl::MutexLock lock(&g_name_mu);
    name = *g_process_name;
  }
  std::string line;
  line += LevelLetter(level_);
  line += absl::FormatTime("%m%d %H:%M:%E6S", absl::Now(), absl::UTCTimeZone());
  line += ' ';
  line += name;
  line += "] ";
  line += stream_.str();
  line += '\n';
  // One write(2) per line keeps lines from different threads whole.
  size_t written = 0;
  while (written < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
}

}  // namespace cascade
