#include "services/verifier/verifier_client.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace cascade::verifier {

VerifierClient::VerifierClient(std::shared_ptr<cascade::v1::Verifier::StubInterface> stub)
    : stub_(std::move(stub)) {}

std::unique_ptr<VerifierClient> VerifierClient::Connect(const std::string& address) {
  return std::make_unique<VerifierClient>(cascade::v1::Verifier::NewStub(MakeChannel(address)));
}

absl::StatusOr<std::vector<ClientResult>> VerifierClient::Verify(
    const std::string& backend, const std::vector<ClientItem>& items,
    absl::Duration item_timeout, absl::Duration call_timeout) {
  cascade::v1::VerifyRequest request;
  request.set_backend(backend);
  request.set_item_timeout_s(absl::ToDoubleSeconds(item_timeout));
  for (const ClientItem& item : items) {
    auto* proto = request.add_items();
    proto->set_response(item.response);
    proto->set_spec_json(item.spec.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  grpc::ClientContext context;
  SetCallTimeout(context, call_timeout);
  cascade::v1::VerifyResponse response;
  absl::Status status = FromGrpcStatus(stub_->Verify(&context, request, &response));
  if (!status.ok()) return status;
  if (response.results_size() != request.items_size()) {
    return absl::InternalError(absl::StrCat("verifier returned ", response.results_size(),
                                            " results for ", request.items_size(), " items"));
  }
  std::vector<ClientResult> results;
  results.reserve(response.results_size());
  for (const auto& result : response.results()) {
    auto details = ParseJson(result.details_json(), "verifier details");
    results.push_back({result.reward(), result.verdict(),
                       details.ok() ? std::move(*details) : Json::object(), result.seconds()});
  }
  return results;
}

absl::StatusOr<cascade::v1::ListBackendsResponse> VerifierClient::ListBackends(
    absl::Duration call_timeout) {
  grpc::ClientContext context;
  SetCallTimeout(context, call_timeout);
  cascade::v1::ListBackendsResponse response;
  absl::Status status =
      FromGrpcStatus(stub_->ListBackends(&context, cascade::v1::ListBackendsRequest(), &response));
  if (!status.ok()) return status;
  return response;
}

}  // namespace cascade::verifier
