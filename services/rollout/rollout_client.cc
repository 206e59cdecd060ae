#include "services/rollout/rollout_client.h"

#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace cascade::rollout {

RolloutClient::RolloutClient(std::shared_ptr<cascade::v1::Rollout::StubInterface> stub)
    : stub_(std::move(stub)) {}

std::unique_ptr<RolloutClient> RolloutClient::Connect(const std::string& address) {
  return std::make_unique<RolloutClient>(cascade::v1::Rollout::NewStub(MakeChannel(address)));
}

absl::StatusOr<std::vector<cascade::v1::Response>> RolloutClient::Generate(
    const cascade::v1::GenerateRequest& request, absl::Duration timeout,
    const std::function<void(const cascade::v1::GenerateResponse&)>& on_message) {
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  std::unique_ptr<grpc::ClientReaderInterface<cascade::v1::GenerateResponse>> reader =
      stub_->Generate(&context, request);
  std::vector<cascade::v1::Response> responses;
  cascade::v1::GenerateResponse message;
  while (reader->Read(&message)) {
    if (on_message) on_message(message);
    for (auto& r : *message.mutable_responses()) responses.push_back(std::move(r));
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return responses;
}

absl::StatusOr<cascade::v1::RolloutState> RolloutClient::GetState(absl::Duration timeout) {
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  cascade::v1::RolloutState state;
  grpc::Status status = stub_->GetState(&context, cascade::v1::GetRolloutStateRequest(), &state);
  if (!status.ok()) return FromGrpcStatus(status);
  return state;
}

absl::Status RolloutClient::UpdateWeights(int64_t version, const std::vector<NamedBuffer>& tensors,
                                          absl::Duration timeout, size_t bucket_bytes) {
  return SendWeights(*stub_, version, tensors, bucket_bytes, absl::Now() + timeout);
}

}  // namespace cascade::rollout
