#include "services/learner/learner_client.h"

#include "common/grpc_status.h"

namespace cascade::learner {

LearnerClient::LearnerClient(std::shared_ptr<cascade::v1::Learner::StubInterface> stub)
    : stub_(std::move(stub)) {}

std::unique_ptr<LearnerClient> LearnerClient::Connect(const std::string& address) {
  return std::make_unique<LearnerClient>(cascade::v1::Learner::NewStub(MakeChannel(address)));
}

absl::StatusOr<cascade::v1::TrainStepResponse> LearnerClient::TrainStep(
    const cascade::v1::TrainStepRequest& request, absl::Duration timeout) {
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  cascade::v1::TrainStepResponse response;
  absl::Status status = FromGrpcStatus(stub_->TrainStep(&context, request, &response));
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<int64_t> LearnerClient::SaveCheckpoint(const std::string& directory,
                                                      absl::Duration timeout) {
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  cascade::v1::SaveCheckpointRequest request;
  request.set_directory(directory);
  cascade::v1::SaveCheckpointResponse response;
  absl::Status status = FromGrpcStatus(stub_->SaveCheckpoint(&context, request, &response));
  if (!status.ok()) return status;
  return response.step();
}

namespace {

absl::StatusOr<int64_t> Load(cascade::v1::Learner::StubInterface& stub, const std::string& directory,
                             bool weights_only, absl::Duration timeout) {
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  cascade::v1::LoadCheckpointRequest request;
  request.set_directory(directory);
  request.set_weights_only(weights_only);
  cascade::v1::LoadCheckpointResponse response;
  absl::Status status = FromGrpcStatus(stub.LoadCheckpoint(&context, request, &response));
  if (!status.ok()) return status;
  return response.step();
}

}  // namespace

absl::StatusOr<int64_t> LearnerClient::LoadCheckpoint(const std::string& directory,
                                                      absl::Duration timeout) {
  return Load(*stub_, directory, /*weights_only=*/false, timeout);
}

absl::StatusOr<int64_t> LearnerClient::LoadModel(const std::string& directory, absl::Duration timeout) {
  return Load(*stub_, directory, /*weights_only=*/true, timeout);
}

absl::StatusOr<int> LearnerClient::RegisterRollout(const std::string& address,
                                                   absl::Duration timeout) {
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  cascade::v1::RegisterRolloutRequest request;
  request.set_address(address);
  cascade::v1::RegisterRolloutResponse response;
  absl::Status status = FromGrpcStatus(stub_->RegisterRollout(&context, request, &response));
  if (!status.ok()) return status;
  return response.replicas();
}

absl::StatusOr<cascade::v1::PublishWeightsResponse> LearnerClient::PublishWeights(
    const std::string& transport, absl::Duration timeout) {
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  cascade::v1::PublishWeightsRequest request;
  request.set_transport(transport);
  cascade::v1::PublishWeightsResponse response;
  absl::Status status = FromGrpcStatus(stub_->PublishWeights(&context, request, &response));
  if (!status.ok()) return status;
  return response;
}

}  // namespace cascade::learner
