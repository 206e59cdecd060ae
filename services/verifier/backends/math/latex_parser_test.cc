#include "services/verifier/backends/math/latex_parser.h"

#include <string>

#include <catch2/catch.hpp>

namespace cascade::verifier::math {
namespace {

std::string Parsed(const std::string& text) {
  auto node = ParseMath(text);
  return node.ok() ? ToString(**node) : "ERROR: " + std::string(node.status().message());
}

TEST_CASE("numbers parse as exact rationals and decimals are flagged") {
  auto node = ParseMath("0.25");
  REQUIRE(node.ok());
  CHECK((*node)->kind == NodeKind::kNumber);
  CHECK((*node)->is_float);
  CHECK((*node)->value == cln::cl_RA(1) / 4);
}

TEST_CASE("fractions and roots accept unbraced arguments") {
  CHECK(Parsed(R"(\frac12)") == "(1*(2^-1))");
  CHECK(Parsed(R"(\frac3{3})") == "(3*(3^-1))");
  CHECK(Parsed(R"(\sqrt3)") == "sqrt(3)");
  CHECK(Parsed(R"(\sqrt[3]{x})") == "(x^(1*(3^-1)))");
}

TEST_CASE("brackets give tuples and intervals and sets") {
  CHECK(Parsed("(1, 2)") == "(1, 2)");
  CHECK(Parsed("[0, 1)") == "[0, 1)");
  CHECK(Parsed(R"(\{1, 2\})") == "{1, 2}");
  CHECK(Parsed("1, 2") == "1, 2");
  CHECK(Parsed(R"([0,1) \cup (2, \infty))") == "[0, 1) U (2, inf)");
}

TEST_CASE("relation chains keep every link") {
  CHECK(Parsed(R"(-2 \le x \le 7)") == "-2 <= x <= 7");
  CHECK(Parsed("x != 3") == "x != 3");
  // `x \in S` names the set.
  CHECK(Parsed(R"(x \in [-2,7])") == "[-2, 7]");
  // An approximation after an exact value adds nothing.
  CHECK(Parsed(R"(x = 1/3 \approx 0.33)") == "x = (1*(3^-1))");
}

TEST_CASE("matrices parse row by row") {
  CHECK(Parsed(R"(\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix})") == "Matrix[1, 2; 3, 4]");
  CHECK(Parsed(R"(\begin{array}{cc}1 & 2\end{array})") == "Matrix[1, 2]");
}

TEST_CASE("functions take powers and bases and bare arguments") {
  CHECK(Parsed(R"(\sin^2(y))") == "(sin(y)^2)");
  CHECK(Parsed(R"(\log_2 8)") == "log(8, 2)");
  CHECK(Parsed(R"(2 \sin b \cos a)") == "(2*sin(b)*cos(a))");
}

TEST_CASE("plus-minus expands into both values") {
  auto node = ParseMath(R"(1 \pm \sqrt{19})");
  REQUIRE(node.ok());
  NodePtr expanded = ExpandPlusMinus(*node);
  CHECK(expanded->kind == NodeKind::kList);
  CHECK(expanded->args.size() == 2);
}

TEST_CASE("unknown commands and deep nesting are errors and not crashes") {
  CHECK_FALSE(ParseMath(R"(1 = \zzz)").ok());
  std::string deep(100000, '{');
  deep += "1" + std::string(100000, '}');
  ParseLimits limits;
  limits.max_length = 1 << 20;
  CHECK_FALSE(ParseMath(deep, limits).ok());
  CHECK_FALSE(ParseMath(std::string(50000, '(')).ok());
}

}  // namespace
}  // namespace cascade::verifier::math
