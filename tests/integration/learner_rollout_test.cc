// Strict on-policy weight sync on loopback: a learner publishes every new
// version to two rollout replicas over chunked gRPC streams; both serve it
// before the next step, the rollout-vs-learner log-prob mismatch stays ~0,
// a dead replica does not stop the others, and a restarted replica catches
// up to the current version when it registers again.
#include <catch2/catch.hpp>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/server.h"
#include "model/runtime.h"
#include "services/learner/learner_client.h"
#include "services/learner/learner_core.h"
#include "services/learner/learner_service.h"
#include "services/learner/rollout_publisher.h"
#include "services/rollout/rollout_client.h"
#include "services/rollout/rollout_core.h"
#include "services/rollout/rollout_service.h"
#include "tests/util/subprocess.h"

namespace cascade {
namespace {

namespace fs = std::filesystem;

const std::string kLearnerBinary = std::string(CASCADE_BIN_DIR) + "/learner";

std::string InitModel() {
  std::string root = (fs::temp_directory_path() / "cascade_sync_XXXXXX").string();
  REQUIRE(mkdtemp(root.data()) != nullptr);
  const std::string dir = root + "/init";
  auto result = testing::RunCommand({kLearnerBinary, "init", "--arch", "qwen3", "--hidden", "32",
                                     "--layers", "2", "--heads", "4", "--kv-heads", "2", "--vocab",
                                     "300", "--seed", "11", "--out", dir});
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  return dir;
}

// A rollout replica serving `model_dir` as version 0 on `address`.
struct Replica {
  Replica(const std::string& model_dir, const std::string& address) {
    auto model = model::Model::Load(model_dir, {});
    REQUIRE(model.ok());
    core = std::make_unique<rollout::RolloutCore>(std::move(*model), /*policy_version=*/0,
                                                  rollout::RolloutOptions{});
    service = std::make_unique<rollout::RolloutServiceImpl>(core.get());
    auto started = GrpcServer::Start({.address = address}, {service.get()});
    REQUIRE(started.ok());
    server = std::move(*started);
    client = rollout::RolloutClient::Connect(server->LocalAddress());
  }
  int64_t Version() {
    auto state = client->GetState();
    REQUIRE(state.ok());
    return state->policy_version();
  }
  std::unique_ptr<rollout::RolloutCore> core;
  std::unique_ptr<rollout::RolloutServiceImpl> service;
  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<rollout::RolloutClient> client;
};

// G = 2 sampled responses for each of two prompts at `version`, as a GRPO
// batch with the rollout's own log-probs and advantages of +-1.
cascade::v1::TrainStepRequest RolloutBatch(rollout::RolloutClient& client, int64_t version) {
  cascade::v1::GenerateRequest request;
  const std::vector<std::vector<int>> prompts = {{5, 6, 7, 8}, {40, 41}};
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto* prompt = request.add_prompts();
    prompt->set_prompt_id(absl::StrCat("p", i));
    for (int id : prompts[i]) prompt->add_token_ids(id);
  }
  request.set_samples_per_prompt(2);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_max_new_tokens(6);
  request.mutable_sampling()->set_seed(static_cast<uint64_t>(version) + 1);
  request.set_policy_version(version);
  auto responses = client.Generate(request, absl::Seconds(60));
  REQUIRE(responses.ok());
  REQUIRE(responses->size() == 4);

  cascade::v1::TrainStepRequest batch;
  batch.set_loss(cascade::v1::LOSS_KIND_GRPO);
  batch.set_policy_version(version);
  for (const cascade::v1::Response& response : *responses) {
    REQUIRE(response.policy_version() == version);
    const auto& prompt = prompts[response.prompt_id() == "p0" ? 0 : 1];
    auto* sequence = batch.add_sequences();
    for (int id : prompt) {
      sequence->add_token_ids(id);
      sequence->add_loss_mask(0);
    }
    for (int id : response.token_ids()) {
      sequence->add_token_ids(id);
      sequence->add_loss_mask(1);
    }
    for (float logprob : response.logprobs()) sequence->add_rollout_logprobs(logprob);
    sequence->set_advantage(response.sample_index() == 0 ? 1.0f : -1.0f);
  }
  return batch;
}

absl::StatusOr<cascade::v1::PublishWeightsResponse> Publish(cascade::v1::Learner::Stub& stub) {
  grpc::ClientContext context;
  SetCallTimeout(context, absl::Seconds(60));
  cascade::v1::PublishWeightsResponse response;
  absl::Status status = FromGrpcStatus(
      stub.PublishWeights(&context, cascade::v1::PublishWeightsRequest(), &response));
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<int> Register(cascade::v1::Learner::Stub& stub, const std::string& address) {
  grpc::ClientContext context;
  SetCallTimeout(context, absl::Seconds(60));
  cascade::v1::RegisterRolloutRequest request;
  request.set_address(address);
  cascade::v1::RegisterRolloutResponse response;
  absl::Status status = FromGrpcStatus(stub.RegisterRollout(&context, request, &response));
  if (!status.ok()) return status;
  return response.replicas();
}

TEST_CASE("every published version reaches both replicas and a restarted replica catches up",
          "[integration]") {
  const std::string model_dir = InitModel();
  auto replica_a = std::make_unique<Replica>(model_dir, "127.0.0.1:0");
  auto replica_b = std::make_unique<Replica>(model_dir, "127.0.0.1:0");
  const std::string address_b = absl::StrCat("127.0.0.1:", replica_b->server->port());

  learner::LearnerOptions options;
  options.optimizer.learning_rate = 1e-2;
  options.num_threads = 1;
  auto core = learner::LearnerCore::Open(model_dir, options);
  REQUIRE(core.ok());
  learner::RolloutPublisher publisher({.bucket_bytes = 64 << 10});
  learner::LearnerServiceImpl service(core->get(), {.publisher = &publisher});
  auto server = GrpcServer::Start({.address = "127.0.0.1:0"}, {&service});
  REQUIRE(server.ok());
  auto learner_client = learner::LearnerClient::Connect((*server)->LocalAddress());
  auto stub = cascade::v1::Learner::NewStub(MakeChannel((*server)->LocalAddress()));

  REQUIRE(*Register(*stub, replica_a->server->LocalAddress()) == 1);
  REQUIRE(*Register(*stub, address_b) == 2);

  // 1. Strict on-policy steps: generate at v on a replica, train, publish v+1.
  for (int64_t version = 0; version < 3; ++version) {
    Replica& sampler = version % 2 == 0 ? *replica_a : *replica_b;
    auto step = learner_client->TrainStep(RolloutBatch(*sampler.client, version));
    REQUIRE(step.ok());
    CHECK(step->policy_version() == version + 1);
    // The rollout sampled with exactly the learner's weights.
    CHECK(step->logprob_mismatch() < 1e-4);
    auto published = Publish(*stub);
    REQUIRE(published.ok());
    CHECK(published->version() == version + 1);
    CHECK(published->acknowledged() == 2);
    CHECK(replica_a->Version() == version + 1);
    CHECK(replica_b->Version() == version + 1);
  }

  // 2. Replica B dies: the next version still reaches A, and the failure names B.
  replica_b.reset();
  auto step = learner_client->TrainStep(RolloutBatch(*replica_a->client, 3));
  REQUIRE(step.ok());
  auto published = Publish(*stub);
  REQUIRE_FALSE(published.ok());
  CHECK(published.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(published.status().message()),
             Catch::Contains("1 of 2 rollout replicas acknowledged version 4") &&
                 Catch::Contains(address_b));
  CHECK(replica_a->Version() == 4);
  auto stale = RolloutBatch(*replica_a->client, 4);
  CHECK(stale.sequences_size() == 4);

  // 3. B restarts from the base model (version 0) at the same address and
  //    registers again: it is brought to version 4 and serves on-policy data.
  replica_b = std::make_unique<Replica>(model_dir, address_b);
  CHECK(replica_b->Version() == 0);
  REQUIRE(Register(*stub, address_b).ok());
  CHECK(replica_b->Version() == 4);
  auto caught_up = learner_client->TrainStep(RolloutBatch(*replica_b->client, 4));
  REQUIRE(caught_up.ok());
  CHECK(caught_up->logprob_mismatch() < 1e-4);
  auto republished = Publish(*stub);
  REQUIRE(republished.ok());
  CHECK(republished->acknowledged() == 2);

  (*server)->Shutdown();
  fs::remove_all(fs::path(model_dir).parent_path());
}

}  // namespace
}  // namespace cascade
