// The rollout replica over gRPC on loopback with real tiny models: versioned
// generation, weight updates through SendWeights (whole and cut off), and the
// `rollout serve` command-line contract.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "absl/time/clock.h"
#include "common/server.h"
#include "services/rollout/rollout_client.h"
#include "services/rollout/rollout_core.h"
#include "services/rollout/rollout_service.h"
#include "services/rollout/rollout_test_util.h"
#include "services/rollout/weights_sender.h"
#include "tests/util/subprocess.h"

namespace cascade::rollout {
namespace {

using testing::ExportWeights;
using testing::TinyModel;

const std::string kRolloutBinary = std::string(CASCADE_BIN_DIR) + "/rollout";

// An in-process replica serving TinyModel(seed) as version 0.
struct LoopbackRollout {
  explicit LoopbackRollout(uint64_t seed, RolloutOptions options = {})
      : LoopbackRollout(TinyModel(seed), options) {}
  LoopbackRollout(std::unique_ptr<model::Model> model, RolloutOptions options) {
    REQUIRE(model != nullptr);
    core = std::make_unique<RolloutCore>(std::move(model), /*policy_version=*/0, options);
    service = std::make_unique<RolloutServiceImpl>(core.get());
    auto started = GrpcServer::Start({.address = "127.0.0.1:0"}, {service.get()});
    REQUIRE(started.ok());
    server = std::move(*started);
    client = RolloutClient::Connect(server->LocalAddress());
  }
  std::unique_ptr<RolloutCore> core;
  std::unique_ptr<RolloutServiceImpl> service;
  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<RolloutClient> client;
};

cascade::v1::GenerateRequest GreedyRequest(int64_t version, int samples = 2,
                                           int max_new_tokens = 8) {
  cascade::v1::GenerateRequest request;
  const std::vector<std::vector<int>> prompts = {{1, 2, 3}, {10, 20, 30, 40, 50}, {7}};
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto* p = request.add_prompts();
    p->set_prompt_id("q" + std::to_string(i));
    for (int id : prompts[i]) p->add_token_ids(id);
  }
  request.set_samples_per_prompt(samples);
  request.mutable_sampling()->set_temperature(0);
  request.mutable_sampling()->set_max_new_tokens(max_new_tokens);
  request.set_policy_version(version);
  return request;
}

std::vector<int64_t> PromptOf(const cascade::v1::GenerateRequest& request, const std::string& id) {
  for (const auto& p : request.prompts()) {
    if (p.prompt_id() == id) return {p.token_ids().begin(), p.token_ids().end()};
  }
  FAIL("unknown prompt id " << id);
  return {};
}

// Checks every response against `reference` run directly: greedy tokens equal,
// and the streamed log-probs equal its teacher-forced TokenLogProbs.
void ExpectServedBy(const model::Model& reference, const cascade::v1::GenerateRequest& request,
                    const std::vector<cascade::v1::Response>& responses, int64_t version) {
  REQUIRE(responses.size() ==
          static_cast<size_t>(request.prompts_size() * request.samples_per_prompt()));
  double max_mismatch = 0;
  for (const auto& r : responses) {
    CHECK(r.policy_version() == version);
    std::vector<int64_t> prompt = PromptOf(request, r.prompt_id());
    model::SamplingParams params;
    params.temperature = 0;
    params.max_new_tokens = request.sampling().max_new_tokens();
    auto direct = reference.Generate({model::GenerationRequest{prompt, params}});
    REQUIRE(direct.ok());
    std::vector<int64_t> got(r.token_ids().begin(), r.token_ids().end());
    CHECK(got == (*direct)[0].token_ids);
    std::vector<int64_t> sequence = prompt;
    sequence.insert(sequence.end(), got.begin(), got.end());
    auto scored = reference.TokenLogProbs({sequence});
    REQUIRE(scored.ok());
    REQUIRE(static_cast<size_t>(r.logprobs_size()) == got.size());
    for (size_t t = 0; t < got.size(); ++t) {
      const double learner = (*scored)[0][prompt.size() - 1 + t];
      max_mismatch = std::max(max_mismatch, std::abs(learner - r.logprobs(static_cast<int>(t))));
    }
  }
  CHECK(max_mismatch < 1e-4);
}

TEST_CASE("generate serves the held version and refuses another with failed precondition") {
  LoopbackRollout replica(/*seed=*/1);
  auto reference = TinyModel(1);
  auto request = GreedyRequest(/*version=*/0);
  int messages = 0;
  auto responses = replica.client->Generate(request, absl::Seconds(60),
                                            [&](const cascade::v1::GenerateResponse&) { ++messages; });
  REQUIRE(responses.ok());
  CHECK(messages >= 1);
  ExpectServedBy(*reference, request, *responses, 0);

  auto refused = replica.client->Generate(GreedyRequest(/*version=*/1), absl::Seconds(60));
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refused.status().message().find("serves version 0") != std::string::npos);
}

TEST_CASE("weights sent as version 1 make the replica generate exactly what the new model does") {
  LoopbackRollout replica(/*seed=*/1);
  auto second = TinyModel(/*seed=*/7);
  auto weights = ExportWeights(*second);
  REQUIRE(weights != nullptr);
  // Small buckets: the 256 KB embedding travels in pieces across messages.
  int64_t messages = 0;
  absl::Status sent = SendWeights(replica.client->stub(), /*version=*/1, weights->tensors,
                                  /*bucket_bytes=*/64 << 10, absl::Now() + absl::Seconds(60),
                                  {.after_message = [&](int64_t n) {
                                    messages = n;
                                    return true;
                                  }});
  REQUIRE(sent.ok());
  CHECK(messages > static_cast<int64_t>(weights->total_bytes / (64 << 10)));
  auto state = replica.client->GetState();
  REQUIRE(state.ok());
  CHECK(state->policy_version() == 1);

  auto request = GreedyRequest(/*version=*/1);
  auto responses = replica.client->Generate(request, absl::Seconds(60));
  REQUIRE(responses.ok());
  ExpectServedBy(*second, request, *responses, 1);
  CHECK(replica.client->Generate(GreedyRequest(0)).status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("an update stream cut off midway leaves version 0 serving with its old outputs") {
  LoopbackRollout replica(/*seed=*/1);
  auto request = GreedyRequest(/*version=*/0);
  auto before = replica.client->Generate(request, absl::Seconds(60));
  REQUIRE(before.ok());

  auto weights = ExportWeights(*TinyModel(/*seed=*/7));
  REQUIRE(weights != nullptr);
  const size_t bucket = 64 << 10;
  const int64_t half = static_cast<int64_t>(weights->total_bytes / bucket / 2);
  REQUIRE(half >= 2);
  absl::Status sent = SendWeights(replica.client->stub(), /*version=*/1, weights->tensors, bucket,
                                  absl::Now() + absl::Seconds(60),
                                  {.after_message = [&](int64_t n) { return n < half; }});
  CHECK(sent.code() == absl::StatusCode::kCancelled);

  // The server may still be draining the cancelled stream; it must never swap.
  absl::SleepFor(absl::Milliseconds(200));
  auto state = replica.client->GetState();
  REQUIRE(state.ok());
  CHECK(state->policy_version() == 0);
  auto after = replica.client->Generate(request, absl::Seconds(60));
  REQUIRE(after.ok());
  ExpectServedBy(*TinyModel(1), request, *after, 0);
  REQUIRE(after->size() == before->size());

  // The replica is not wedged: a complete update still goes through.
  REQUIRE(SendWeights(replica.client->stub(), 1, weights->tensors, bucket,
                      absl::Now() + absl::Seconds(60))
              .ok());
  CHECK(replica.client->GetState()->policy_version() == 1);
}

TEST_CASE("weights of another shape are rejected naming the tensor and the old version serves") {
  LoopbackRollout replica(/*seed=*/1);
  model::ModelConfig wider = testing::TinyRolloutConfig();
  wider.intermediate_size = 96;
  auto other = model::Model::CreateRandom(wider, 3, {.num_threads = 1});
  REQUIRE(other.ok());
  auto weights = ExportWeights(**other);
  REQUIRE(weights != nullptr);
  absl::Status sent = SendWeights(replica.client->stub(), 1, weights->tensors, 1 << 20,
                                  absl::Now() + absl::Seconds(60));
  CHECK(sent.code() == absl::StatusCode::kInvalidArgument);
  CHECK(sent.message().find("mlp.") != std::string::npos);
  CHECK(sent.message().find("the model's is") != std::string::npos);
  CHECK(replica.client->GetState()->policy_version() == 0);
}

TEST_CASE("an update to several replicas succeeds on the live ones when one is down") {
  LoopbackRollout live(/*seed=*/1);
  LoopbackRollout dead(/*seed=*/1);
  dead.server->Shutdown();
  auto second = TinyModel(/*seed=*/7);
  auto weights = ExportWeights(*second);
  REQUIRE(weights != nullptr);
  std::vector<cascade::v1::Rollout::StubInterface*> stubs = {&live.client->stub(),
                                                              &dead.client->stub()};
  std::vector<absl::Status> statuses =
      SendWeightsToAll(stubs, /*version=*/1, weights->tensors, /*bucket_bytes=*/64 << 10,
                       absl::Now() + absl::Seconds(20));
  REQUIRE(statuses.size() == 2);
  CHECK(statuses[0].ok());
  CHECK(statuses[1].code() == absl::StatusCode::kUnavailable);
  CHECK(dead.core->policy_version() == 0);
  auto request = GreedyRequest(/*version=*/1);
  auto responses = live.client->Generate(request, absl::Seconds(60));
  REQUIRE(responses.ok());
  ExpectServedBy(*second, request, *responses, 1);
}

TEST_CASE("a generate call abandoned by its client stops scheduling its sequences") {
  // No end-of-sequence token, so every response runs its full 300 tokens, and
  // two sequences per batch: the 24 sequences would take 12 long batches.
  model::ModelConfig endless = testing::TinyRolloutConfig();
  endless.eos_token_ids.clear();
  auto m = model::Model::CreateRandom(endless, 1, {.num_threads = 1});
  REQUIRE(m.ok());
  LoopbackRollout replica(std::move(*m), {.max_batch_tokens = 2 * (5 + 300)});
  auto request = GreedyRequest(/*version=*/0, /*samples=*/8, /*max_new_tokens=*/300);
  auto abandoned = replica.client->Generate(request, absl::Milliseconds(300));
  CHECK(abandoned.status().code() == absl::StatusCode::kDeadlineExceeded);
  absl::Time limit = absl::Now() + absl::Seconds(30);
  RolloutState state = replica.core->State();
  while ((state.queued_requests > 0 || state.running_sequences > 0) && absl::Now() < limit) {
    absl::SleepFor(absl::Milliseconds(20));
    state = replica.core->State();
  }
  CHECK(state.queued_requests == 0);
  CHECK(state.running_sequences == 0);
  CHECK(state.sequences_total < 24);
  // And the replica keeps serving.
  CHECK(replica.client->Generate(GreedyRequest(0, 1, 4), absl::Seconds(60)).ok());
}

TEST_CASE("rollout serve loads a model directory, serves generate and stops cleanly on sigterm") {
  auto weights = ExportWeights(*TinyModel(/*seed=*/4));
  REQUIRE(weights != nullptr);
  ::cascade::testing::Subprocess server({kRolloutBinary, "serve", "--model", weights->dir,
                                         "--address", "127.0.0.1:0", "--metrics_port", "-1",
                                         "--threads", "1"});
  auto log = server.WaitForStderr("listening on port", absl::Seconds(60));
  REQUIRE(log.has_value());
  const int port = ::cascade::testing::ParseListeningPort(*log);
  REQUIRE(port > 0);
  auto client = RolloutClient::Connect("127.0.0.1:" + std::to_string(port));
  auto request = GreedyRequest(0);
  auto responses = client->Generate(request, absl::Seconds(60));
  REQUIRE(responses.ok());
  auto reference = model::Model::Load(weights->dir, {.num_threads = 1});
  REQUIRE(reference.ok());
  ExpectServedBy(**reference, request, *responses, 0);
  server.Signal(SIGTERM);
  CHECK(server.Wait(absl::Seconds(30)) == 0);
}

TEST_CASE("rollout serve without --model is a usage error") {
  auto result = ::cascade::testing::RunCommand({kRolloutBinary, "serve"});
  CHECK(result.exit_code == 2);
  CHECK(result.err.find("--model") != std::string::npos);
}

}  // namespace
}  // namespace cascade::rollout
