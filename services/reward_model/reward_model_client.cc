#include "services/reward_model/reward_model_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace cascade::reward_model {

RewardModelClient::RewardModelClient(std::shared_ptr<cascade::v1::RewardModel::StubInterface> stub)
    : stub_(std::move(stub)) {}

std::unique_ptr<RewardModelClient> RewardModelClient::Connect(const std::string& address) {
  return std::make_unique<RewardModelClient>(cascade::v1::RewardModel::NewStub(MakeChannel(address)));
}

absl::StatusOr<std::vector<float>> RewardModelClient::Score(const std::vector<ClientScoreItem>& items,
                                                            absl::Duration timeout) {
  cascade::v1::ScoreRequest request;
  for (const ClientScoreItem& item : items) {
    auto* out = request.add_items();
    for (const ClientMessage& m : item.prompt) {
      auto* message = out->add_prompt();
      message->set_role(m.role);
      message->set_content(m.content);
    }
    out->set_response(item.response);
  }
  cascade::v1::ScoreResponse response;
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  grpc::Status status = stub_->Score(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  if (response.scores_size() != static_cast<int>(items.size())) {
    return absl::InternalError(absl::StrCat("reward_model Score returned ", response.scores_size(),
                                            " scores for ", items.size(), " items"));
  }
  return std::vector<float>(response.scores().begin(), response.scores().end());
}

absl::StatusOr<std::vector<double>> RewardModelClient::Judge(const std::vector<std::string>& questions,
                                                             absl::Duration timeout) {
  cascade::v1::JudgeRequest request;
  for (const std::string& q : questions) request.add_items()->set_question(q);
  cascade::v1::JudgeResponse response;
  grpc::ClientContext context;
  SetCallTimeout(context, timeout);
  grpc::Status status = stub_->Judge(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  if (response.probability_yes_size() != static_cast<int>(questions.size())) {
    return absl::InternalError(absl::StrCat("reward_model Judge returned ",
                                            response.probability_yes_size(), " answers for ",
                                            questions.size(), " questions"));
  }
  return std::vector<double>(response.probability_yes().begin(), response.probability_yes().end());
}

GrpcSemanticJudge::GrpcSemanticJudge(std::shared_ptr<RewardModelClientInterface> client,
                                     absl::Duration max_timeout)
    : client_(std::move(client)), max_timeout_(max_timeout) {}

std::shared_ptr<GrpcSemanticJudge> GrpcSemanticJudge::Connect(const std::string& address) {
  return std::make_shared<GrpcSemanticJudge>(RewardModelClient::Connect(address));
}

absl::StatusOr<double> GrpcSemanticJudge::ProbabilityYes(absl::string_view question,
                                                         const CancelToken& cancel) const {
  absl::Duration timeout = std::min(max_timeout_, cancel.deadline() - absl::Now());
  if (timeout <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError("no time left for the semantic judge");
  }
  auto p = client_->Judge({std::string(question)}, timeout);
  if (!p.ok()) {
    return absl::Status(p.status().code(),
                        absl::StrCat("semantic judge (reward_model Judge): ", p.status().message()));
  }
  if (p->size() != 1) {
    return absl::InternalError(absl::StrCat("semantic judge (reward_model Judge): ", p->size(),
                                            " answers for 1 question"));
  }
  return (*p)[0];
}

}  // namespace cascade::reward_model
