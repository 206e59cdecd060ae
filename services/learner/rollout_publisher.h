// Publishes the learner's weights to rollout replicas over gRPC (chunked
// UpdateWeights streams, services/rollout/weights_sender.h).
//
// Strict on-policy needs every replica on the new version before the next
// step, so Publish() waits for every acknowledgement and fails, naming the
// replicas, when any is missing. A replica that failed (down, restarting)
// stays registered and is sent the current version on the next Publish();
// one that already holds a version is not sent it again, so re-publishing
// after a failure, or right after RegisterReplica(), only catches up the
// replicas that are behind.
//
// Thread-safe.
#ifndef CASCADE_SERVICES_LEARNER_ROLLOUT_PUBLISHER_H_
#define CASCADE_SERVICES_LEARNER_ROLLOUT_PUBLISHER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cascade/v1/rollout.grpc.pb.h"
#include "services/learner/learner_core.h"

namespace cascade::learner {

struct RolloutPublisherOptions {
  // Bytes per UpdateWeights message (tensors are split or packed to fit).
  size_t bucket_bytes = size_t{32} << 20;
  // Time for one publication to every replica.
  absl::Duration timeout = absl::Minutes(5);
};

class RolloutPublisher : public WeightPublisher {
 public:
  explicit RolloutPublisher(RolloutPublisherOptions options = {}) : options_(options) {}

  // Adds `address` (host:port); registering an address again is a no-op.
  // Returns the number of registered replicas.
  int RegisterReplica(const std::string& address) override;

  // Sends `version` to every replica not yet holding it; OK once all hold it.
  absl::Status Publish(int64_t version, const std::vector<TensorView>& tensors) override;

  // Replicas that acknowledged `version`.
  int AcknowledgedCount(int64_t version) const;
  int replica_count() const override;

 private:
  struct Replica {
    std::string address;
    std::unique_ptr<cascade::v1::Rollout::StubInterface> stub;
    int64_t acknowledged_version = -1;  // -1: nothing acknowledged yet
  };

  const RolloutPublisherOptions options_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Replica>> replicas_ ABSL_GUARDED_BY(mu_);
  // Publications are serialised: two concurrent streams of different
  // versions to one replica would race on its version.
  absl::Mutex publish_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

}  // namespace cascade::learner

#endif  // CASCADE_SERVICES_LEARNER_ROLLOUT_PUBLISHER_H_
