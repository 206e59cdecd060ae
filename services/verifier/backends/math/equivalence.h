// Decides whether two parsed answers are mathematically the same.
//
// The comparison follows Math-Verify's rules, re-implemented here:
//   * strings first: two identical non-empty extracted strings match;
//   * assignments unwrap (`k = 1` matches `1`, but `7 = 11a + c` does not
//     match `11a + c`); chains truncate (`x = 5+5+1 = 11` is `x = 11`);
//   * numbers: exact rationals (big integers, never overflowing silently);
//     when either side is a decimal literal both are rounded to
//     `precision` decimal places;
//   * expressions with free variables: evaluation at several random points
//     in complex double precision;
//   * equations and inequalities: lhs - rhs compared up to a constant
//     factor (positive for inequalities, so `x < 1` matches `-x > -1`);
//   * sets order-insensitive, tuples ordered, intervals with their
//     openness, matrices element-wise after evaluating sums and products;
//   * a relation matches a set when the prediction is the set, or always
//     with `allow_set_relation_comp`.
//
// Thread-safety: pure functions; safe to call concurrently.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_EQUIVALENCE_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_EQUIVALENCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/deadline.h"
#include "services/verifier/backends/math/ast.h"

namespace cascade::verifier::math {

struct MathOptions {
  // Decimal places kept when a decimal literal is compared (default 6).
  int precision = 6;
  // When false, free variables may be renamed (`f(x)` matches `f(y)`).
  bool strict = true;
  // When true a relation also matches a set when the gold is the set
  // (`x = 1` vs `{1}` in either direction).
  bool allow_set_relation_comp = false;
};

// One side of a comparison: what extraction produced. Like Math-Verify's
// parse() result it holds the parsed trees and the raw extracted strings.
struct Answer {
  std::vector<NodePtr> exprs;
  std::vector<std::string> strings;

  bool empty() const { return exprs.empty() && strings.empty(); }
};

// How a match was found, for result details.
struct MatchInfo {
  std::string how;   // "string", "exact", "numeric", "symbolic", "set", "relation", "matrix"
  std::string gold;  // the gold candidate that matched
  std::string pred;  // the predicted candidate that matched
};

// True when any gold candidate matches any predicted candidate. Returns
// DEADLINE_EXCEEDED when `cancel` expires.
absl::StatusOr<bool> AnswersEquivalent(const Answer& gold, const Answer& pred,
                                       const MathOptions& options, const CancelToken& cancel,
                                       MatchInfo* info = nullptr);

// Compares two trees (gold first: the rules are not symmetric).
absl::StatusOr<bool> ExprsEquivalent(const NodePtr& gold, const NodePtr& pred,
                                     const MathOptions& options, const CancelToken& cancel,
                                     std::string* how = nullptr);

}  // namespace cascade::verifier::math

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_EQUIVALENCE_H_
