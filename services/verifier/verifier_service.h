// gRPC adapter for VerifierCore: converts protos to core calls and
// absl::Status to grpc::Status, nothing else.
//
// Blocking work never runs on gRPC's callback threads: each Verify call is
// handed to a named request pool whose size bounds the requests in flight;
// when that pool's queue is full the call is refused with
// RESOURCE_EXHAUSTED (backpressure instead of an unbounded queue).
#ifndef CASCADE_SERVICES_VERIFIER_VERIFIER_SERVICE_H_
#define CASCADE_SERVICES_VERIFIER_VERIFIER_SERVICE_H_

#include <memory>

#include "cascade/v1/verifier.grpc.pb.h"
#include "common/worker_pool.h"
#include "services/verifier/verifier_core.h"

namespace cascade::verifier {

struct VerifierServiceOptions {
  // Verify calls processed at once.
  int max_concurrent_requests = 16;
  // Verify calls that may wait for a slot before RESOURCE_EXHAUSTED.
  int max_queued_requests = 64;
};

class VerifierServiceImpl : public cascade::v1::Verifier::CallbackService {
 public:
  VerifierServiceImpl(VerifierCore* core, VerifierServiceOptions options = {});

  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context,
                                   const cascade::v1::VerifyRequest* request,
                                   cascade::v1::VerifyResponse* response) override;
  grpc::ServerUnaryReactor* ListBackends(grpc::CallbackServerContext* context,
                                         const cascade::v1::ListBackendsRequest* request,
                                         cascade::v1::ListBackendsResponse* response) override;

 private:
  VerifierCore* const core_;
  WorkerPool requests_;
};

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_VERIFIER_SERVICE_H_
