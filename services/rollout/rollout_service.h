// gRPC adapter for RolloutCore: converts protos to core calls and
// absl::Status to grpc::Status, nothing else.
//
// Generate is a server-streaming reactor fed by the core's scheduler thread:
// responses are written as their batch finishes, one write in flight at a
// time; a cancelled call cancels the core request.
//
// UpdateWeights is a client-streaming reactor: each message is checked and
// copied into a WeightsAssembler on arrival; when the client closes the
// stream the update is applied on a dedicated named thread (building the new
// copy takes long enough that it must not occupy a gRPC callback thread). A
// stream that is cancelled or stops short of the header's totals is dropped,
// and the old version keeps serving.
//
// JoinWeightGroup / ReceiveWeights are the collective transport
// (model/weight_group.h): Join checks the learner's parameter list against
// the served model, answers, and meets the group on a background thread;
// ReceiveWeights runs on the same thread as UpdateWeights' applies, waits for
// that meeting, receives the broadcast and swaps the result in.
#ifndef CASCADE_SERVICES_ROLLOUT_ROLLOUT_SERVICE_H_
#define CASCADE_SERVICES_ROLLOUT_ROLLOUT_SERVICE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cascade/v1/rollout.grpc.pb.h"
#include "common/worker_pool.h"
#include "services/rollout/rollout_core.h"

namespace cascade::rollout {

struct RolloutServiceOptions {
  // Fills Response.text; empty leaves it empty (no tokenizer at hand).
  std::function<std::string(const std::vector<int64_t>&)> decode;
  // Weight updates that may wait for the one being applied before
  // RESOURCE_EXHAUSTED. Default 2.
  int max_queued_weight_updates = 2;
};

class RolloutServiceImpl : public cascade::v1::Rollout::CallbackService {
 public:
  // `core` must outlive the service.
  explicit RolloutServiceImpl(RolloutCore* core, RolloutServiceOptions options = {});

  grpc::ServerWriteReactor<cascade::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const cascade::v1::GenerateRequest* request) override;
  grpc::ServerReadReactor<cascade::v1::UpdateWeightsRequest>* UpdateWeights(
      grpc::CallbackServerContext* context, cascade::v1::UpdateWeightsResponse* response) override;
  grpc::ServerUnaryReactor* GetState(grpc::CallbackServerContext* context,
                                     const cascade::v1::GetRolloutStateRequest* request,
                                     cascade::v1::RolloutState* response) override;
  grpc::ServerUnaryReactor* JoinWeightGroup(grpc::CallbackServerContext* context,
                                            const cascade::v1::JoinWeightGroupRequest* request,
                                            cascade::v1::JoinWeightGroupResponse* response) override;
  grpc::ServerUnaryReactor* ReceiveWeights(grpc::CallbackServerContext* context,
                                           const cascade::v1::ReceiveWeightsRequest* request,
                                           cascade::v1::UpdateWeightsResponse* response) override;

 private:
  class GenerateReactor;
  class UpdateReactor;
  struct WeightGroupState;

  // ReceiveWeights' work, on the apply thread.
  absl::Status Receive(const cascade::v1::ReceiveWeightsRequest& request,
                       cascade::v1::UpdateWeightsResponse* response);

  RolloutCore* const core_;
  const RolloutServiceOptions options_;
  // The newest weight group this replica was asked to join.
  absl::Mutex group_mu_;
  std::shared_ptr<WeightGroupState> group_ ABSL_GUARDED_BY(group_mu_);
  // Declared after what their tasks use, so they stop first.
  // Meets weight groups (each meeting blocks until the group is complete).
  WorkerPool join_pool_;
  // Applies completed weight updates, one at a time.
  WorkerPool apply_pool_;
};

}  // namespace cascade::rollout

#endif  // CASCADE_SERVICES_ROLLOUT_ROLLOUT_SERVICE_H_
