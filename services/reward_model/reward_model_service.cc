#include "services/reward_model/reward_model_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "common/json_util.h"
#include "common/status_macros.h"

namespace cascade::reward_model {
namespace {

absl::StatusOr<std::vector<tokenizer::ChatMessage>> FromProto(
    const google::protobuf::RepeatedPtrField<cascade::v1::ChatMessage>& messages, int item) {
  std::vector<tokenizer::ChatMessage> out;
  for (int j = 0; j < messages.size(); ++j) {
    auto role = ParseRole(messages[j].role());
    if (!role.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("items[", item, "].prompt[", j, "].role: ", role.status().message()));
    }
    tokenizer::ChatMessage m;
    m.role = *role;
    m.content = messages[j].content();
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

RewardModelServiceImpl::RewardModelServiceImpl(const RewardModelCore* core,
                                               RewardModelServiceOptions options)
    : core_(core),
      requests_({.name = "reward-model-rpc",
                 .threads = options.max_concurrent_requests,
                 .queue_capacity = options.max_queued_requests}) {}

grpc::ServerUnaryReactor* RewardModelServiceImpl::Schedule(grpc::CallbackServerContext* context,
                                                           std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time deadline = absl::FromChrono(context->deadline());
  absl::Status scheduled = requests_.TrySchedule([reactor, deadline, work = std::move(work)] {
    // A call that waited in the queue past its deadline is not worth a forward pass.
    if (absl::Now() >= deadline) {
      reactor->Finish(ToGrpcStatus(absl::DeadlineExceededError(
          "reward_model: the call's deadline passed while it waited for a free slot")));
      return;
    }
    reactor->Finish(ToGrpcStatus(work()));
  });
  if (!scheduled.ok()) {
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "reward_model has too many requests in flight; retry later (", scheduled.message(), ")"))));
  }
  return reactor;
}

grpc::ServerUnaryReactor* RewardModelServiceImpl::Score(grpc::CallbackServerContext* context,
                                                        const cascade::v1::ScoreRequest* request,
                                                        cascade::v1::ScoreResponse* response) {
  return Schedule(context, [this, request, response]() -> absl::Status {
    std::vector<ScoreItem> items;
    items.reserve(request->items_size());
    for (int i = 0; i < request->items_size(); ++i) {
      ScoreItem item;
      ASSIGN_OR_RETURN(item.prompt, FromProto(request->items(i).prompt(), i));
      item.response = request->items(i).response();
      items.push_back(std::move(item));
    }
    ASSIGN_OR_RETURN(std::vector<float> scores, core_->Score(items));
    for (float s : scores) response->add_scores(s);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* RewardModelServiceImpl::Judge(grpc::CallbackServerContext* context,
                                                        const cascade::v1::JudgeRequest* request,
                                                        cascade::v1::JudgeResponse* response) {
  return Schedule(context, [this, request, response]() -> absl::Status {
    std::vector<std::string> questions;
    for (const auto& item : request->items()) questions.push_back(item.question());
    ASSIGN_OR_RETURN(std::vector<double> p, core_->Judge(questions));
    for (double v : p) response->add_probability_yes(static_cast<float>(v));
    return absl::OkStatus();
  });
}

}  // namespace cascade::reward_model
