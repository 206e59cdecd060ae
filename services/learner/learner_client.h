// Client of the Learner service, used by the orchestrator and tools.
//
// Takes the stub interface, so tests can inject their own stub. Every call
// has a deadline. Thread-safe.
#ifndef CASCADE_SERVICES_LEARNER_LEARNER_CLIENT_H_
#define CASCADE_SERVICES_LEARNER_LEARNER_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cascade/v1/learner.grpc.pb.h"
#include "common/channel.h"

namespace cascade::learner {

// A step on a small model takes seconds, on a large one minutes.
inline constexpr absl::Duration kDefaultTrainStepTimeout = absl::Minutes(10);

class LearnerClient {
 public:
  explicit LearnerClient(std::shared_ptr<cascade::v1::Learner::StubInterface> stub);
  // Connects to `address` with the project's channel defaults.
  static std::unique_ptr<LearnerClient> Connect(const std::string& address);

  absl::StatusOr<cascade::v1::TrainStepResponse> TrainStep(
      const cascade::v1::TrainStepRequest& request,
      absl::Duration timeout = kDefaultTrainStepTimeout);
  // Returns the step the checkpoint holds.
  absl::StatusOr<int64_t> SaveCheckpoint(const std::string& directory,
                                         absl::Duration timeout = kDefaultTrainStepTimeout);
  // Returns the step restored.
  absl::StatusOr<int64_t> LoadCheckpoint(const std::string& directory,
                                         absl::Duration timeout = kDefaultTrainStepTimeout);
  // Loads a Hugging Face model directory's weights as a new version with
  // fresh optimizer state; returns that version.
  absl::StatusOr<int64_t> LoadModel(const std::string& directory,
                                    absl::Duration timeout = kDefaultTrainStepTimeout);
  // Adds a rollout replica that receives every published version; returns
  // how many are registered.
  absl::StatusOr<int> RegisterRollout(const std::string& address,
                                      absl::Duration timeout = kDefaultCallTimeout);
  absl::StatusOr<cascade::v1::PublishWeightsResponse> PublishWeights(
      const std::string& transport = "grpc", absl::Duration timeout = kDefaultTrainStepTimeout);

 private:
  std::shared_ptr<cascade::v1::Learner::StubInterface> stub_;
};

}  // namespace cascade::learner

#endif  // CASCADE_SERVICES_LEARNER_LEARNER_CLIENT_H_
