#include "services/verifier/verifier_eval.h"

#include <sstream>

#include <catch2/catch.hpp>

namespace cascade::verifier {
namespace {

// Rewards 1 when the response equals the item's "expected" field.
class EqualsBackend : public Backend {
 public:
  absl::string_view name() const override { return "equals"; }
  absl::StatusOr<CheckResult> Check(const Json& item, const JsonPath& path,
                                    const CancelToken& cancel) const override {
    auto response = GetString(item, "response", path);
    if (!response.ok()) return response.status();
    auto expected = GetString(item, "expected", path);
    if (!expected.ok()) return expected.status();
    bool same = *response == *expected;
    return CheckResult{same ? 1.0 : 0.0, same ? "correct" : "incorrect", Json::object()};
  }
};

std::unique_ptr<VerifierCore> MakeCore() {
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(std::make_unique<EqualsBackend>());
  return std::make_unique<VerifierCore>(std::move(backends), VerifierOptions{});
}

std::vector<Json> Lines(const std::string& text) {
  std::vector<Json> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(Json::parse(line));
  return lines;
}

TEST_CASE("eval writes one line per input line in order, malformed lines included") {
  auto core = MakeCore();
  std::istringstream in(
      "{\"response\": \"a\", \"expected\": \"a\"}\n"
      "{\"response\": \"a\", \"expected\"\n"
      "[1, 2]\n"
      "\n"
      "{\"response\": \"b\"}\n"
      "{\"response\": \"b\", \"expected\": \"c\"}\n");
  std::ostringstream out, err;
  auto summary = RunEval(*core, {.backend = "equals", .input_name = "in.jsonl", .chunk_lines = 2},
                         in, out, err);
  REQUIRE(summary.ok());
  auto lines = Lines(out.str());
  REQUIRE(lines.size() == 5);
  CHECK(lines[0]["verdict"] == "correct");
  CHECK(lines[0]["reward"] == 1.0);
  CHECK(lines[1]["verdict"] == "invalid_input");
  CHECK_THAT(lines[1]["details"]["error"].get<std::string>(),
             Catch::StartsWith("in.jsonl: line 2: line 1 column"));
  CHECK(lines[2]["details"]["error"] == "in.jsonl: line 3: expected a JSON object, got array");
  CHECK(lines[3]["details"]["error"] == "in.jsonl: line 5: expected: required field is missing");
  CHECK(lines[4]["verdict"] == "incorrect");
  CHECK(summary->lines == 5);
  CHECK(summary->malformed == 3);
  CHECK_THAT(err.str(), Catch::Contains("in.jsonl: line 3: expected a JSON object"));
}

TEST_CASE("strict eval stops at the first malformed line") {
  auto core = MakeCore();
  std::istringstream in(
      "{\"response\": \"a\", \"expected\": \"a\"}\n"
      "not json\n"
      "{\"response\": \"a\", \"expected\": \"a\"}\n");
  std::ostringstream out, err;
  auto summary = RunEval(*core, {.backend = "equals", .input_name = "in.jsonl", .strict = true},
                         in, out, err);
  REQUIRE_FALSE(summary.ok());
  CHECK_THAT(std::string(summary.status().message()), Catch::StartsWith("in.jsonl: line 2:"));
  CHECK(Lines(out.str()).size() == 1);
}

}  // namespace
}  // namespace cascade::verifier
