// The verifier over gRPC on loopback with its real backends, and the
// `verifier` binary's command-line contract.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/metrics.h"
#include "common/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/verifier/backend_registry.h"
#include "services/verifier/verifier_client.h"
#include "services/verifier/verifier_core.h"
#include "services/verifier/verifier_service.h"
#include "tests/util/subprocess.h"

namespace cascade::verifier {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

const std::string kVerifierBinary = std::string(CASCADE_BIN_DIR) + "/verifier";
const std::string kExamples = std::string(CASCADE_SOURCE_DIR) + "/examples/verifier";

bool Healthy(const std::string& address) {
  auto stub = Health::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  SetCallTimeout(context, absl::Seconds(5));
  HealthCheckResponse response;
  return stub->Check(&context, HealthCheckRequest(), &response).ok() &&
         response.status() == HealthCheckResponse::SERVING;
}

// An in-process verifier server with the real math, if and swe backends.
struct LoopbackVerifier {
  explicit LoopbackVerifier(absl::Duration item_timeout = absl::Seconds(2)) {
    auto backends = BuildBackends({"math", "if", "swe", "code"}, {.code_workers = 2});
    REQUIRE(backends.ok());
    core = std::make_unique<VerifierCore>(
        std::move(*backends),
        VerifierOptions{.workers_per_backend = 2, .default_item_timeout = item_timeout});
    service = std::make_unique<VerifierServiceImpl>(core.get());
    auto started = GrpcServer::Start({.address = "127.0.0.1:0"}, {service.get()});
    REQUIRE(started.ok());
    server = std::move(*started);
    client = VerifierClient::Connect(server->LocalAddress());
  }
  std::unique_ptr<VerifierCore> core;
  std::unique_ptr<VerifierServiceImpl> service;
  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<VerifierClient> client;
};

ClientItem MathItem(const std::string& response, const std::string& ground_truth) {
  return {response, {{"ground_truth", ground_truth}}};
}

TEST_CASE("a batch with pathological math answers is scored in full and the server stays healthy",
          "[integration]") {
  LoopbackVerifier verifier(/*item_timeout=*/absl::Seconds(2));
  std::string huge_answer = "\\boxed{" + std::string(100 * 1024, '9') + "}";
  std::string deep_nesting = "\\boxed{" + std::string(5000, '(') + "1" + std::string(5000, ')') + "}";
  std::vector<ClientItem> items = {
      MathItem("The answer is \\boxed{\\frac{1}{2}}.", "0.5"),
      MathItem("So we get \\boxed{10^{10^{10^{10}}}}", "1"),
      MathItem(huge_answer, "3"),
      MathItem("Hence $x = 2$, i.e. \\boxed{2}", "2"),
      MathItem(deep_nesting, "1"),
      MathItem("\\boxed{9^{9^{9^{9^{9}}}} - 9^{9^{9^{9^{9}}}}}", "0"),
      MathItem("Therefore the answer is \\boxed{7}.", "8"),
  };
  absl::Time start = absl::Now();
  auto results = verifier.client->Verify("math", items);
  absl::Duration elapsed = absl::Now() - start;
  REQUIRE(results.ok());
  REQUIRE(results->size() == items.size());
  CHECK((*results)[0].reward == 1.0);
  CHECK((*results)[3].reward == 1.0);
  CHECK((*results)[6].reward == 0.0);
  CHECK((*results)[6].verdict == "incorrect");
  // The pathological items end with a verdict (never a hang) and reward 0
  // unless genuinely equal.
  CHECK((*results)[1].reward == 0.0);
  CHECK((*results)[2].reward == 0.0);
  for (const ClientResult& result : *results) {
    CHECK_FALSE(result.verdict.empty());
    CHECK(result.seconds <= 2.5);
  }
  // Two workers, seven items, 2 s limit each: far less than 7 * 2 s.
  CHECK(elapsed < absl::Seconds(8));
  CHECK(Healthy(verifier.server->LocalAddress()));
  auto again = verifier.client->Verify("math", {MathItem("\\boxed{3}", "3")});
  REQUIRE(again.ok());
  CHECK((*again)[0].reward == 1.0);
}

TEST_CASE("malformed specs and unknown backends are reported through gRPC", "[integration]") {
  LoopbackVerifier verifier;
  auto unknown = verifier.client->Verify("maths", {MathItem("\\boxed{1}", "1")});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(unknown.status().message() ==
        "unknown backend \"maths\" (expected one of: code, if, math, swe)");

  auto results = verifier.client->Verify(
      "if", {{"Hello world", {{"instruction_id_list", {"punctuation:no_comma"}},
                              {"kwargs", Json::array({Json::object()})}}},
             {"Hello, world", {{"instruction_id_list", {"punctuation:no_comma"}},
                               {"kwargs", Json::array({Json::object()})}}},
             {"x", {{"kwargs", Json::array()}}}});
  REQUIRE(results.ok());
  CHECK((*results)[0].reward == 1.0);
  CHECK((*results)[1].reward == 0.0);
  CHECK((*results)[2].verdict == "invalid_input");
  CHECK_THAT((*results)[2].details["error"].get<std::string>(),
             Catch::Contains("items[2]"));
}

TEST_CASE("ListBackends reports each backend's pool", "[integration]") {
  LoopbackVerifier verifier;
  auto listed = verifier.client->ListBackends();
  REQUIRE(listed.ok());
  REQUIRE(listed->backends_size() == 4);
  CHECK(listed->backends(0).name() == "code");
  CHECK(listed->backends(0).default_item_timeout_s() == 120.0);
  CHECK(listed->backends(1).name() == "if");
  CHECK(listed->backends(1).workers() == 2);
  CHECK(listed->backends(1).default_item_timeout_s() == 2.0);
}

TEST_CASE("sandboxed code runs through gRPC: accepted, wrong and runaway programs in one batch",
          "[integration]") {
  LoopbackVerifier verifier;
  Json tests = Json::array({{{"input", "2 3\n"}, {"output", "5\n"}}});
  std::vector<ClientItem> items = {
      {"```python\na, b = map(int, input().split())\nprint(a + b)\n```",
       {{"language", "python"}, {"tests", tests}}},
      {"```python\nprint(0)\n```", {{"language", "python"}, {"tests", tests}}},
      {"```python\nwhile True: pass\n```",
       {{"language", "python"}, {"tests", tests}, {"limits", {{"time_s", 0.5}}}}},
      {"```cpp\n#include <cstdio>\nint main(){int a,b;scanf(\"%d %d\",&a,&b);printf(\"%d\\n\",a+b);}\n```",
       {{"language", "cpp"}, {"tests", tests}}},
  };
  auto results = verifier.client->Verify("code", items, absl::ZeroDuration(), absl::Seconds(120));
  REQUIRE(results.ok());
  CHECK((*results)[0].reward == 1.0);
  CHECK((*results)[1].reward == 0.0);
  CHECK((*results)[1].details["first_failure"]["verdict"] == "wrong_answer");
  CHECK((*results)[2].details["first_failure"]["verdict"] == "time_limit");
  CHECK((*results)[3].reward == 1.0);
  CHECK(Healthy(verifier.server->LocalAddress()));
  std::string metrics = RenderMetricsText();
  CHECK_THAT(metrics, Catch::Contains(
      "cascade_verifier_code_runs_total{language=\"cpp\",phase=\"compile\",verdict=\"accepted\"}"));
  CHECK_THAT(metrics, Catch::Contains("verdict=\"time_limit\""));
  CHECK_THAT(metrics, Catch::Contains("cascade_verifier_code_queue_depth 0"));
}

TEST_CASE("verifier serve answers health checks, exposes metrics and drains on SIGTERM",
          "[integration]") {
  testing::Subprocess server({kVerifierBinary, "serve", "--address", "127.0.0.1:0",
                              "--metrics_port", "0", "--backends", "math,swe"});
  auto log = server.WaitForStderr("listening on port", absl::Seconds(30));
  REQUIRE(log.has_value());
  int port = testing::ParseListeningPort(*log);
  REQUIRE(port > 0);
  std::string address = absl::StrCat("127.0.0.1:", port);
  CHECK(Healthy(address));

  auto client = VerifierClient::Connect(address);
  auto results = client->Verify("math", {MathItem("\\boxed{42}", "42")});
  REQUIRE(results.ok());
  CHECK((*results)[0].reward == 1.0);

  std::smatch match;
  std::string text = server.Stderr();
  REQUIRE(std::regex_search(text, match, std::regex("metrics on :([0-9]+)")));
  std::string metrics = testing::HttpGetMetrics(std::stoi(match[1]));
  CHECK_THAT(metrics, Catch::Contains("cascade_verifier_items_total{backend=\"math\"} 1"));
  CHECK_THAT(metrics,
             Catch::Contains("cascade_verifier_verdicts_total{backend=\"math\",verdict=\"correct\"} 1"));

  server.Signal(SIGTERM);
  auto exit_code = server.Wait(absl::Seconds(30));
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
  CHECK_THAT(server.Stderr(), Catch::Contains("draining"));
}

TEST_CASE("verifier eval keeps going past malformed lines and names them", "[integration]") {
  std::string input =
      "{\"response\": \"\\\\boxed{2}\", \"ground_truth\": \"2\"}\n"
      "{\"response\": oops}\n"
      "{\"response\": \"\\\\boxed{3}\", \"ground_truth\": 3}\n"
      "{\"response\": \"\\\\boxed{4}\", \"ground_truth\": \"5\"}\n";
  auto result = testing::RunCommand({kVerifierBinary, "eval", "--backend", "math", "--input", "-"},
                                    input);
  CHECK(result.exit_code == 1);
  CHECK_THAT(result.err, Catch::Contains("<stdin>: line 2: line 1 column"));
  CHECK_THAT(result.err, Catch::Contains("<stdin>: line 3: ground_truth: expected a string, got number"));
  std::vector<Json> lines;
  std::istringstream out(result.out);
  for (std::string line; std::getline(out, line);) lines.push_back(Json::parse(line));
  REQUIRE(lines.size() == 4);
  CHECK(lines[0]["reward"] == 1.0);
  CHECK(lines[1]["verdict"] == "invalid_input");
  CHECK(lines[2]["verdict"] == "invalid_input");
  CHECK(lines[3]["reward"] == 0.0);

  auto strict = testing::RunCommand(
      {kVerifierBinary, "eval", "--backend", "math", "--input", "-", "--strict"}, input);
  CHECK(strict.exit_code == 1);
  CHECK(std::count(strict.out.begin(), strict.out.end(), '\n') == 1);
}

TEST_CASE("verifier follows the exit-code contract for usage errors and --help",
          "[integration]") {
  CHECK(testing::RunCommand({kVerifierBinary, "--help"}).exit_code == 0);
  CHECK(testing::RunCommand({kVerifierBinary, "eval", "--help"}).exit_code == 0);
  auto no_backend = testing::RunCommand({kVerifierBinary, "eval", "--input", "x.jsonl"});
  CHECK(no_backend.exit_code == 2);
  CHECK_THAT(no_backend.err, Catch::Contains("--backend is required"));
  auto bad_backend =
      testing::RunCommand({kVerifierBinary, "eval", "--backend", "maths", "--input", "x.jsonl"});
  CHECK(bad_backend.exit_code == 2);
  CHECK_THAT(bad_backend.err, Catch::Contains("unknown backend \"maths\""));
  auto missing_file = testing::RunCommand(
      {kVerifierBinary, "eval", "--backend", "math", "--input", "/nonexistent.jsonl"});
  CHECK(missing_file.exit_code == 1);
  CHECK_THAT(missing_file.err, Catch::Contains("/nonexistent.jsonl: cannot open file"));
  CHECK(testing::RunCommand({kVerifierBinary, "frobnicate"}).exit_code == 2);
}

}  // namespace
}  // namespace cascade::verifier
