// Status propagation macros, in the shape Abseil users know from Reverb/TF.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(auto value, ComputeValue());
#ifndef CASCADE_COMMON_STATUS_MACROS_H_
#define CASCADE_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CASCADE_CONCAT_INNER_(a, b) a##b
#define CASCADE_CONCAT_(a, b) CASCADE_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status cascade_status_ = (expr);       \
    if (!cascade_status_.ok()) return cascade_status_; \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(CASCADE_CONCAT_(cascade_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // CASCADE_COMMON_STATUS_MACROS_H_
