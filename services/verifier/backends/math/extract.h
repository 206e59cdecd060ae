// Finds the final answer in a model response.
//
// Candidates are tried by priority, as Math-Verify does: (0) "final answer
// is $X$. I hope" and \boxed{} (the last boxed wins), (50) "final answer ...
// is X", (100) "answer: X", (200) "answer ... X", (300) any math span or
// number. Within one priority the rightmost candidate is tried first, and the
// first candidate that parses is the answer.
//
// Math spans are $..$, $$..$$, \(..\), \[..\], " [..] " and bare \frac{a}{b};
// plain candidates are numbers (thousands separators, decimal commas,
// percentages, currency signs) and simple arithmetic such as `2/3`.
//
// Thread-safety: pure functions over shared, immutable compiled patterns.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_EXTRACT_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_EXTRACT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/deadline.h"
#include "services/verifier/backends/math/equivalence.h"

namespace cascade::verifier::math {

struct ExtractionConfig {
  bool latex = true;        // look for LaTeX spans and \boxed{}
  bool expr = true;         // look for plain numbers and expressions
  int boxed_priority = 0;   // priority of \boxed{} (0 = before everything else)
};

// Extracts and parses the answer. An empty Answer means nothing was found.
// Only DEADLINE_EXCEEDED is returned as an error.
absl::StatusOr<Answer> ExtractAnswer(absl::string_view text, const ExtractionConfig& config,
                                     const CancelToken& cancel);

// Parses a LaTeX answer written without delimiters (a dataset's ground
// truth such as `\frac{1}{2}`); null when it does not parse.
NodePtr ParseBareLatex(absl::string_view latex);

// Multiple-choice letters.
struct StringExtractionConfig {
  std::vector<std::string> strings = {"A", "B", "C", "D"};  // the choices
  bool lowercase = true;  // report the choice lower-cased
};

// {parsed, as written} for the chosen letter, or empty when none was found.
std::vector<std::string> ExtractChoice(absl::string_view text,
                                       const StringExtractionConfig& config);

}  // namespace cascade::verifier::math

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_EXTRACT_H_
