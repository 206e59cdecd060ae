// gRPC adapter for LearnerCore: converts protos to core calls and
// absl::Status to grpc::Status, nothing else.
//
// Training is one optimizer at a time: every call runs on a single-thread
// named pool ("learner-rpc"), which also keeps blocking work off gRPC's
// callback threads. Calls beyond the pool's small queue are refused with
// RESOURCE_EXHAUSTED (an orchestrator sends one step at a time anyway).
//
// RegisterRollout and PublishWeights need a WeightPublisher; without one they
// answer UNIMPLEMENTED.
#ifndef CASCADE_SERVICES_LEARNER_LEARNER_SERVICE_H_
#define CASCADE_SERVICES_LEARNER_LEARNER_SERVICE_H_

#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cascade/v1/learner.grpc.pb.h"
#include "common/worker_pool.h"
#include "services/learner/learner_core.h"

namespace cascade::learner {

struct LearnerServiceOptions {
  // Calls that may wait while a step runs before RESOURCE_EXHAUSTED.
  int max_queued_requests = 8;
  // Receives PublishWeights; not owned; null answers UNIMPLEMENTED.
  WeightPublisher* publisher = nullptr;
  // Data parallel only: a no-op command goes to the followers this often, so
  // an idle learner never lets them time out in the process group.
  absl::Duration heartbeat = absl::Seconds(30);
};

// Proto <-> core conversions (exposed for tests and the data-parallel relay).
absl::StatusOr<Batch> BatchFromProto(const cascade::v1::TrainStepRequest& request);
void StatsToProto(const StepStats& stats, cascade::v1::TrainStepResponse* response);

// Data parallel: rank 0 serves gRPC and relays every TrainStep, SaveCheckpoint
// and LoadCheckpoint to the other ranks as a LearnerCommand (over the
// process group); each rank trains on sequences i with i % world_size == rank.

// This rank's share of a whole batch.
Batch ShardForRank(const Batch& batch, int rank, int world_size);

// Ranks other than 0: executes relayed commands until rank 0 sends shutdown
// (OK) or the process group fails (the error).
[[nodiscard]] absl::Status RunFollower(LearnerCore* core);

// Thread-safe (calls are serialised on the pool).
class LearnerServiceImpl : public cascade::v1::Learner::CallbackService {
 public:
  LearnerServiceImpl(LearnerCore* core, LearnerServiceOptions options = {});
  // Stops the heartbeat; does not stop the followers (see Shutdown).
  ~LearnerServiceImpl() override;

  // Rank 0, after the gRPC server stopped: ends the heartbeat and tells the
  // followers to return from RunFollower (a no-op with one rank). The relay
  // runs on the call pool, after any call still queued there, so it never
  // interleaves with another collective.
  [[nodiscard]] absl::Status Shutdown();

  grpc::ServerUnaryReactor* TrainStep(grpc::CallbackServerContext* context,
                                      const cascade::v1::TrainStepRequest* request,
                                      cascade::v1::TrainStepResponse* response) override;
  grpc::ServerUnaryReactor* SaveCheckpoint(grpc::CallbackServerContext* context,
                                           const cascade::v1::SaveCheckpointRequest* request,
                                           cascade::v1::SaveCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* LoadCheckpoint(grpc::CallbackServerContext* context,
                                           const cascade::v1::LoadCheckpointRequest* request,
                                           cascade::v1::LoadCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* RegisterRollout(
      grpc::CallbackServerContext* context, const cascade::v1::RegisterRolloutRequest* request,
      cascade::v1::RegisterRolloutResponse* response) override;
  grpc::ServerUnaryReactor* PublishWeights(
      grpc::CallbackServerContext* context, const cascade::v1::PublishWeightsRequest* request,
      cascade::v1::PublishWeightsResponse* response) override;

 private:
  // Runs `work` on the pool and finishes the call with its status.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                std::function<absl::Status()> work);

  void StopHeartbeat();

  LearnerCore* const core_;
  const LearnerServiceOptions options_;
  WorkerPool pool_;
  absl::Notification stop_heartbeat_;
  std::thread heartbeat_;  // runs only with more than one rank
};

}  // namespace cascade::learner

#endif  // CASCADE_SERVICES_LEARNER_LEARNER_SERVICE_H_
