#include <grpcpp/create_channel.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
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
#include "common/tls.h"
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

// A CA and one certificate for "localhost" and 127.0.0.1 signed by it, made
// by the openssl command (as a deployment's secret would be), in `dir`.
void MakeCertificates(const std::string& dir, const std::string& name) {
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "'; ",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ", name, "-ca.key -out ", name,
      "-ca.crt -days 2 -subj /CN=", name, "-ca 2>/dev/null; ",
      "openssl req -newkey rsa:2048 -nodes -keyout ", name, ".key -out ", name,
      ".csr -subj /CN=localhost 2>/dev/null; ",
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ", name, ".ext; ",
      "openssl x509 -req -in ", name, ".csr -CA ", name, "-ca.crt -CAkey ", name,
      "-ca.key -CAcreateserial -out ", name, ".crt -days 2 -extfile ", name, ".ext 2>/dev/null");
  REQUIRE(std::system(("bash -c \"" + script + "\"").c_str()) == 0);
}

grpc::Status HealthCheck(const std::string& target, const ChannelOptions& options) {
  auto stub = Health::NewStub(MakeChannel(target, options));
  grpc::ClientContext context;
  SetCallTimeout(context, absl::Seconds(5));
  HealthCheckResponse response;
  return stub->Check(&context, HealthCheckRequest(), &response);
}

TEST_CASE("with TLS configured a server takes only clients with a certificate from its CA") {
  char tmpl[] = "/tmp/cascade_tls_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  MakeCertificates(dir, "ours");
  MakeCertificates(dir, "theirs");
  auto ours = LoadTlsFiles(dir + "/ours.crt", dir + "/ours.key", dir + "/ours-ca.crt");
  auto theirs = LoadTlsFiles(dir + "/theirs.crt", dir + "/theirs.key", dir + "/theirs-ca.crt");
  REQUIRE(ours.ok());
  REQUIRE(theirs.ok());

  cascade::v1::Verifier::CallbackService unimplemented;
  auto server = GrpcServer::Start({.address = "127.0.0.1:0", .tls = *ours}, {&unimplemented});
  REQUIRE(server.ok());
  const std::string target = absl::StrCat("localhost:", (*server)->port());
  ChannelOptions options;
  options.max_attempts = 2;  // failures come back quickly

  options.tls = *ours;  // the same secret on both sides, as the chart mounts it
  CHECK(HealthCheck(target, options).ok());
  options.tls.reset();
  options.tls_from_environment = false;
  CHECK(HealthCheck(target, options).error_code() == grpc::StatusCode::UNAVAILABLE);  // plaintext
  options.tls = *theirs;  // a certificate of another CA, which also distrusts ours
  CHECK_FALSE(HealthCheck(target, options).ok());
  options.tls = *ours;
  options.tls->cert_chain = theirs->cert_chain;  // our CA, but someone else's certificate
  options.tls->private_key = theirs->private_key;
  CHECK_FALSE(HealthCheck(target, options).ok());
  // A plaintext server is not reached over TLS either.
  auto plain = GrpcServer::Start({.address = "127.0.0.1:0", .tls_from_environment = false},
                                 {&unimplemented});
  REQUIRE(plain.ok());
  options.tls = *ours;
  CHECK_FALSE(HealthCheck(absl::StrCat("localhost:", (*plain)->port()), options).ok());
  (*plain)->Shutdown();
  (*server)->Shutdown();

  // Bad files and a half-set environment are errors naming what is wrong.
  auto missing = LoadTlsFiles(dir + "/ours.crt", dir + "/nope.key", dir + "/ours-ca.crt");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.status().message()), Catch::Contains("CASCADE_TLS_KEY_FILE=") &&
                                                          Catch::Contains("nope.key"));
  auto not_pem = LoadTlsFiles(dir + "/ours.ext", dir + "/ours.key", dir + "/ours-ca.crt");
  CHECK_THAT(std::string(not_pem.status().message()), Catch::Contains("not a PEM file"));
  setenv(kTlsCertFileEnv, (dir + "/ours.crt").c_str(), 1);
  auto half = ReadTlsEnvironment();
  CHECK_THAT(std::string(half.status().message()),
             Catch::Contains("CASCADE_TLS_KEY_FILE and CASCADE_TLS_CA_FILE not set"));
  setenv(kTlsKeyFileEnv, (dir + "/ours.key").c_str(), 1);
  setenv(kTlsCaFileEnv, (dir + "/ours-ca.crt").c_str(), 1);
  auto whole = ReadTlsEnvironment();
  REQUIRE(whole.ok());
  REQUIRE(whole->has_value());
  CHECK((*whole)->root_certs == ours->root_certs);
  unsetenv(kTlsCertFileEnv);
  unsetenv(kTlsKeyFileEnv);
  unsetenv(kTlsCaFileEnv);
  auto none = ReadTlsEnvironment();
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  std::filesystem::remove_all(dir);
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
