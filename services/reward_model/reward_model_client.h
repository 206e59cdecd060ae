// Client of the RewardModel service, and the verifier's semantic judge
// backed by it.
//
// RewardModelClient takes the stub interface, so tests can inject their own
// stub; every call has a deadline.
#ifndef CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CLIENT_H_
#define CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cascade/v1/reward_model.grpc.pb.h"
#include "common/channel.h"
#include "common/deadline.h"
#include "services/verifier/backends/swe/swe_backend.h"

namespace cascade::reward_model {

struct ClientMessage {
  std::string role;  // "system" | "user" | "assistant" | "tool"
  std::string content;
};

struct ClientScoreItem {
  std::vector<ClientMessage> prompt;
  std::string response;
};

// Interface so components that call the reward model (orchestrator rewards,
// the verifier's swe judge) can be tested in isolation.
class RewardModelClientInterface {
 public:
  virtual ~RewardModelClientInterface() = default;
  // One reward per item, same order.
  virtual absl::StatusOr<std::vector<float>> Score(
      const std::vector<ClientScoreItem>& items, absl::Duration timeout = kDefaultCallTimeout) = 0;
  // P(yes) per question, same order.
  virtual absl::StatusOr<std::vector<double>> Judge(
      const std::vector<std::string>& questions, absl::Duration timeout = kDefaultCallTimeout) = 0;
};

// Thread-safe.
class RewardModelClient : public RewardModelClientInterface {
 public:
  explicit RewardModelClient(std::shared_ptr<cascade::v1::RewardModel::StubInterface> stub);
  // Connects to `address` with the project's channel defaults.
  static std::unique_ptr<RewardModelClient> Connect(const std::string& address);

  absl::StatusOr<std::vector<float>> Score(const std::vector<ClientScoreItem>& items,
                                           absl::Duration timeout = kDefaultCallTimeout) override;
  absl::StatusOr<std::vector<double>> Judge(const std::vector<std::string>& questions,
                                            absl::Duration timeout = kDefaultCallTimeout) override;

 private:
  std::shared_ptr<cascade::v1::RewardModel::StubInterface> stub_;
};

// The swe backend's SemanticJudge over a reward_model server: one Judge call
// per question. The call's deadline is the sooner of the item's CancelToken
// deadline and `max_timeout`. Thread-safe (the client is).
class GrpcSemanticJudge : public verifier::SemanticJudge {
 public:
  explicit GrpcSemanticJudge(std::shared_ptr<RewardModelClientInterface> client,
                             absl::Duration max_timeout = kDefaultCallTimeout);
  // Connects to `address` (the verifier's --judge_address).
  static std::shared_ptr<GrpcSemanticJudge> Connect(const std::string& address);

  absl::StatusOr<double> ProbabilityYes(absl::string_view question,
                                        const CancelToken& cancel) const override;

 private:
  std::shared_ptr<RewardModelClientInterface> client_;
  absl::Duration max_timeout_;
};

}  // namespace cascade::reward_model

#endif  // CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_CLIENT_H_
