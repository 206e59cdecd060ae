// gRPC adapter for RewardModelCore: converts protos to core calls and
// absl::Status to grpc::Status, nothing else.
//
// Forward passes never run on gRPC's callback threads: each call is handed
// to a named request pool whose size bounds the calls in flight; when its
// queue is full the call is refused with RESOURCE_EXHAUSTED.
// A serving replica's weights stay fixed: train offline with
// `reward_model train` and serve the new directory.
#ifndef CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_SERVICE_H_
#define CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_SERVICE_H_

#include "cascade/v1/reward_model.grpc.pb.h"
#include "common/worker_pool.h"
#include "services/reward_model/reward_model_core.h"

namespace cascade::reward_model {

struct RewardModelServiceOptions {
  // Calls processed at once.
  int max_concurrent_requests = 4;
  // Calls that may wait for a slot before RESOURCE_EXHAUSTED.
  int max_queued_requests = 64;
};

class RewardModelServiceImpl : public cascade::v1::RewardModel::CallbackService {
 public:
  RewardModelServiceImpl(const RewardModelCore* core, RewardModelServiceOptions options = {});

  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context,
                                  const cascade::v1::ScoreRequest* request,
                                  cascade::v1::ScoreResponse* response) override;
  grpc::ServerUnaryReactor* Judge(grpc::CallbackServerContext* context,
                                  const cascade::v1::JudgeRequest* request,
                                  cascade::v1::JudgeResponse* response) override;

 private:
  // Runs `work` on the request pool and finishes the reactor with its status.
  grpc::ServerUnaryReactor* Schedule(grpc::CallbackServerContext* context,
                                     std::function<absl::Status()> work);

  const RewardModelCore* const core_;
  WorkerPool requests_;
};

}  // namespace cascade::reward_model

#endif  // CASCADE_SERVICES_REWARD_MODEL_REWARD_MODEL_SERVICE_H_
