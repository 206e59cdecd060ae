#include "services/verifier/backends/math/extract.h"

#include <string>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"

namespace cascade::verifier::math {
namespace {

std::string First(const std::string& text, ExtractionConfig config = {}) {
  CancelToken cancel;
  auto answer = ExtractAnswer(text, config, cancel);
  REQUIRE(answer.ok());
  if (answer->exprs.empty()) return "<none>";
  return ToString(*answer->exprs[0]);
}

TEST_CASE("the last boxed answer wins over earlier math") {
  CHECK(First(R"(We get $x = 2$ and so \boxed{3} but finally \boxed{4}.)") == "4");
}

TEST_CASE("final answer phrases outrank earlier math") {
  CHECK(First("First $5$. Final Answer: The final answer is $7$. I hope it is correct.") == "7");
  CHECK(First("Final Answer: The largest $n$ is 34.") == "34");
}

TEST_CASE("plain numbers keep separators and decimal commas and percents") {
  ExtractionConfig expr_only{false, true, 0};
  CHECK(First("7,425,000", expr_only) == "7425000");
  CHECK(First("1000,99", expr_only) == "1000.99");
  CHECK(First("$1,000.99", expr_only) == "1000.99");
  CHECK(First("28 percent", expr_only) == "(28*1/100)");
  // A digit glued to letters is not an answer.
  CHECK(First("AZYUK2A", expr_only) == "<none>");
}

TEST_CASE("multi-line inline math is not math") {
  ExtractionConfig latex_only{true, false, 0};
  CHECK(First("Answer $ \n 9 \n $", latex_only) == "<none>");
  CHECK(First("Answer $$ \n 9 \n $$", latex_only) == "9");
}

TEST_CASE("several boxed answers in one span form a list") {
  CHECK(First(R"(\[ \boxed{-2} \quad \text{and} \quad \boxed{1} \])") == "-2, 1");
}

TEST_CASE("choice letters are extracted by anchor priority") {
  CHECK(ExtractChoice("The answer is A.", {}) == std::vector<std::string>{"a", "A"});
  StringExtractionConfig keep;
  keep.lowercase = false;
  CHECK(ExtractChoice("The answer is A.", keep) == std::vector<std::string>{"A", "A"});
  CHECK(ExtractChoice("A. Because B is not valid", {}) == std::vector<std::string>{"a", "A"});
  CHECK(ExtractChoice("No valid answer here", {}).empty());
}

TEST_CASE("a 100 KB response is handled in bounded time") {
  std::string text;
  while (text.size() < 100000) text += "so $x_{1} = \\frac{1}{2}$ and {{{ ( [ 12,345 ";
  text += " so the answer is \\boxed{42}";
  absl::Time start = absl::Now();
  CHECK(First(text) == "42");
  std::string unbalanced = "\\boxed{" + std::string(100000, '{');
  CancelToken cancel;
  auto answer = ExtractAnswer(unbalanced, {}, cancel);
  CHECK(answer.ok());
  CHECK(absl::Now() - start < absl::Seconds(10));
}

TEST_CASE("extraction stops when the token expires") {
  CancelToken cancel;
  cancel.Cancel();
  auto answer = ExtractAnswer("the answer is $1$", {}, cancel);
  CHECK(answer.status().code() == absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace cascade::verifier::math
