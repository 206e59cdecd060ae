// Client of the Verifier service, used by the orchestrator and tools.
//
// Takes the stub interface, so tests can inject their own stub. Every call
// has a deadline.
#ifndef CASCADE_SERVICES_VERIFIER_VERIFIER_CLIENT_H_
#define CASCADE_SERVICES_VERIFIER_VERIFIER_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cascade/v1/verifier.grpc.pb.h"
#include "common/channel.h"
#include "common/json_util.h"

namespace cascade::verifier {

struct ClientItem {
  std::string response;
  // Backend-specific fields (DESIGN.md §4), without "response".
  Json spec = Json::object();
};

struct ClientResult {
  double reward = 0.0;
  std::string verdict;
  Json details;
  double seconds = 0.0;
};

// Interface so components that call the verifier can be tested in isolation.
class VerifierClientInterface {
 public:
  virtual ~VerifierClientInterface() = default;
  virtual absl::StatusOr<std::vector<ClientResult>> Verify(
      const std::string& backend, const std::vector<ClientItem>& items,
      absl::Duration item_timeout = absl::ZeroDuration(),
      absl::Duration call_timeout = kDefaultCallTimeout) = 0;
};

// Thread-safe.
class VerifierClient : public VerifierClientInterface {
 public:
  explicit VerifierClient(std::shared_ptr<cascade::v1::Verifier::StubInterface> stub);
  // Connects to `address` with the project's channel defaults.
  static std::unique_ptr<VerifierClient> Connect(const std::string& address);

  absl::StatusOr<std::vector<ClientResult>> Verify(
      const std::string& backend, const std::vector<ClientItem>& items,
      absl::Duration item_timeout = absl::ZeroDuration(),
      absl::Duration call_timeout = kDefaultCallTimeout) override;

  absl::StatusOr<cascade::v1::ListBackendsResponse> ListBackends(
      absl::Duration call_timeout = kDefaultCallTimeout);

 private:
  std::shared_ptr<cascade::v1::Verifier::StubInterface> stub_;
};

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_VERIFIER_CLIENT_H_
