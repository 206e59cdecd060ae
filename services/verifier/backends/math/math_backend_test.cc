#include "services/verifier/backends/math/math_backend.h"

#include <string>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"

namespace cascade::verifier {
namespace {

CheckResult Run(const Json& item) {
  auto backend = NewMathBackend();
  CancelToken cancel(absl::Now() + absl::Seconds(10));
  auto result = backend->Check(item, JsonPath("in.jsonl: line 1"), cancel);
  REQUIRE(result.ok());
  return *result;
}

TEST_CASE("the math backend is named math") { CHECK(NewMathBackend()->name() == "math"); }

TEST_CASE("a boxed equivalent answer is correct") {
  CheckResult r = Run({{"response", "So the answer is $\\boxed{\\dfrac{1}{2}}$."},
                       {"ground_truth", "0.5"}});
  CHECK(r.verdict == "correct");
  CHECK(r.reward == 1.0);
  CHECK(r.details.contains("match"));
}

TEST_CASE("a wrong answer is incorrect and an empty one is no_answer") {
  CheckResult wrong = Run({{"response", "\\boxed{3}"}, {"ground_truth", "\\frac{1}{2}"}});
  CHECK(wrong.verdict == "incorrect");
  CHECK(wrong.reward == 0.0);
  CheckResult none = Run({{"response", "I do not know."}, {"ground_truth", "2"}});
  CHECK(none.verdict == "no_answer");
}

TEST_CASE("ground truth written as bare LaTeX is parsed whole") {
  CHECK(Run({{"response", "$\\boxed{x^2+1}$"}, {"ground_truth", "1 + x^2"}}).verdict ==
        "correct");
  CHECK(Run({{"response", "\\boxed{[0, 1)}"}, {"ground_truth", "[0,1)"}}).verdict == "correct");
}

TEST_CASE("options change precision and strictness and set relations") {
  Json item = {{"response", "\\boxed{0.33}"}, {"ground_truth", "\\frac{1}{3}"}};
  CHECK(Run(item).verdict == "incorrect");
  item["options"] = {{"precision", 2}};
  CHECK(Run(item).verdict == "correct");
  Json renamed = {{"response", "\\boxed{y=1}"}, {"ground_truth", "x=1"}};
  CHECK(Run(renamed).verdict == "incorrect");
  renamed["options"] = {{"strict", false}};
  CHECK(Run(renamed).verdict == "correct");
  Json set = {{"response", "\\boxed{x \\ge 1}"}, {"ground_truth", "[1, \\infty)"}};
  CHECK(Run(set).verdict == "incorrect");
  set["options"] = {{"allow_set_relation_comp", true}};
  CHECK(Run(set).verdict == "correct");
}

TEST_CASE("multiple-choice letters are compared as choices") {
  CHECK(Run({{"response", "The answer is C."}, {"ground_truth", "C"}}).verdict == "correct");
  CHECK(Run({{"response", "$\\boxed{\\text{(B)}}$"}, {"ground_truth", "C"}}).verdict ==
        "incorrect");
}

TEST_CASE("malformed items name the JSON path") {
  auto backend = NewMathBackend();
  CancelToken cancel;
  JsonPath path("in.jsonl: line 3");
  auto missing = backend->Check(Json{{"response", "1"}}, path, cancel);
  CHECK(missing.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(missing.status().message()).find("ground_truth") != std::string::npos);
  auto bad_option = backend->Check(
      Json{{"response", "1"}, {"ground_truth", "1"}, {"options", {{"strict", "yes"}}}}, path,
      cancel);
  CHECK(bad_option.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(bad_option.status().message()).find("options.strict") != std::string::npos);
}

TEST_CASE("a pathological tower answer gets a verdict quickly") {
  absl::Time start = absl::Now();
  CheckResult r = Run({{"response", "\\boxed{10^{10^{10^{10}}}}"}, {"ground_truth", "1"}});
  CHECK(r.verdict == "incorrect");
  CHECK(absl::Now() - start < absl::Seconds(2));
}

TEST_CASE("an expired deadline is reported as DEADLINE_EXCEEDED") {
  auto backend = NewMathBackend();
  CancelToken cancel;
  cancel.Cancel();
  auto result = backend->Check(Json{{"response", "$1$"}, {"ground_truth", "1"}}, JsonPath(), cancel);
  CHECK(result.status().code() == absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace cascade::verifier
