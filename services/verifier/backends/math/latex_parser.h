// Parses a normalized LaTeX answer (or a plain expression such as `2/3` or
// `(9+1)*2`) into an expression tree.
//
// The grammar covers what final answers use: numbers, symbols, + - * / ^,
// implicit multiplication, \frac \sqrt \binom, functions (\sin, \log_2, ...),
// relation chains (`a = b = c`, `-2 \le x \le 7`), `x \in S`, sets `\{..\}`,
// tuples, intervals `[0,1)`, unions, matrices (`pmatrix`, `bmatrix`, `array`),
// `\pm`, percentages and \text{} words. Unknown commands are errors, so a
// caller can fall back to a smaller piece of the answer.
//
// Bounded: recursion depth is capped (deeply nested braces are an error, not
// a stack overflow) and the input length is capped.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_LATEX_PARSER_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_LATEX_PARSER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/verifier/backends/math/ast.h"

namespace cascade::verifier::math {

struct ParseLimits {
  int max_depth = 200;              // nesting of groups and operators
  size_t max_length = 20000;        // characters of one answer
};

// Parses already-normalized text (see normalize.h).
absl::StatusOr<NodePtr> ParseMath(absl::string_view text, const ParseLimits& limits = {});

// Expands `a \pm b` into the list {a + b, a - b} (at most 16 variants);
// trees without \pm come back unchanged.
NodePtr ExpandPlusMinus(const NodePtr& node);

}  // namespace cascade::verifier::math

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_LATEX_PARSER_H_
