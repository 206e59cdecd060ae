// Builds the verifier's backends by name.
#ifndef CASCADE_SERVICES_VERIFIER_BACKEND_REGISTRY_H_
#define CASCADE_SERVICES_VERIFIER_BACKEND_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/verifier/backends/backend.h"

namespace cascade::verifier {

struct BackendConfig {
  // reward_model service (host:port) whose Judge scores swe items with
  // similarity=semantic; empty = none, and such items get a clear
  // invalid_input error instead of a faked score.
  std::string judge_address;
  // Sandboxed code runs at once; 0 = one per hardware thread.
  int code_workers = 0;
  // Run untrusted code even when a protection (namespaces, seccomp, an
  // unprivileged user) is missing on this host. Off: the code backend
  // refuses to start instead.
  bool allow_degraded_sandbox = false;
};

// The backends every verifier knows, in the order ListBackends reports them.
std::vector<std::string> KnownBackendNames();

// Builds the named backends; an unknown name is INVALID_ARGUMENT listing the
// known ones.
absl::StatusOr<std::vector<std::unique_ptr<Backend>>> BuildBackends(
    const std::vector<std::string>& names, const BackendConfig& config);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKEND_REGISTRY_H_
