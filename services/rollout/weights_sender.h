// Sends a weight update to one rollout replica over gRPC: the learner's side
// of Rollout.UpdateWeights.
//
// Protocol (what weights_assembler.h checks on the other side):
//   1. A WeightsHeader with the version, tensor count and total bytes.
//   2. TensorBuckets of about `bucket_bytes` each: small tensors share a
//      bucket, a tensor larger than the room left is split across buckets
//      (chunks carry their byte offset), so no message grows with the model.
//   3. WritesDone; the replica swaps the weights in and answers the version
//      now serving.
//
// Thread-safe (each call owns its stream); the stub must outlive the call.
#ifndef CASCADE_SERVICES_ROLLOUT_WEIGHTS_SENDER_H_
#define CASCADE_SERVICES_ROLLOUT_WEIGHTS_SENDER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cascade/v1/rollout.grpc.pb.h"
#include "model/safetensors.h"

namespace cascade::rollout {

// One tensor to send: name, dtype, shape and a view of its little-endian
// bytes (not owned; must stay valid during the call).
using NamedBuffer = model::TensorView;

// Default bucket: large enough to amortise per-message costs, far below the
// 256 MiB message limit of the project's channels.
inline constexpr size_t kDefaultBucketBytes = size_t{32} << 20;

struct SendHooks {
  // Called after each message (header included) is written, with the count
  // so far; returning false cancels the call there. Lets tests cut a stream
  // off midway, as a sender that dies would.
  std::function<bool(int64_t messages_written)> after_message;
};

// Streams `tensors` as `version` and waits for the acknowledgement. OK only
// when the replica acknowledged exactly `version`; otherwise the replica's
// error (its old version keeps serving), DEADLINE_EXCEEDED at `deadline`, or
// CANCELLED when a hook stopped the stream.
[[nodiscard]] absl::Status SendWeights(cascade::v1::Rollout::StubInterface& stub, int64_t version,
                                       const std::vector<NamedBuffer>& tensors,
                                       size_t bucket_bytes = kDefaultBucketBytes,
                                       absl::Time deadline = absl::Now() + absl::Minutes(5),
                                       const SendHooks& hooks = {});

// SendWeights to every replica at once (one stream each, concurrently) and
// waits for all of them: one status per stub, in order. A replica that fails
// or dies mid-update does not hold back the others; it keeps its old version
// and must be sent the weights again (e.g. when it comes back).
std::vector<absl::Status> SendWeightsToAll(
    const std::vector<cascade::v1::Rollout::StubInterface*>& stubs, int64_t version,
    const std::vector<NamedBuffer>& tensors, size_t bucket_bytes = kDefaultBucketBytes,
    absl::Time deadline = absl::Now() + absl::Minutes(5));

}  // namespace cascade::rollout

#endif  // CASCADE_SERVICES_ROLLOUT_WEIGHTS_SENDER_H_
