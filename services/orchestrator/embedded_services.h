// `orchestrator run` on one machine: every service a cascade needs and does
// not name an address for, started in this process behind real gRPC
// servers on loopback (port 0), so the walker talks to them exactly as it
// talks to remote replicas.
//
// Started in dependency order: reward model (the verifier's judge), rollout,
// learner (publishes to the rollout replicas), verifier. Stopped in reverse.
//
// Thread-safety: construct and destroy on one thread; the services are
// thread-safe.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_EMBEDDED_SERVICES_H_
#define CASCADE_SERVICES_ORCHESTRATOR_EMBEDDED_SERVICES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/orchestrator/cascade_config.h"

namespace cascade::orchestrator {

class EmbeddedServices {
 public:
  // Starts what `config` leaves to embedding; returns `config.services`
  // completed with the loopback addresses in `*resolved`.
  static absl::StatusOr<std::unique_ptr<EmbeddedServices>> Start(const CascadeConfig& config,
                                                                 ServicesConfig* resolved);
  ~EmbeddedServices();
  EmbeddedServices(const EmbeddedServices&) = delete;
  EmbeddedServices& operator=(const EmbeddedServices&) = delete;

 private:
  struct State;
  EmbeddedServices();
  std::unique_ptr<State> state_;
};

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_EMBEDDED_SERVICES_H_
