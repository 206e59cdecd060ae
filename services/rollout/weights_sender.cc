#include "services/rollout/weights_sender.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/synchronization/blocking_counter.h"
#include "common/grpc_status.h"
#include "common/worker_pool.h"

namespace cascade::rollout {

absl::Status SendWeights(cascade::v1::Rollout::StubInterface& stub, int64_t version,
                         const std::vector<NamedBuffer>& tensors, size_t bucket_bytes,
                         absl::Time deadline, const SendHooks& hooks) {
  if (bucket_bytes == 0) return absl::InvalidArgumentError("bucket_bytes must be positive");
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  cascade::v1::UpdateWeightsResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<cascade::v1::UpdateWeightsRequest>> writer =
      stub.UpdateWeights(&context, &response);

  int64_t written = 0;
  bool stopped = false;  // by a hook
  bool broken = false;   // the stream refused a write (the replica answered early)
  auto write = [&](const cascade::v1::UpdateWeightsRequest& message) {
    if (stopped || broken) return false;
    if (!writer->Write(message)) {
      broken = true;
      return false;
    }
    ++written;
    if (hooks.after_message && !hooks.after_message(written)) {
      stopped = true;
      context.TryCancel();
      return false;
    }
    return true;
  };

  // 1. Header.
  cascade::v1::UpdateWeightsRequest message;
  auto* header = message.mutable_header();
  header->set_version(version);
  header->set_tensor_count(static_cast<int64_t>(tensors.size()));
  int64_t total = 0;
  for (const NamedBuffer& t : tensors) total += static_cast<int64_t>(t.nbytes);
  header->set_total_bytes(total);
  write(message);

  // 2. Buckets. A tensor is cut where the bucket fills up.
  message.Clear();
  size_t in_bucket = 0;
  auto flush = [&]() {
    if (message.bucket().chunks_size() == 0) return true;
    bool ok = write(message);
    message.Clear();
    in_bucket = 0;
    return ok;
  };
  for (const NamedBuffer& t : tensors) {
    size_t offset = 0;
    do {
      if (in_bucket >= bucket_bytes && !flush()) break;
      const size_t take = std::min(t.nbytes - offset, bucket_bytes - in_bucket);
      cascade::v1::TensorChunk* chunk = message.mutable_bucket()->add_chunks();
      chunk->set_name(t.name);
      chunk->set_dtype(model::DTypeName(t.dtype));
      for (int64_t d : t.shape) chunk->add_shape(d);
      chunk->set_offset(static_cast<int64_t>(offset));
      chunk->set_total_bytes(static_cast<int64_t>(t.nbytes));
      chunk->set_data(static_cast<const char*>(t.data) + offset, take);
      offset += take;
      in_bucket += take;
    } while (offset < t.nbytes && !stopped && !broken);
    if (stopped || broken) break;
  }
  flush();

  // 3. Close and collect the replica's verdict.
  if (!stopped && !broken) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (stopped) {
    return absl::CancelledError(absl::StrCat("weights update to version ", version,
                                             " stopped after ", written, " messages"));
  }
  if (!status.ok()) {
    absl::Status error = FromGrpcStatus(status);
    return absl::Status(error.code(), absl::StrCat("weights update to version ", version, ": ",
                                                   error.message()));
  }
  if (response.version() != version) {
    return absl::InternalError(absl::StrCat("weights update to version ", version,
                                            ": replica acknowledged version ",
                                            response.version()));
  }
  return absl::OkStatus();
}

std::vector<absl::Status> SendWeightsToAll(
    const std::vector<cascade::v1::Rollout::StubInterface*>& stubs, int64_t version,
    const std::vector<NamedBuffer>& tensors, size_t bucket_bytes, absl::Time deadline) {
  std::vector<absl::Status> statuses(stubs.size());
  if (stubs.empty()) return statuses;
  WorkerPool senders({.name = "weights-send",
                      .threads = static_cast<int>(stubs.size()),
                      .queue_capacity = static_cast<int>(stubs.size())});
  absl::BlockingCounter pending(static_cast<int>(stubs.size()));
  for (size_t i = 0; i < stubs.size(); ++i) {
    absl::Status scheduled = senders.TrySchedule([&, i] {
      statuses[i] = SendWeights(*stubs[i], version, tensors, bucket_bytes, deadline);
      pending.DecrementCount();
    });
    if (!scheduled.ok()) {
      statuses[i] = scheduled;
      pending.DecrementCount();
    }
  }
  pending.Wait();
  return statuses;
}

}  // namespace cascade::rollout
