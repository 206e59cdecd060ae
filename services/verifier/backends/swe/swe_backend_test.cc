#include "services/verifier/backends/swe/swe_backend.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "catch2/catch.hpp"
#include "common/json_util.h"

namespace cascade::verifier {
namespace {

const std::string kSweDir = std::string(CASCADE_SOURCE_DIR) + "/services/verifier/backends/swe";

std::vector<Json> ReadCases() {
  std::ifstream in(kSweDir + "/testdata/swe_cases.jsonl");
  std::vector<Json> cases;
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    absl::StatusOr<Json> parsed = ParseJson(line, absl::StrCat("swe_cases.jsonl:", number));
    REQUIRE(parsed.ok());
    cases.push_back(*std::move(parsed));
  }
  return cases;
}

Json Item(const std::string& json_text) {
  absl::StatusOr<Json> parsed = ParseJson(json_text, "test item");
  REQUIRE(parsed.ok());
  return *parsed;
}

TEST_CASE("every case of swe_cases.jsonl gets the difflib-computed reward and verdict") {
  std::vector<Json> cases = ReadCases();
  REQUIRE(cases.size() >= 20);
  std::unique_ptr<Backend> backend = NewSweBackend();
  CHECK(backend->name() == "swe");
  CancelToken cancel;
  size_t agree = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json& c = cases[i];
    INFO("case " << i << ": " << c["name"].get<std::string>());
    absl::StatusOr<CheckResult> result =
        backend->Check(c["item"], JsonPath("swe_cases.jsonl").Index(i), cancel);
    REQUIRE(result.ok());
    INFO("details: " << result->details.dump());
    CHECK(result->reward == c["reward"].get<double>());
    CHECK(result->verdict == c["verdict"].get<std::string>());
    if (result->reward == c["reward"].get<double>() &&
        result->verdict == c["verdict"].get<std::string>()) {
      ++agree;
    }
  }
  CHECK(agree == cases.size());
}

TEST_CASE("one backend checks items from several threads with the same results") {
  std::vector<Json> cases = ReadCases();
  std::unique_ptr<Backend> backend = NewSweBackend();
  std::vector<std::vector<double>> rewards(4, std::vector<double>(cases.size(), 0.0));
  std::vector<std::thread> threads;
  for (size_t t = 0; t < rewards.size(); ++t) {
    threads.emplace_back([&, t] {
      CancelToken cancel;
      for (size_t i = 0; i < cases.size(); ++i) {
        absl::StatusOr<CheckResult> result = backend->Check(cases[i]["item"], JsonPath(), cancel);
        rewards[t][i] = result.ok() ? result->reward : -2.0;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < cases.size(); ++i) {
    for (size_t t = 0; t < rewards.size(); ++t)
      CHECK(rewards[t][i] == cases[i]["reward"].get<double>());
  }
}

TEST_CASE("an unparseable response carries the parse error with its line") {
  std::vector<Json> cases = ReadCases();
  std::unique_ptr<Backend> backend = NewSweBackend();
  CancelToken cancel;
  for (const Json& c : cases) {
    if (c["name"] != "unidiff with a hunk shorter than its header is unparseable") continue;
    absl::StatusOr<CheckResult> result = backend->Check(c["item"], JsonPath(), cancel);
    REQUIRE(result.ok());
    CHECK(result->verdict == kVerdictUnparseable);
    CHECK(absl::StrContains(result->details["error"].get<std::string>(), "line 6:"));
    return;
  }
  FAIL("case not found");
}

TEST_CASE("similar results list a ratio for every file of the union") {
  std::vector<Json> cases = ReadCases();
  std::unique_ptr<Backend> backend = NewSweBackend();
  CancelToken cancel;
  for (const Json& c : cases) {
    if (c["name"] != "search_replace missing a file and adding another") continue;
    absl::StatusOr<CheckResult> result = backend->Check(c["item"], JsonPath(), cancel);
    REQUIRE(result.ok());
    const Json& files = result->details["files"];
    REQUIRE(files.size() == 3);
    CHECK(files[0]["path"] == "calc.py");
    CHECK(files[0]["similarity"] == 1.0);
    CHECK(files[1]["path"] == "tests/test_calc.py");
    CHECK(files[1]["similarity"] == 0.0);
    CHECK(files[2]["path"] == "util/sort.py");
    CHECK(files[2]["similarity"] == 0.0);
    CHECK(result->details["mode"] == "content");
    return;
  }
  FAIL("case not found");
}

TEST_CASE("malformed items are INVALID_ARGUMENT naming the JSON path") {
  std::unique_ptr<Backend> backend = NewSweBackend();
  CancelToken cancel;
  const JsonPath path("in.jsonl: line 3");
  auto error = [&](const std::string& json_text) {
    absl::StatusOr<CheckResult> result = backend->Check(Item(json_text), path, cancel);
    REQUIRE_FALSE(result.ok());
    CHECK(absl::IsInvalidArgument(result.status()));
    return std::string(result.status().message());
  };
  CHECK(absl::StrContains(error(R"({"format": "unidiff", "ground_truth": "x"})"),
                          "in.jsonl: line 3: response"));
  CHECK(absl::StrContains(error(R"({"response": 7, "format": "unidiff", "ground_truth": "x"})"),
                          "response"));
  std::string format = error(R"({"response": "", "format": "git", "ground_truth": "x"})");
  CHECK(absl::StrContains(format, "line 3: format: unknown format \"git\""));
  CHECK(absl::StrContains(format, "unidiff, search_replace"));
  CHECK(absl::StrContains(error(R"({"response": "", "format": "unidiff"})"),
                          "missing the gold change"));
  CHECK(absl::StrContains(error(R"({"response": "", "format": "unidiff", "ground_truth": "x",
                "oracle_new_content": {}, "code_context": {}})"),
                          "not both"));
  CHECK(absl::StrContains(
      error(R"({"response": "", "format": "search_replace", "oracle_new_content": {}})"),
      "line 3: code_context: required"));
  CHECK(absl::StrContains(
      error(R"({"response": "", "format": "search_replace", "oracle_new_content": {},
                "code_context": {"a.py": 1}})"),
      "code_context.a.py: expected the file content as a string"));
  CHECK(absl::StrContains(
      error(R"({"response": "", "format": "unidiff", "ground_truth": "x", "similarity": "fuzzy"})"),
      "similarity: unknown similarity \"fuzzy\""));
  // A gold patch that does not parse is the item's fault, not the response's.
  CHECK(absl::StrContains(
      error(
          R"({"response": "--- a/x\n+++ b/x\n", "format": "unidiff", "ground_truth": "nothing"})"),
      "ground_truth: the gold patch does not parse"));
  CHECK(absl::StrContains(error(R"(["not", "an", "object"])"), "in.jsonl: line 3"));
}

TEST_CASE("semantic similarity without a judge fails with a message saying what to do") {
  std::unique_ptr<Backend> backend = NewSweBackend();
  CancelToken cancel;
  absl::StatusOr<CheckResult> result =
      backend->Check(Item(R"({"response": "", "format": "unidiff", "ground_truth": "x",
               "similarity": "semantic"})"),
                     JsonPath("in.jsonl: line 1"), cancel);
  REQUIRE_FALSE(result.ok());
  CHECK(absl::IsFailedPrecondition(result.status()));
  CHECK(absl::StrContains(result.status().message(),
                          "in.jsonl: line 1: similarity: semantic similarity needs a "
                          "reward_model judge"));
  CHECK(absl::StrContains(result.status().message(), "similarity=lexical"));
}

// A judge standing in for the reward_model service: it answers with a fixed
// probability and keeps the questions it was asked.
class RecordingJudge : public SemanticJudge {
 public:
  explicit RecordingJudge(double p_yes) : p_yes_(p_yes) {}
  absl::StatusOr<double> ProbabilityYes(absl::string_view question,
                                        const CancelToken& cancel) const override {
    absl::MutexLock lock(&mu_);
    questions_.emplace_back(question);
    return p_yes_;
  }
  std::vector<std::string> questions() const {
    absl::MutexLock lock(&mu_);
    return questions_;
  }

 private:
  const double p_yes_;
  mutable absl::Mutex mu_;
  mutable std::vector<std::string> questions_ ABSL_GUARDED_BY(mu_);
};

Json CaseItem(const std::string& name) {
  for (const Json& c : ReadCases()) {
    if (c["name"] == name) return c["item"];
  }
  FAIL("case not found: " << name);
  return Json();
}

TEST_CASE("semantic similarity asks the judge only for responses that are merely similar") {
  auto judge = std::make_shared<RecordingJudge>(/*p_yes=*/0.75);
  SweBackendOptions options;
  options.judge = judge;
  std::unique_ptr<Backend> backend = NewSweBackend(options);
  CancelToken cancel;

  Json similar = CaseItem("unidiff touching one gold file differently is similar");
  similar["similarity"] = "semantic";
  absl::StatusOr<CheckResult> result = backend->Check(similar, JsonPath(), cancel);
  REQUIRE(result.ok());
  CHECK(result->verdict == kVerdictSimilar);
  CHECK(result->reward == 0.75);
  CHECK(result->details["p_yes"] == 0.75);
  CHECK(result->details["lexical_similarity"] == 0.2594594594594595);
  REQUIRE(judge->questions().size() == 1);
  const std::string question = judge->questions()[0];
  CHECK(absl::StrContains(question, "raise ZeroDivisionError"));
  CHECK(absl::StrContains(question, "raise ValueError"));
  CHECK(absl::StrContains(question, "Answer yes or no."));

  Json identical = CaseItem("unidiff equal to the gold patch after a think block is identical");
  identical["similarity"] = "semantic";
  result = backend->Check(identical, JsonPath(), cancel);
  REQUIRE(result.ok());
  CHECK(result->reward == 1.0);
  Json broken = CaseItem("a response with no diff is unparseable");
  broken["similarity"] = "semantic";
  result = backend->Check(broken, JsonPath(), cancel);
  REQUIRE(result.ok());
  CHECK(result->reward == -1.0);
  CHECK(judge->questions().size() == 1);
}

TEST_CASE("a judge answer outside [0, 1] is an internal error, not a reward") {
  SweBackendOptions options;
  options.judge = std::make_shared<RecordingJudge>(/*p_yes=*/1.5);
  std::unique_ptr<Backend> backend = NewSweBackend(options);
  Json similar = CaseItem("unidiff touching one gold file differently is similar");
  similar["similarity"] = "semantic";
  CancelToken cancel;
  absl::StatusOr<CheckResult> result = backend->Check(similar, JsonPath(), cancel);
  REQUIRE_FALSE(result.ok());
  CHECK(absl::IsInternal(result.status()));
}

// A judge whose service cannot be reached.
class UnreachableJudge : public SemanticJudge {
 public:
  absl::StatusOr<double> ProbabilityYes(absl::string_view question,
                                        const CancelToken& cancel) const override {
    return absl::UnavailableError("reward_model at localhost:1: connection refused");
  }
};

TEST_CASE("a judge that cannot be reached is an error, never a made-up reward") {
  SweBackendOptions options;
  options.judge = std::make_shared<UnreachableJudge>();
  std::unique_ptr<Backend> backend = NewSweBackend(options);
  Json similar = CaseItem("unidiff touching one gold file differently is similar");
  similar["similarity"] = "semantic";
  CancelToken cancel;
  absl::StatusOr<CheckResult> result = backend->Check(similar, JsonPath(), cancel);
  REQUIRE_FALSE(result.ok());
  CHECK(absl::IsUnavailable(result.status()));
  CHECK(absl::StrContains(result.status().message(), "semantic judge: reward_model"));
}

TEST_CASE("an expired deadline is DEADLINE_EXCEEDED, not an unparseable response") {
  std::unique_ptr<Backend> backend = NewSweBackend();
  CancelToken cancel;
  cancel.Cancel();
  absl::StatusOr<CheckResult> result = backend->Check(
      CaseItem("search_replace with a different exception is similar"), JsonPath(), cancel);
  REQUIRE_FALSE(result.ok());
  CHECK(absl::IsDeadlineExceeded(result.status()));
}

TEST_CASE("patch text is found after the think block, inside fences or solution tags") {
  auto diff = [](const std::string& response) {
    return ExtractPatchText(response, PatchFormat::kUnifiedDiff);
  };
  absl::StatusOr<std::string> fenced = diff(
      "<think>\n```diff\n--- a/wrong\n```\n</think>\nFix:\n```diff\n--- a/x\n+++ b/x\n```\n"
      "and\n```patch\n--- a/y\n+++ b/y\n```\n");
  REQUIRE(fenced.ok());
  CHECK(*fenced == "--- a/x\n+++ b/x\n--- a/y\n+++ b/y\n");
  absl::StatusOr<std::string> raw = diff("\ndiff --git a/x b/x\n--- a/x\n+++ b/x\n");
  REQUIRE(raw.ok());
  CHECK(absl::StartsWith(*raw, "diff --git"));
  absl::StatusOr<std::string> unlabeled = diff("```\n--- a/x\n+++ b/x\n```");
  REQUIRE(unlabeled.ok());
  CHECK(*unlabeled == "--- a/x\n+++ b/x\n");
  absl::StatusOr<std::string> solution =
      diff("<think>t</think><solution>\n--- a/x\n+++ b/x\n</solution>");
  REQUIRE(solution.ok());
  CHECK(absl::StartsWith(*solution, "--- a/x"));
  CHECK_FALSE(diff("<think>still thinking ```diff\n--- a/x\n```").ok());
  CHECK_FALSE(diff("The bug is in divide().").ok());
  CHECK_FALSE(diff("```python\nprint(1)\n```").ok());
}

// ---------------------------------------------------------------------------
// Live agreement with swe_rl_reference.py (difflib) on random edits.

constexpr const char* kPython = "/usr/bin/python3";

std::string RunReference(const Json& cases) {
  char input_path[] = "/tmp/swe_reference_inputXXXXXX";
  int fd = mkstemp(input_path);
  if (fd < 0) return "";
  close(fd);
  std::ofstream(input_path, std::ios::binary) << cases.dump();
  const std::string command =
      absl::StrCat(kPython, " ", kSweDir, "/swe_rl_reference.py ", input_path);
  std::string output;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
    pclose(pipe);
  }
  unlink(input_path);
  return output;
}

TEST_CASE("search_replace rewards equal the difflib reference on random edits") {
  if (access(kPython, X_OK) != 0) {
    WARN("/usr/bin/python3 is missing: skipping the live reference comparison");
    return;
  }
  // Files of realistic lines; edits pick lines of them and rewrite them.
  static const char* kLines[] = {"import os",
                                 "",
                                 "def load(path):",
                                 "    with open(path) as f:",
                                 "        return f.read()",
                                 "class Cache:",
                                 "    def __init__(self):",
                                 "        self._data = {}",
                                 "    def get(self, key):",
                                 "        return self._data[key]",
                                 "    def put(self, key, value):",
                                 "        self._data[key] = value",
                                 "# TODO: eviction",
                                 "    if key is None:",
                                 "        raise KeyError(key)",
                                 "    return None"};
  static const char* kReplacements[] = {"        return self._data.get(key)",
                                        "    if key is None:\n        return None",
                                        "import sys",
                                        "        self._data = collections.OrderedDict()",
                                        "# eviction: LRU",
                                        "    def clear(self):\n        self._data.clear()",
                                        "        return f.read().strip()"};
  std::mt19937 rng(424242);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto random_file = [&]() {
    std::vector<std::string> lines;
    for (size_t n = 5 + pick(40); n > 0; --n) lines.push_back(kLines[pick(std::size(kLines))]);
    return lines;
  };
  auto join = [](const std::vector<std::string>& lines, size_t from, size_t to) {
    std::string out;
    for (size_t k = from; k < to; ++k) absl::StrAppend(&out, k > from ? "\n" : "", lines[k]);
    return out;
  };
  // One SEARCH/REPLACE edit of `lines` (it may not apply: SEARCH is then
  // altered on purpose for some cases).
  auto random_block = [&](const std::string& path, const std::vector<std::string>& lines) {
    // An empty SEARCH on a non-empty file is rejected here but inserts text
    // after every line break in SWE-RL: a documented difference, kept out.
    std::string search;
    for (int tries = 0; search.empty() && tries < 100; ++tries) {
      size_t from = pick(lines.size());
      size_t to = std::min(lines.size(), from + 1 + pick(3));
      search = join(lines, from, to);
    }
    std::string replace = kReplacements[pick(std::size(kReplacements))];
    if (pick(10) == 0) search += " # not in the file";
    return absl::StrCat("```python\n### ", path, "\n<<<<<<< SEARCH\n", search, "\n=======\n",
                        replace, "\n>>>>>>> REPLACE\n```\n");
  };

  std::unique_ptr<Backend> backend = NewSweBackend();
  Json cases = Json::array();
  std::vector<Json> items;
  for (int i = 0; i < 150; ++i) {
    Json context = Json::object(), oracle = Json::object();
    std::vector<std::vector<std::string>> files;
    const size_t n_files = 1 + pick(3);
    for (size_t f = 0; f < n_files; ++f) {
      files.push_back(random_file());
      const std::string path = absl::StrCat("pkg/mod", f, ".py");
      context[path] = join(files.back(), 0, files.back().size()) + "\n";
      // The oracle rewrites one line of some files.
      std::vector<std::string> changed = files.back();
      if (f == 0 || pick(2) == 0) changed[pick(changed.size())] = kReplacements[pick(7)];
      oracle[path] = join(changed, 0, changed.size()) + "\n";
    }
    std::string solution;
    for (size_t b = 1 + pick(3); b > 0; --b) {
      const size_t f = pick(n_files);
      solution += random_block(absl::StrCat("pkg/mod", f, ".py"), files[f]);
    }
    const std::string response = absl::StrCat(
        "<think>\nlooking at the cache\n</think>\n<solution>\n", solution, "</solution>\n");
    cases.push_back(
        {{"code_context", context}, {"oracle_new_content", oracle}, {"response", response}});
    items.push_back({{"response", response},
                     {"format", "search_replace"},
                     {"code_context", context},
                     {"oracle_new_content", oracle}});
  }
  absl::StatusOr<Json> expected = ParseJson(RunReference(cases), "swe_rl_reference.py output");
  REQUIRE(expected.ok());
  REQUIRE(expected->size() == items.size());
  CancelToken cancel;
  size_t agree = 0, unparseable = 0, similar = 0, identical = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    absl::StatusOr<CheckResult> result = backend->Check(items[i], JsonPath().Index(i), cancel);
    REQUIRE(result.ok());
    INFO("case " << i << ": " << items[i].dump() << "\ndetails: " << result->details.dump());
    CHECK(result->reward == (*expected)[i].get<double>());
    if (result->reward == (*expected)[i].get<double>()) ++agree;
    if (result->verdict == kVerdictUnparseable) ++unparseable;
    if (result->verdict == kVerdictSimilar) ++similar;
    if (result->verdict == kVerdictIdentical) ++identical;
  }
  CHECK(agree == items.size());
  // The sample must exercise both the failure path and the ratio path.
  CHECK(unparseable > 5);
  CHECK(similar > 50);
}

}  // namespace
}  // namespace cascade::verifier
