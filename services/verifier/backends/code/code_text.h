// Text handling for the code backend, apart from any process: pulling the
// program out of a model response, reading test lists in the shapes datasets
// use, and comparing a program's output with the expected one.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_CODE_TEXT_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_CODE_TEXT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json_util.h"

namespace cascade::verifier {

// Returns the program in `response`. Text after the last "</think>" is used
// when present. Among fenced blocks (```tag ... ```), the last one whose tag
// is one of `tags` wins, else the last untagged block, else the last block of
// any tag; a response without fences is the program itself.
std::string ExtractProgram(absl::string_view response, const std::vector<std::string>& tags);

struct TestCase {
  std::string input;
  std::string output;
};

// Reads the `tests` field: a JSON array of {input, output} objects, an object
// {inputs: [...], outputs: [...]}, or either of those serialized as a string
// in JSON or Python-literal (repr) syntax.
absl::StatusOr<std::vector<TestCase>> ParseTests(const Json& tests, const JsonPath& path);

// Parses a Python literal (str, int, float, bool, None, list, tuple, dict) into
// JSON, as datasets store tests with Python's repr().
absl::StatusOr<Json> ParsePythonLiteral(absl::string_view text);

enum class CompareMode {
  kTokens,  // whitespace-separated tokens must be equal
  kExact,   // equal bytes, ignoring "\r" before "\n" and trailing newlines/spaces at the end
  kFloat,   // tokens; numeric tokens equal within the tolerance
};

absl::StatusOr<CompareMode> ParseCompareMode(absl::string_view name);

// True when `actual` matches `expected` under `mode`; `tolerance` is absolute
// and relative (|a - e| <= tolerance * max(1, |e|)) for kFloat.
bool OutputsMatch(absl::string_view actual, absl::string_view expected, CompareMode mode,
                  double tolerance);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_CODE_TEXT_H_
