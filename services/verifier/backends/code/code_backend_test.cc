#include "services/verifier/backends/code/code_backend.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

namespace cascade::verifier {
namespace {

CodeBackend& SharedBackend() {
  static std::unique_ptr<CodeBackend> backend = [] {
    CodeBackendOptions options;
    options.max_queued = 1000;
    absl::StatusOr<std::unique_ptr<CodeBackend>> created = NewCodeBackend(options);
    if (!created.ok()) FAIL("code backend unavailable: " << created.status().message());
    return std::move(created).value();
  }();
  return *backend;
}

absl::StatusOr<CheckResult> CheckWith(const CodeBackend& backend, const Json& item,
                                      absl::Duration timeout = absl::Minutes(10)) {
  CancelToken cancel(absl::Now() + timeout);
  return backend.Check(item, JsonPath("item"), cancel);
}

absl::StatusOr<CheckResult> Check(const Json& item) { return CheckWith(SharedBackend(), item); }

Json PythonItem(const std::string& code, Json tests) {
  return {{"response", "```python\n" + code + "\n```"}, {"language", "python"}, {"tests", tests}};
}

const Json kEcho = Json::parse(R"([{"input":"3 4\n","output":"7\n"},{"input":"10 5\n","output":"15\n"}])");
const char kSum[] = "a, b = map(int, input().split())\nprint(a + b)";

std::string FirstFailure(const CheckResult& result) {
  if (!result.details.contains("first_failure")) return "";
  return result.details["first_failure"]["verdict"].get<std::string>();
}

TEST_CASE("code backend accepts a correct Python program") {
  auto result = Check(PythonItem(kSum, kEcho));
  REQUIRE(result.ok());
  CHECK(result->verdict == "correct");
  CHECK(result->reward == 1.0);
  CHECK(result->details["passed"] == 2);
  CHECK(result->details["tests"][0]["verdict"] == "accepted");
  CHECK(result->details["tests"][0].contains("memory_kb"));
}

TEST_CASE("code backend compiles C++ once and runs every test") {
  Json item = {{"response", "```cpp\n#include <iostream>\nint main(){long a,b;std::cin>>a>>b;"
                            "std::cout<<a+b<<\"\\n\";}\n```"},
               {"language", "cpp"},
               {"tests", kEcho}};
  auto before = SharedBackend().stats().compiles.load();
  auto result = Check(item);
  REQUIRE(result.ok());
  CHECK(result->verdict == "correct");
  CHECK(result->details.contains("compile"));
  CHECK(SharedBackend().stats().compiles.load() == before + 1);
}

TEST_CASE("code backend stops at the first wrong answer unless run_all is set") {
  Json tests = Json::parse(
      R"([{"input":"1 1\n","output":"2\n"},{"input":"2 2\n","output":"5\n"},{"input":"0 0\n","output":"0\n"}])");
  auto first = Check(PythonItem(kSum, tests));
  REQUIRE(first.ok());
  CHECK(first->verdict == "incorrect");
  CHECK(first->reward == 0.0);
  CHECK(FirstFailure(*first) == "wrong_answer");
  CHECK(first->details["first_failure"]["test"] == 1);
  CHECK(first->details["tests_run"] == 2);

  Json all = PythonItem(kSum, tests);
  all["options"] = {{"run_all", true}};
  auto fraction = Check(all);
  REQUIRE(fraction.ok());
  CHECK(fraction->details["tests_run"] == 3);
  CHECK(fraction->reward == Approx(2.0 / 3.0));
}

TEST_CASE("code backend reports time, memory, runtime, output and blocked verdicts") {
  Json one = Json::parse(R"([{"input":"","output":"x\n"}])");
  Json limits = {{"time_s", 0.5}, {"memory_mb", 128}, {"output_kb", 64}};
  struct Case {
    const char* code;
    const char* verdict;
  };
  for (const Case& c : std::vector<Case>{
           {"while True: pass", "time_limit"},
           {"import time\ntime.sleep(20)", "time_limit"},
           {"x = bytearray(1 << 30)\nx[::4096] = b'1' * (len(x) // 4096)", "memory_limit"},
           {"raise ValueError('boom')", "runtime_error"},
           {"print('y' * (1 << 20))", "output_limit"},
           {"import ctypes\nctypes.CDLL(None).syscall(101, 16, 1, 0, 0)", "blocked"},
           {"print('z')", "wrong_answer"},
       }) {
    Json item = PythonItem(c.code, one);
    item["limits"] = limits;
    auto result = Check(item);
    CAPTURE(c.code);
    REQUIRE(result.ok());
    CHECK(result->verdict == "incorrect");
    CHECK(FirstFailure(*result) == c.verdict);
  }
}

TEST_CASE("code backend reports runtime errors with their exit code or signal") {
  Json one = Json::parse(R"([{"input":"","output":"x\n"}])");
  auto exit_code = Check(PythonItem("import sys\nsys.exit(7)", one));
  REQUIRE(exit_code.ok());
  CHECK(exit_code->details["first_failure"]["exit_code"] == 7);
  Json segv = {{"response", "int main(){volatile int*p=nullptr;*p=1;}"},
               {"language", "cpp"},
               {"tests", one}};
  auto signal = Check(segv);
  REQUIRE(signal.ok());
  CHECK(FirstFailure(*signal) == "runtime_error");
  CHECK(signal->details["first_failure"]["signal_name"] == "SIGSEGV");
}

TEST_CASE("code backend calls syntax errors and failed compiles compile_error") {
  auto python = Check(PythonItem("def f(:\n  pass", kEcho));
  REQUIRE(python.ok());
  CHECK(FirstFailure(*python) == "compile_error");
  Json cpp = {{"response", "```cpp\nint main() { return undefined_name; }\n```"},
              {"language", "cpp"},
              {"tests", kEcho}};
  auto compiled = Check(cpp);
  REQUIRE(compiled.ok());
  CHECK(FirstFailure(*compiled) == "compile_error");
  CHECK(compiled->details["compile"]["stderr"].get<std::string>().find("undefined_name") !=
        std::string::npos);
}

TEST_CASE("code backend compares floats within the tolerance when asked") {
  Json tests = Json::parse(R"([{"input":"","output":"0.3333333\n"}])");
  Json item = PythonItem("print(1/3)", tests);
  CHECK(Check(item)->verdict == "incorrect");
  item["options"] = {{"compare", "float"}, {"tolerance", 1e-6}};
  CHECK(Check(item)->verdict == "correct");
}

TEST_CASE("code backend rejects malformed items naming the field") {
  auto no_tests = Check({{"response", "print(1)"}, {"language", "python"}});
  CHECK(no_tests.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(no_tests.status().message() == "item: missing required field \"tests\"");
  auto language = Check({{"response", "x"}, {"language", "cobol"}, {"tests", kEcho}});
  CHECK(language.status().message() ==
        "item: language: unknown language \"cobol\" (expected one of: python, cpp)");
  Json bad_limits = PythonItem(kSum, kEcho);
  bad_limits["limits"] = {{"time_s", -1}};
  CHECK(Check(bad_limits).status().message() == "item: limits.time_s: must be positive");
}

TEST_CASE("code backend answers RESOURCE_EXHAUSTED when its queue is full") {
  CodeBackendOptions options;
  options.sandbox.max_concurrency = 1;
  options.max_queued = 0;
  auto backend = NewCodeBackend(options);
  REQUIRE(backend.ok());
  Json slow = PythonItem("import time\ntime.sleep(1.5)\nprint(7)", kEcho);
  auto running = std::async(std::launch::async, [&] { return CheckWith(**backend, slow); });
  // Wait until the first item holds the only slot.
  for (int i = 0; i < 200 && (*backend)->stats().active.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto rejected = CheckWith(**backend, PythonItem(kSum, kEcho));
  CHECK(rejected.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK((*backend)->stats().rejected.load() == 1);
  CHECK(running.get().ok());
}

TEST_CASE("code backend gives up with DEADLINE_EXCEEDED when the item's deadline passes") {
  auto result = CheckWith(SharedBackend(),
                          PythonItem("import time\ntime.sleep(10)", kEcho), absl::Seconds(1));
  INFO(result.status().message());
  CHECK(result.status().code() == absl::StatusCode::kDeadlineExceeded);
}

// --- The shared test data: every reference solution is accepted; every wrong
// solution fails exactly the tests listed for it.

struct DataItem {
  std::string label;
  Json item;
  std::set<int> expected_failures;
  std::set<int> expected_tle;
};

std::vector<DataItem> LoadCodeProblems() {
  std::ifstream in(std::string(CASCADE_TESTDATA_DIR) + "/code_problems.jsonl");
  std::vector<DataItem> items;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json problem = Json::parse(line);
    std::string id = problem["id"];
    auto make = [&](const std::string& language, const std::string& code) {
      return Json{{"response", code},
                  {"language", language},
                  {"tests", problem["tests"]},
                  {"limits", {{"time_s", 2}}},
                  {"options", {{"run_all", true}}}};
    };
    for (auto& [language, codes] : problem["solutions"].items()) {
      for (size_t i = 0; i < codes.size(); ++i) {
        items.push_back({id + " " + language + " solution " + std::to_string(i),
                         make(language, codes[i]), {}, {}});
      }
    }
    for (size_t i = 0; i < problem["wrong"].size(); ++i) {
      const Json& wrong = problem["wrong"][i];
      items.push_back({id + " wrong " + std::to_string(i), make(wrong["lang"], wrong["code"]),
                       wrong["failing_tests"].get<std::set<int>>(),
                       wrong["tle_tests_at_2s"].get<std::set<int>>()});
    }
  }
  return items;
}

TEST_CASE("code backend agrees with every verdict in code_problems.jsonl") {
  std::vector<DataItem> items = LoadCodeProblems();
  REQUIRE(items.size() >= 8);
  std::vector<std::future<absl::StatusOr<CheckResult>>> futures;
  for (const DataItem& item : items) {
    futures.push_back(std::async(std::launch::async, [&] { return Check(item.item); }));
  }
  int agreed = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    absl::StatusOr<CheckResult> result = futures[i].get();
    CAPTURE(items[i].label);
    INFO(result.status().message());
    REQUIRE(result.ok());
    std::set<int> failures, tle;
    for (const Json& test : result->details["tests"]) {
      if (test["verdict"] != "accepted") failures.insert(test["test"].get<int>());
      if (test["verdict"] == "time_limit") tle.insert(test["test"].get<int>());
    }
    CHECK(failures == items[i].expected_failures);
    CHECK(tle == items[i].expected_tle);
    CHECK(result->verdict == (items[i].expected_failures.empty() ? "correct" : "incorrect"));
    if (failures == items[i].expected_failures && tle == items[i].expected_tle) ++agreed;
  }
  WARN("code_problems.jsonl agreement: " << agreed << "/" << items.size());
  CHECK(agreed == static_cast<int>(items.size()));
}

}  // namespace
}  // namespace cascade::verifier
