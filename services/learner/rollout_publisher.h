// Publishes the learner's weights to rollout replicas, over one of two
// transports:
//   - grpc (default): a chunked UpdateWeights stream per replica
//     (services/rollout/weights_sender.h); needs only the replicas' addresses,
//     and each replica succeeds or fails on its own.
//   - collective: the learner and all registered replicas form a weight
//     group (model/weight_group.h, Gloo or NCCL) through the replicas'
//     JoinWeightGroup RPC, and every version is one broadcast from the
//     learner while each replica's ReceiveWeights call is open. The group is
//     formed on the first publish and again whenever the registered replicas
//     change or a broadcast failed. When forming or broadcasting fails (a
//     replica down or incompatible), that publish falls back to the gRPC
//     streams. Before broadcasting over a group formed earlier, every member
//     is asked (GetState, a few seconds at most) whether it is still in it,
//     so a replica that died or restarted since costs one RPC, not the
//     group's timeout; one that dies during the broadcast costs at most the
//     timeout. No version is lost either way.
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
#include "model/weight_group.h"
#include "services/learner/learner_core.h"

namespace cascade::learner {

enum class WeightTransport { kGrpc, kCollective };

// "grpc" or "collective".
absl::StatusOr<WeightTransport> ParseWeightTransport(const std::string& name);

struct RolloutPublisherOptions {
  // Bytes per UpdateWeights message or broadcast bucket (tensors are split
  // or packed to fit).
  size_t bucket_bytes = size_t{32} << 20;
  // Time for one publication to every replica.
  absl::Duration timeout = absl::Minutes(5);
  WeightTransport transport = WeightTransport::kGrpc;
  // Collective transport: backend ("gloo" or "nccl"), the address and port
  // the replicas reach this learner's rendezvous store at (port 0: any free
  // port, for tests and single hosts), and the limit for forming the group
  // and for each broadcast.
  std::string group_backend = "gloo";
  std::string group_address = "127.0.0.1";
  int group_port = 0;
  absl::Duration group_timeout = absl::Seconds(60);
};

class RolloutPublisher : public WeightPublisher {
 public:
  // How long a group member may take to answer the check before a broadcast.
  static constexpr absl::Duration kMemberCheckTimeout = absl::Seconds(5);

  explicit RolloutPublisher(RolloutPublisherOptions options = {}) : options_(options) {}

  // Adds `address` (host:port). Registering an address again (a restarted
  // replica) reconnects to it and marks it behind, so the next Publish sends
  // it the current version. Returns the number of registered replicas.
  int RegisterReplica(const std::string& address) override;

  // Sends `version` to every replica not yet holding it; OK once all hold it.
  // Over gRPC streams whatever the transport (no model at hand).
  absl::Status Publish(int64_t version, const std::vector<TensorView>& tensors) override;

  // Publish with the learner's model, whose parameters `tensors` view: the
  // collective transport broadcasts from the model itself.
  absl::Status PublishModel(int64_t version, const std::vector<TensorView>& tensors,
                            const model::Model& model) override;

  // Versions that went out by broadcast, and publishes that fell back to
  // gRPC streams after a collective failure.
  int64_t broadcasts() const;
  int64_t fallbacks() const;

  // Replicas that acknowledged `version`.
  int AcknowledgedCount(int64_t version) const;
  int64_t AcknowledgedVersion(const std::string& address) const override;
  int replica_count() const override;

 private:
  struct Replica {
    std::string address;
    std::unique_ptr<cascade::v1::Rollout::StubInterface> stub;
    int64_t acknowledged_version = -1;  // -1: nothing acknowledged yet
  };

  // "address: status" for each of `members` whose entry in `results` failed.
  static std::vector<std::string> Failed(const std::vector<Replica*>& members,
                                         const std::vector<absl::Status>& results);
  // The gRPC path of Publish and of the collective fallback.
  absl::Status PublishStreams(int64_t version, const std::vector<TensorView>& tensors)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  // One broadcast of `model` as `version` to `members` (forming the group first if needed).
  absl::Status Broadcast(int64_t version, const model::Model& model,
                         const std::vector<Replica*>& members)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  absl::Status FormGroup(const model::Model& model, const std::vector<Replica*>& members)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  // UNAVAILABLE naming the members of the current group that do not answer
  // or no longer belong to it.
  absl::Status CheckMembers(const std::vector<Replica*>& members)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);

  const RolloutPublisherOptions options_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Replica>> replicas_ ABSL_GUARDED_BY(mu_);
  int64_t broadcasts_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fallbacks_ ABSL_GUARDED_BY(mu_) = 0;
  // Publications are serialised: two concurrent streams of different
  // versions to one replica would race on its version.
  absl::Mutex publish_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // The weight group and the replicas it was formed with, in rank order.
  std::unique_ptr<model::WeightGroup> group_ ABSL_GUARDED_BY(publish_mu_);
  std::vector<std::string> group_members_ ABSL_GUARDED_BY(publish_mu_);
  int64_t formations_ ABSL_GUARDED_BY(publish_mu_) = 0;
};

}  // namespace cascade::learner

#endif  // CASCADE_SERVICES_LEARNER_ROLLOUT_PUBLISHER_H_
