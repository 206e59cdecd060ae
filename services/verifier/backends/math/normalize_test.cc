#include "services/verifier/backends/math/normalize.h"

#include <catch2/catch.hpp>

namespace cascade::verifier::math {
namespace {

TEST_CASE("boxed contents are found with nested braces") {
  auto boxes = BoxedContents(R"(so \boxed{\frac{1}{2}} and \fbox{3})");
  REQUIRE(boxes.size() == 2);
  CHECK(boxes[0] == R"(\frac{1}{2})");
  CHECK(boxes[1] == "3");
}

TEST_CASE("the last boxed wins in last mode and all are listed in all mode") {
  CHECK(NormalizeLatex(R"(\boxed{1} then \boxed{2})", BoxedMode::kLast) == "2");
  CHECK(NormalizeLatex(R"(\boxed{1}\boxed{2})", BoxedMode::kAll) == "1,2");
}

TEST_CASE("doubled backslashes before known commands are collapsed") {
  CHECK(FixDoubledBackslashes(R"(\\frac{1}{2})") == R"(\frac{1}{2})");
  // A matrix row break before a variable is kept.
  CHECK(FixDoubledBackslashes(R"(a\\y)") == R"(a\\y)");
  // A row break followed by a command keeps both.
  CHECK(FixDoubledBackslashes(R"(0\\\end{pmatrix})") == R"(0\\\end{pmatrix})");
}

TEST_CASE("spacing and sizing and dollars and degrees are removed") {
  CHECK(NormalizeLatex(R"(\left( \frac{1}{3} \right))", BoxedMode::kAll) == R"(( \frac{1}{3} ))");
  CHECK(NormalizeLatex(R"(90^\circ)", BoxedMode::kAll) == "90");
  CHECK(NormalizeLatex(R"(\$16386.17)", BoxedMode::kAll) == "16386.17");
  CHECK(NormalizeLatex(R"(\dfrac{1}{3})", BoxedMode::kAll) == R"(\frac{1}{3})");
  CHECK(NormalizeLatex(R"(\tfrac12)", BoxedMode::kAll) == R"(\frac12)");
}

TEST_CASE("units and thousands separators are removed") {
  CHECK(NormalizeLatex(R"(\frac{1}{3} \text{meters})", BoxedMode::kAll) == R"(\frac{1}{3})");
  CHECK(NormalizeLatex(R"(15\mbox{ cm}^2)", BoxedMode::kAll) == "15");
  CHECK(NormalizeLatex("7,425,000", BoxedMode::kAll) == "7425000");
  CHECK(NormalizeLatex(R"(11,\! 111,\! 111,\! 100)", BoxedMode::kAll) == "11111111100");
  CHECK(NormalizeLatex(R"(14{,}916)", BoxedMode::kAll) == "14916");
  // A point is not a thousands-separated number.
  CHECK(NormalizeLatex("(12,102)", BoxedMode::kAll) == "(12,102)");
  // A space after the comma makes a list.
  CHECK(NormalizeLatex("32, 349", BoxedMode::kAll) == "32, 349");
}

TEST_CASE("percent words become the percent sign") {
  CHECK(NormalizeLatex("28 pct", BoxedMode::kAll) == R"(28 \%)");
  CHECK(NormalizeLatex("28 percent", BoxedMode::kAll) == R"(28 \%)");
}

}  // namespace
}  // namespace cascade::verifier::math
