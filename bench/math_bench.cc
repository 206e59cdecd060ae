// Math answer checks per second per core: Cascade's C++ checker against a
// Python + SymPy checker (bench/sympy_checker.py), on the same cases
// (tests/testdata/math_cases.jsonl, from Math-Verify's tests), in one run.
//
// Both run single-threaded and are timed in CPU seconds, so checks/s is per
// core: Google Benchmark's items_per_second is per CPU second for the C++
// side; the peer measures its own process CPU time inside the interpreter
// (start-up excluded) and reports it through SetIterationTime. Counters: checks_per_second (items_per_second) and
// agreement with the expected verdicts.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "services/verifier/backends/math/math_backend.h"

namespace cascade::verifier {
namespace {

struct Case {
  Json item;
  bool expected;
};

std::vector<Case> LoadCases() {
  std::vector<Case> cases;
  std::ifstream in(std::string(CASCADE_TESTDATA_DIR) + "/math_cases.jsonl");
  for (std::string line; std::getline(in, line);) {
    Json row = Json::parse(line);
    if (row["gold"].is_null() || !row.contains("expected")) continue;
    Json options = Json::object();
    const Json& config = row["config"];
    for (const char* key : {"precision", "strict", "allow_set_relation_comp"}) {
      if (config.contains(key)) options[key] = config[key];
    }
    cases.push_back({{{"response", row["pred"]},
                      {"ground_truth", row["gold"]},
                      {"options", options}},
                     row["expected"].get<bool>()});
  }
  return cases;
}

void BM_CascadeMathCheck(benchmark::State& state) {
  static const std::vector<Case> cases = LoadCases();
  std::unique_ptr<Backend> backend = NewMathBackend();
  CancelToken never;
  int64_t checks = 0;
  int agree = 0;
  bool first_pass = true;
  for (auto _ : state) {
    for (const Case& c : cases) {
      auto result = backend->Check(c.item, JsonPath("bench"), never);
      benchmark::DoNotOptimize(result);
      if (first_pass && result.ok() && (result->reward == 1.0) == c.expected) ++agree;
      ++checks;
    }
    first_pass = false;
  }
  state.SetItemsProcessed(checks);
  state.counters["agreement"] = static_cast<double>(agree) / cases.size();
  state.counters["cases"] = static_cast<double>(cases.size());
}
BENCHMARK(BM_CascadeMathCheck)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_PythonSympyCheck(benchmark::State& state) {
  const std::string command = std::string("/usr/bin/python3 ") + CASCADE_SOURCE_DIR +
                              "/bench/sympy_checker.py " + CASCADE_TESTDATA_DIR +
                              "/math_cases.jsonl --repeat 1";
  int64_t checks = 0;
  double agreement = 0.0;
  for (auto _ : state) {
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
      state.SkipWithError("cannot start /usr/bin/python3");
      return;
    }
    std::string output;
    char buffer[512];
    while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
    if (pclose(pipe) != 0) {
      state.SkipWithError("sympy_checker.py failed (is python3-sympy installed?)");
      return;
    }
    Json report = Json::parse(output);
    state.SetIterationTime(report["seconds"].get<double>());
    checks += report["checks"].get<int64_t>();
    agreement = report["agreement"].get<double>();
  }
  state.SetItemsProcessed(checks);
  state.counters["agreement"] = agreement;
}
BENCHMARK(BM_PythonSympyCheck)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace cascade::verifier

BENCHMARK_MAIN();
