// String-level clean-up of an extracted LaTeX answer before it is parsed.
//
// Removes what carries no mathematical meaning (spacing commands, \left and
// \right, dollar signs, degree marks, units in \text{}), fixes common model
// formatting (doubled backslashes, `14{,}916`, `11,\!111`), and unwraps
// \boxed{}.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_NORMALIZE_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_NORMALIZE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace cascade::verifier::math {

enum class BoxedMode {
  kAll,   // every top-level \boxed{} content, joined with commas
  kLast,  // only the last \boxed{} content
};

// Contents of the top-level \boxed{...} / \fbox{...} groups, left to right.
// Unbalanced braces take the rest of the text.
std::vector<std::string> BoxedContents(absl::string_view text);

// Rewrites `\\frac` (a doubled backslash before a known command) to `\frac`.
std::string FixDoubledBackslashes(absl::string_view text);

// The full normalization applied to every LaTeX answer.
std::string NormalizeLatex(absl::string_view latex, BoxedMode boxed);

}  // namespace cascade::verifier::math

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_NORMALIZE_H_
