#include <grpcpp/create_channel.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

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

// Answers ListBackends and remembers which connection (client peer) each call
// came on.
class PeerRecorder final : public cascade::v1::Verifier::CallbackService {
 public:
  grpc::ServerUnaryReactor* ListBackends(grpc::CallbackServerContext* context,
                                         const cascade::v1::ListBackendsRequest*,
                                         cascade::v1::ListBackendsResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      peers_.push_back(context->peer());
    }
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::vector<std::string> peers() const {
    absl::MutexLock lock(&mu_);
    return peers_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> peers_ ABSL_GUARDED_BY(mu_);
};

grpc::Status ListBackends(cascade::v1::Verifier::Stub& stub) {
  grpc::ClientContext context;
  SetCallTimeout(context, absl::Seconds(10));
  cascade::v1::ListBackendsResponse response;
  return stub.ListBackends(&context, cascade::v1::ListBackendsRequest(), &response);
}

TEST_CASE("calls on one channel spread over every address of the target") {
  PeerRecorder first_service, second_service;
  auto first = GrpcServer::Start({.address = "127.0.0.1:0"}, {&first_service});
  auto second = GrpcServer::Start({.address = "127.0.0.1:0"}, {&second_service});
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  // A fixed two-address target stands in for a headless Service's DNS name.
  auto stub = cascade::v1::Verifier::NewStub(MakeChannel(
      absl::StrCat("ipv4:127.0.0.1:", (*first)->port(), ",127.0.0.1:", (*second)->port())));
  for (int i = 0; i < 40; ++i) REQUIRE(ListBackends(*stub).ok());
  // pick_first would send all 40 to the first address.
  CHECK(first_service.peers().size() >= 10);
  CHECK(second_service.peers().size() >= 10);
  CHECK(first_service.peers().size() + second_service.peers().size() == 40);

  // The form the Helm chart uses: "dns:///" resolves the name to its every
  // address (here ::1 and 127.0.0.1, of which only the latter listens).
  auto by_name = cascade::v1::Verifier::NewStub(MakeChannel(absl::StrCat("dns:///localhost:", (*first)->port())));
  CHECK(ListBackends(*by_name).ok());
  CHECK(first_service.peers().size() + second_service.peers().size() == 41);
}

TEST_CASE("a maximum connection age makes clients reconnect without failing a call") {
  PeerRecorder aged_service, steady_service;
  auto aged = GrpcServer::Start({.address = "127.0.0.1:0", .max_connection_age = absl::Milliseconds(300)},
                                {&aged_service});
  auto steady = GrpcServer::Start({.address = "127.0.0.1:0"}, {&steady_service});
  REQUIRE(aged.ok());
  REQUIRE(steady.ok());
  auto aged_stub = cascade::v1::Verifier::NewStub(MakeChannel((*aged)->LocalAddress()));
  auto steady_stub = cascade::v1::Verifier::NewStub(MakeChannel((*steady)->LocalAddress()));
  for (int i = 0; i < 15; ++i) {
    REQUIRE(ListBackends(*aged_stub).ok());
    REQUIRE(ListBackends(*steady_stub).ok());
    absl::SleepFor(absl::Milliseconds(100));
  }
  // A new connection comes from a new client port: a new peer string.
  auto distinct = [](std::vector<std::string> peers) {
    std::sort(peers.begin(), peers.end());
    return std::unique(peers.begin(), peers.end()) - peers.begin();
  };
  CHECK(distinct(aged_service.peers()) >= 3);
  CHECK(distinct(steady_service.peers()) == 1);
}

TEST_CASE("the channel service config is valid JSON: round_robin, retrying only UNAVAILABLE") {
  auto config = ParseJson(ChannelServiceConfigJson({}), "service config");
  REQUIRE(config.ok());
  CHECK((*config)["loadBalancingConfig"][0].contains("round_robin"));
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
