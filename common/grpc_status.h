// absl::Status <-> grpc::Status, used at the gRPC edge only: cores speak
// absl::Status, adapters convert on the way in and out.
#ifndef CASCADE_COMMON_GRPC_STATUS_H_
#define CASCADE_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace cascade {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace cascade

#endif  // CASCADE_COMMON_GRPC_STATUS_H_
