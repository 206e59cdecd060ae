#include "services/verifier/backends/math/equivalence.h"

#include <string>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "services/verifier/backends/math/latex_parser.h"

namespace cascade::verifier::math {
namespace {

bool Same(const std::string& gold, const std::string& pred, MathOptions options = {}) {
  auto g = ParseMath(gold);
  auto p = ParseMath(pred);
  REQUIRE(g.ok());
  REQUIRE(p.ok());
  CancelToken cancel;
  auto same = ExprsEquivalent(ExpandPlusMinus(*g), ExpandPlusMinus(*p), options, cancel);
  REQUIRE(same.ok());
  return *same;
}

TEST_CASE("exact rationals compare exactly") {
  CHECK(Same(R"(\frac{10}{9})", "10/9"));
  CHECK(Same("3", R"(\frac{6}{2})"));
  CHECK_FALSE(Same("1/3", "0.33"));
}

TEST_CASE("decimals compare at the requested precision") {
  CHECK(Same("1/3", "0.333333"));
  MathOptions two;
  two.precision = 2;
  CHECK(Same("1/3", "0.33", two));
  CHECK(Same("4.123105625617661", R"(\sqrt{17})"));
}

TEST_CASE("big integers never overflow silently") {
  CHECK(Same("2^{200}", "1606938044258990275541962092341162602522202993782792835301376"));
  CHECK_FALSE(Same("2^{200}", "1606938044258990275541962092341162602522202993782792835301377"));
}

TEST_CASE("a tower of powers against one finishes quickly with a verdict") {
  absl::Time start = absl::Now();
  CHECK_FALSE(Same("10^{10^{10^{10}}}", "1"));
  CHECK_FALSE(Same("10^{10^{10^{10}}}", "10^{10^{10^{11}}}"));
  CHECK(absl::Now() - start < absl::Seconds(2));
}

TEST_CASE("expressions with variables compare symbolically") {
  CHECK(Same(R"(\frac{x+2}{7})", R"(\frac{x}{7}+\frac{2}{7})"));
  CHECK(Same(R"(\tan^2(y)+1)", R"(\sec^2(y))"));
  CHECK_FALSE(Same("x+2n+1", "x+1"));
  // Identities that only hold for positive values are rejected.
  CHECK_FALSE(Same(R"(\sqrt{x^2})", "x"));
}

TEST_CASE("equations compare up to a constant factor") {
  CHECK(Same("2x+4y-3=0", R"(y=-\frac{1}{2}x+\frac{3}{4})"));
  CHECK(Same("34x+45y-20z+100=0", "-34x-45y+20z-100=0"));
  CHECK(Same("x < 1", "-x > -1"));
  CHECK_FALSE(Same("x > 5", "x < 5"));
}

TEST_CASE("assignments unwrap against plain values") {
  CHECK(Same("k=1", "1"));
  CHECK(Same("1", "k=1"));
  CHECK_FALSE(Same("7 = 11a+c", "11a+c"));
  CHECK(Same("x = 11", "x = 5+5+1 = 7 = 11"));
}

TEST_CASE("sets ignore order and tuples keep it") {
  CHECK(Same(R"(\{1,2\})", R"(\{2,1\})"));
  CHECK(Same("(1,3)", "1,3"));
  CHECK_FALSE(Same("(3,1)", "1,3"));
  CHECK_FALSE(Same("[0,1)", "(0,1)"));
}

TEST_CASE("relations match sets when the prediction is the set") {
  CHECK(Same(R"(-2 \le x \le 7)", R"(x \in [-2,7])"));
  CHECK_FALSE(Same(R"(x \in [-2,7])", R"(-2 \le x \le 7)"));
  MathOptions allow;
  allow.allow_set_relation_comp = true;
  CHECK(Same(R"(x \in [-2,7])", R"(-2 \le x \le 7)", allow));
  CHECK(Same(R"(\{1\})", "x=1", allow));
}

TEST_CASE("matrix sums and products are evaluated") {
  CHECK(Same(R"(\begin{pmatrix}6 & 8 \\ 10 & 12\end{pmatrix})",
             R"(\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix} + \begin{pmatrix}5 & 6 \\ 7 & 8\end{pmatrix})"));
  CHECK_FALSE(Same(R"(\begin{pmatrix}1 & 2 \\ 3 & 4\end{pmatrix})",
                   R"(\begin{pmatrix}1 & 2 \\ 3 & 5\end{pmatrix})"));
}

TEST_CASE("non-strict mode allows renaming variables") {
  CHECK_FALSE(Same("f(x)", "f(y)"));
  MathOptions loose;
  loose.strict = false;
  CHECK(Same("f(x)", "f(y)", loose));
}

TEST_CASE("an expired token stops the comparison") {
  auto g = ParseMath("x+1");
  auto p = ParseMath("1+x");
  CancelToken cancel;
  cancel.Cancel();
  auto same = ExprsEquivalent(*g, *p, {}, cancel);
  CHECK(same.status().code() == absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace cascade::verifier::math
