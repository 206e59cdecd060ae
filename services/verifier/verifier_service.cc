#include "services/verifier/verifier_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace cascade::verifier {

VerifierServiceImpl::VerifierServiceImpl(VerifierCore* core, VerifierServiceOptions options)
    : core_(core),
      requests_({.name = "verify-rpc",
                 .threads = options.max_concurrent_requests,
                 .queue_capacity = options.max_queued_requests}) {}

grpc::ServerUnaryReactor* VerifierServiceImpl::Verify(grpc::CallbackServerContext* context,
                                                      const cascade::v1::VerifyRequest* request,
                                                      cascade::v1::VerifyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status scheduled = requests_.TrySchedule([this, context, request, response, reactor] {
    // 1. Proto items -> core inputs; a spec that is not a JSON object is
    //    that item's own invalid_input verdict, decided by the core.
    std::vector<VerifyInput> inputs;
    inputs.reserve(request->items_size());
    for (int i = 0; i < request->items_size(); ++i) {
      const auto& item = request->items(i);
      JsonPath path = JsonPath().Key("items").Index(i);
      VerifyInput input{Json::object(), path, ""};
      if (!item.spec_json().empty()) {
        auto spec = ParseJson(item.spec_json(), path.Key("spec_json").ToString());
        if (spec.ok()) {
          input.item = std::move(*spec);
        } else {
          input.decode_error = std::string(spec.status().message());
        }
      }
      if (input.item.is_object()) input.item["response"] = item.response();
      inputs.push_back(std::move(input));
    }
    // 2. The client's deadline bounds the whole batch.
    absl::Time deadline = absl::FromChrono(context->deadline());
    auto outputs = core_->VerifyBatch(request->backend(), std::move(inputs),
                                      absl::Seconds(request->item_timeout_s()), deadline);
    if (!outputs.ok()) {
      reactor->Finish(ToGrpcStatus(outputs.status()));
      return;
    }
    for (const VerifyOutput& output : *outputs) {
      auto* result = response->add_results();
      result->set_reward(output.reward);
      result->set_verdict(output.verdict);
      result->set_details_json(
          output.details.dump(-1, ' ', false, Json::error_handler_t::replace));
      result->set_seconds(output.seconds);
    }
    reactor->Finish(grpc::Status::OK);
  });
  if (!scheduled.ok()) {
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("verifier has too many requests in flight; retry later (",
                     scheduled.message(), ")"))));
  }
  return reactor;
}

grpc::ServerUnaryReactor* VerifierServiceImpl::ListBackends(
    grpc::CallbackServerContext* context, const cascade::v1::ListBackendsRequest* request,
    cascade::v1::ListBackendsResponse* response) {
  for (const BackendStats& stats : core_->ListBackends()) {
    auto* info = response->add_backends();
    info->set_name(stats.name);
    info->set_workers(stats.workers);
    info->set_queue_capacity(stats.queue_capacity);
    info->set_default_item_timeout_s(absl::ToDoubleSeconds(stats.default_item_timeout));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cascade::verifier
