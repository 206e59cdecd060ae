// Soak: thousands of sandbox runs at full concurrency, then a check that
// nothing leaked: processes, file descriptors, threads, temp files, cgroups,
// memory of this process.
//
// CASCADE_SOAK_RUNS sets the number of test runs (default 1000, CI size);
// e.g. CASCADE_SOAK_RUNS=20000 for a long soak. Runs inside
// sandbox_safety_net, like the adversarial tests.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "services/verifier/backends/code/code_backend.h"

namespace cascade::verifier {
namespace {

constexpr int kUidBase = 64000;

int CountEntries(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

int64_t StatusField(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1);
  }
  return -1;
}

int SandboxProcesses(int uid_end) {
  int found = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Uid:", 0) != 0) continue;
      int uid = std::atoi(line.c_str() + 4);
      if (uid >= kUidBase && uid < uid_end) ++found;
      break;
    }
  }
  return found;
}

TEST_CASE("soak: thousands of runs at full concurrency leak nothing") {
  if (std::getenv("CASCADE_SAFETY_NET") == nullptr) {
    FAIL("run this binary through sandbox_safety_net (ctest does)");
  }
  const char* env = std::getenv("CASCADE_SOAK_RUNS");
  const int runs = env != nullptr ? std::max(10, std::atoi(env)) : 1000;
  constexpr int kTestsPerItem = 10;
  const int items = (runs + kTestsPerItem - 1) / kTestsPerItem;

  CodeBackendOptions options;
  options.sandbox.uid_base = kUidBase;
  options.max_queued = 1 << 20;
  auto created = NewCodeBackend(options);
  REQUIRE(created.ok());
  CodeBackend& backend = **created;
  const int concurrency = backend.sandbox().max_concurrency();

  Json tests = Json::array();
  for (int t = 0; t < kTestsPerItem; ++t) {
    tests.push_back({{"input", std::to_string(t) + "\n"}, {"output", std::to_string(2 * t) + "\n"}});
  }
  // A mix: accepted, wrong answer, runtime error, a short timeout now and then.
  auto item_for = [&](int i) {
    std::string code = "print(int(input()) * 2)";
    if (i % 7 == 3) code = "print(int(input()) * 2 + 1)";
    if (i % 11 == 5) code = "raise SystemExit(4)";
    if (i % 29 == 13) code = "while True: pass";
    return Json{{"response", code},
                {"language", "python"},
                {"tests", tests},
                {"limits", {{"time_s", 0.3}}},
                {"options", {{"run_all", true}}}};
  };

  // Warm up so that one-time allocations do not count as leaks.
  {
    CancelToken cancel(absl::Now() + absl::Minutes(1));
    REQUIRE(backend.Check(item_for(0), JsonPath("warmup"), cancel).ok());
  }
  const int fds_before = CountEntries("/proc/self/fd");
  const int64_t rss_before_kb = StatusField("VmRSS");

  std::atomic<int> next{0}, failures{0}, correct{0};
  auto worker = [&] {
    while (true) {
      int i = next.fetch_add(1);
      if (i >= items) return;
      CancelToken cancel(absl::Now() + absl::Minutes(5));
      auto result = backend.Check(item_for(i), JsonPath("soak"), cancel);
      if (!result.ok()) {
        failures.fetch_add(1);
        UNSCOPED_INFO("item " << i << ": " << result.status().message());
      } else if (result->verdict == "correct") {
        correct.fetch_add(1);
      }
    }
  };
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * concurrency; ++t) threads.emplace_back(worker);
  for (auto& thread : threads) thread.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const int64_t total_runs = backend.stats().runs.load() - kTestsPerItem;

  WARN("soak: " << total_runs << " runs in " << seconds << " s ("
                << total_runs / seconds << " runs/s on " << concurrency << " slots), "
                << correct.load() << "/" << items << " items correct, RSS "
                << rss_before_kb << " -> " << StatusField("VmRSS") << " kB");
  CHECK(failures.load() == 0);
  CHECK(total_runs >= runs);
  CHECK(backend.stats().sandbox_failures.load() == 0);
  // Every verdict kind in the mix showed up.
  CHECK(backend.stats().verdict_count("accepted") > 0);
  CHECK(backend.stats().verdict_count("wrong_answer") > 0);
  CHECK(backend.stats().verdict_count("runtime_error") > 0);
  CHECK(backend.stats().verdict_count("time_limit") > 0);

  CHECK(CountEntries("/proc/self/fd") == fds_before);
  CHECK(StatusField("Threads") == 1 + 0);  // workers joined; only the main thread
  CHECK(SandboxProcesses(kUidBase + concurrency) == 0);
  CHECK(CountEntries(backend.sandbox().work_root()) == 0);
  for (const std::string& dir : backend.sandbox().cgroup_dirs()) {
    int run_dirs = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.is_directory()) ++run_dirs;
    }
    CHECK(run_dirs == 0);
  }
  // Memory: allow allocator slack, not growth with the number of runs.
  CHECK(StatusField("VmRSS") - rss_before_kb < 32 * 1024);
}

}  // namespace
}  // namespace cascade::verifier
