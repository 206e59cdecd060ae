// The verifier's `math` backend: reward 1 when the response's final answer
// is mathematically equivalent to the ground truth.
//
// Item fields (DESIGN.md §4): `response` (string), `ground_truth` (string),
// optional `options` {`precision` (int, default 6), `strict` (bool, default
// true), `allow_set_relation_comp` (bool, default false)}.
//
// Verdicts: "correct" (reward 1), "incorrect" (0), "no_answer" (0, nothing
// could be extracted from the response). Details hold the extracted answers
// and how they matched.
//
// Thread-safety: Check() is const and keeps no mutable state.
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_MATH_BACKEND_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_MATH_BACKEND_H_

#include <memory>

#include "services/verifier/backends/backend.h"

namespace cascade::verifier {

inline constexpr absl::string_view kVerdictNoAnswer = "no_answer";

std::unique_ptr<Backend> NewMathBackend();

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_MATH_MATH_BACKEND_H_
