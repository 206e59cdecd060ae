#include <grpcpp/create_channel.h>

#include <catch2/catch.hpp>

#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/json_util.h"
#include "common/metrics.h"
#include "common/server.h"
#include "cascade/v1/verifier.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace cascade {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

TEST_CASE("status codes and messages survive the gRPC edge both ways") {
  absl::Status original = absl::ResourceExhaustedError("queue full");
  grpc::Status wire = ToGrpcStatus(original);
  CHECK(wire.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(wire.error_message() == "queue full");
  CHECK(FromGrpcStatus(wire) == original);
  CHECK(FromGrpcStatus(ToGrpcStatus(absl::OkStatus())).ok());
}

TEST_CASE("a server on port 0 reports its port and answers health checks until drained") {
  // A service whose methods all answer UNIMPLEMENTED: the server needs one.
  cascade::v1::Verifier::CallbackService unimplemented;
  auto server = GrpcServer::Start({.address = "127.0.0.1:0"}, {&unimplemented});
  REQUIRE(server.ok());
  REQUIRE((*server)->port() > 0);

  auto channel = MakeChannel((*server)->LocalAddress());
  auto stub = Health::NewStub(channel);
  grpc::ClientContext context;
  SetCallTimeout(context, absl::Seconds(10));
  HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, HealthCheckRequest(), &response);
  REQUIRE(status.ok());
  CHECK(response.status() == HealthCheckResponse::SERVING);

  (*server)->Shutdown();
  grpc::ClientContext after;
  SetCallTimeout(after, absl::Milliseconds(500));
  CHECK_FALSE(stub->Check(&after, HealthCheckRequest(), &response).ok());
}

TEST_CASE("the retry service config is valid JSON retrying only UNAVAILABLE") {
  auto config = ParseJson(RetryServiceConfigJson({}), "service config");
  REQUIRE(config.ok());
  const Json& policy = (*config)["methodConfig"][0]["retryPolicy"];
  CHECK(policy["maxAttempts"] == 4);
  CHECK(policy["retryableStatusCodes"] == Json::array({"UNAVAILABLE"}));
  CHECK(policy["initialBackoff"] == "0.100s");
}

TEST_CASE("metrics registered on the process registry render in text format") {
  auto& family = prometheus::BuildCounter()
                     .Name("cascade_test_events_total")
                     .Help("Events seen by the test")
                     .Register(*MetricsRegistry());
  family.Add({{"kind", "a"}}).Increment(3);
  std::string text = RenderMetricsText();
  CHECK_THAT(text, Catch::Contains("cascade_test_events_total{kind=\"a\"} 3"));
}

}  // namespace
}  // namespace cascade
