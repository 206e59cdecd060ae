// Client of the Rollout service, used by the orchestrator, the learner and
// tools. Takes the stub interface, so tests can inject their own stub. Every
// call has a deadline.
#ifndef CASCADE_SERVICES_ROLLOUT_ROLLOUT_CLIENT_H_
#define CASCADE_SERVICES_ROLLOUT_ROLLOUT_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cascade/v1/rollout.grpc.pb.h"
#include "common/channel.h"
#include "services/rollout/weights_sender.h"

namespace cascade::rollout {

// Interface so components that call a rollout replica can be tested alone.
class RolloutClientInterface {
 public:
  virtual ~RolloutClientInterface() = default;
  // Every response of `request` (in arrival order). `on_message`, when set,
  // sees each streamed message as it arrives (progress, early scoring).
  virtual absl::StatusOr<std::vector<cascade::v1::Response>> Generate(
      const cascade::v1::GenerateRequest& request, absl::Duration timeout = kDefaultCallTimeout,
      const std::function<void(const cascade::v1::GenerateResponse&)>& on_message = {}) = 0;
  virtual absl::StatusOr<cascade::v1::RolloutState> GetState(
      absl::Duration timeout = kDefaultCallTimeout) = 0;
  // SendWeights (weights_sender.h) to this replica.
  virtual absl::Status UpdateWeights(int64_t version, const std::vector<NamedBuffer>& tensors,
                                     absl::Duration timeout = absl::Minutes(5),
                                     size_t bucket_bytes = kDefaultBucketBytes) = 0;
};

// Thread-safe.
class RolloutClient : public RolloutClientInterface {
 public:
  explicit RolloutClient(std::shared_ptr<cascade::v1::Rollout::StubInterface> stub);
  // Connects to `address` with the project's channel defaults.
  static std::unique_ptr<RolloutClient> Connect(const std::string& address);

  absl::StatusOr<std::vector<cascade::v1::Response>> Generate(
      const cascade::v1::GenerateRequest& request, absl::Duration timeout = kDefaultCallTimeout,
      const std::function<void(const cascade::v1::GenerateResponse&)>& on_message = {}) override;
  absl::StatusOr<cascade::v1::RolloutState> GetState(
      absl::Duration timeout = kDefaultCallTimeout) override;
  absl::Status UpdateWeights(int64_t version, const std::vector<NamedBuffer>& tensors,
                             absl::Duration timeout = absl::Minutes(5),
                             size_t bucket_bytes = kDefaultBucketBytes) override;

  cascade::v1::Rollout::StubInterface& stub() { return *stub_; }

 private:
  std::shared_ptr<cascade::v1::Rollout::StubInterface> stub_;
};

}  // namespace cascade::rollout

#endif  // CASCADE_SERVICES_ROLLOUT_ROLLOUT_CLIENT_H_
