#include "services/learner/rollout_publisher.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/logging.h"
#include "services/rollout/weights_sender.h"

namespace cascade::learner {

int RolloutPublisher::RegisterReplica(const std::string& address) {
  absl::MutexLock lock(&mu_);
  for (const auto& replica : replicas_) {
    if (replica->address == address) return static_cast<int>(replicas_.size());
  }
  auto replica = std::make_unique<Replica>();
  replica->address = address;
  replica->stub = cascade::v1::Rollout::NewStub(MakeChannel(address));
  replicas_.push_back(std::move(replica));
  CASCADE_LOG(INFO) << "registered rollout replica " << address;
  return static_cast<int>(replicas_.size());
}

absl::Status RolloutPublisher::Publish(int64_t version, const std::vector<TensorView>& tensors) {
  absl::MutexLock publishing(&publish_mu_);
  // 1. The learner's float32 views as the sender's safetensors views.
  std::vector<rollout::NamedBuffer> buffers;
  buffers.reserve(tensors.size());
  for (const TensorView& tensor : tensors) {
    if (tensor.dtype != "float32") {
      return absl::InternalError(
          absl::StrCat(tensor.name, ": cannot publish dtype ", tensor.dtype));
    }
    rollout::NamedBuffer buffer;
    buffer.name = tensor.name;
    buffer.dtype = model::DType::kF32;
    buffer.shape = tensor.shape;
    buffer.data = tensor.data.data();
    buffer.nbytes = tensor.data.size();
    buffers.push_back(std::move(buffer));
  }
  // 2. Replicas behind `version` (stubs stay alive: replicas are never removed).
  std::vector<Replica*> behind;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& replica : replicas_) {
      if (replica->acknowledged_version != version) behind.push_back(replica.get());
    }
  }
  if (behind.empty()) return absl::OkStatus();
  std::vector<cascade::v1::Rollout::StubInterface*> stubs;
  for (Replica* replica : behind) stubs.push_back(replica->stub.get());
  // 3. One stream per replica, concurrently; a dead one does not hold back the rest.
  std::vector<absl::Status> results = rollout::SendWeightsToAll(
      stubs, version, buffers, options_.bucket_bytes, absl::Now() + options_.timeout);
  std::vector<std::string> failures;
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < behind.size(); ++i) {
    if (results[i].ok()) {
      behind[i]->acknowledged_version = version;
    } else {
      failures.push_back(absl::StrCat(behind[i]->address, ": ", results[i].ToString()));
    }
  }
  if (failures.empty()) return absl::OkStatus();
  int acknowledged = 0;
  for (const auto& replica : replicas_) acknowledged += replica->acknowledged_version == version;
  return absl::UnavailableError(absl::StrCat(
      acknowledged, " of ", replicas_.size(), " rollout replicas acknowledged version ", version,
      "; the others keep their old version until the next publish: ",
      absl::StrJoin(failures, "; ")));
}

int RolloutPublisher::AcknowledgedCount(int64_t version) const {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const auto& replica : replicas_) count += replica->acknowledged_version == version;
  return count;
}

int RolloutPublisher::replica_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(replicas_.size());
}

}  // namespace cascade::learner
