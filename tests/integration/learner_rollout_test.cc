// Strict on-policy weight sync on loopback: a learner publishes every new
// version to two rollout replicas over chunked gRPC streams; both serve it
// before the next step, the rollout-vs-learner log-prob mismatch stays ~0,
// a dead replica does not stop the others, and a restarted replica catches
// up to the current version when it registers again.
#include <signal.h>
#include <unistd.h>

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
const std::string kRolloutBinary = std::string(CASCADE_BIN_DIR) + "/rollout";

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

TEST_CASE("the collective transport broadcasts every version and falls back to streams when a replica dies",
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
  // Small buckets: every version takes many broadcasts.
  // A group timeout far above what any publish below may take: a dead or
  // restarted member must be noticed before the broadcast, not by it.
  const absl::Duration group_timeout = absl::Seconds(40);
  learner::RolloutPublisher publisher({.bucket_bytes = 16 << 10,
                                       .transport = learner::WeightTransport::kCollective,
                                       .group_timeout = group_timeout});
  learner::LearnerServiceImpl service(core->get(), {.publisher = &publisher});
  auto server = GrpcServer::Start({.address = "127.0.0.1:0"}, {&service});
  REQUIRE(server.ok());
  auto learner_client = learner::LearnerClient::Connect((*server)->LocalAddress());
  auto stub = cascade::v1::Learner::NewStub(MakeChannel((*server)->LocalAddress()));

  REQUIRE(*Register(*stub, replica_a->server->LocalAddress()) == 1);
  REQUIRE(*Register(*stub, address_b) == 2);

  // 1. Every version is one broadcast to both replicas; they serve it on-policy.
  const int64_t broadcasts_before = publisher.broadcasts();
  for (int64_t version = 0; version < 3; ++version) {
    Replica& sampler = version % 2 == 0 ? *replica_a : *replica_b;
    auto step = learner_client->TrainStep(RolloutBatch(*sampler.client, version));
    REQUIRE(step.ok());
    CHECK(step->logprob_mismatch() < 1e-4);
    auto published = Publish(*stub);
    REQUIRE(published.ok());
    CHECK(published->acknowledged() == 2);
    CHECK(replica_a->Version() == version + 1);
    CHECK(replica_b->Version() == version + 1);
  }
  CHECK(publisher.broadcasts() == broadcasts_before + 3);
  CHECK(publisher.fallbacks() == 0);

  // 2. B dies: the check before the broadcast fails, the version still
  //    reaches A over a stream, and the error names B; nobody waited for the
  //    group's timeout.
  replica_b.reset();
  auto step = learner_client->TrainStep(RolloutBatch(*replica_a->client, 3));
  REQUIRE(step.ok());
  absl::Time start = absl::Now();
  auto published = Publish(*stub);
  CHECK(absl::Now() - start < group_timeout / 4);
  REQUIRE_FALSE(published.ok());
  CHECK_THAT(std::string(published.status().message()),
             Catch::Contains("1 of 2 rollout replicas acknowledged version 4") &&
                 Catch::Contains(address_b));
  // At least once: the channel's retry policy repeats the UNAVAILABLE call.
  CHECK(publisher.fallbacks() >= 1);
  CHECK(replica_a->Version() == 4);
  auto on_policy = learner_client->TrainStep(RolloutBatch(*replica_a->client, 4));
  REQUIRE(on_policy.ok());
  CHECK(on_policy->logprob_mismatch() < 1e-4);

  // 3. B restarts at version 0 and registers: a new group is formed with
  //    both replicas and the current version is broadcast to them.
  replica_b = std::make_unique<Replica>(model_dir, address_b);
  const int64_t broadcasts_before_restart = publisher.broadcasts();
  REQUIRE(Register(*stub, address_b).ok());
  CHECK(replica_b->Version() == 5);
  CHECK(publisher.broadcasts() == broadcasts_before_restart + 1);
  const int64_t fallbacks = publisher.fallbacks();
  auto caught_up = learner_client->TrainStep(RolloutBatch(*replica_b->client, 5));
  REQUIRE(caught_up.ok());
  CHECK(caught_up->logprob_mismatch() < 1e-4);
  auto republished = Publish(*stub);
  REQUIRE(republished.ok());
  CHECK(republished->acknowledged() == 2);
  CHECK(replica_a->Version() == 6);
  CHECK(replica_b->Version() == 6);
  CHECK(publisher.broadcasts() == broadcasts_before_restart + 2);
  CHECK(publisher.fallbacks() == fallbacks);

  // 4. B restarts at the same address and nobody registers it again: it is
  //    alive but outside the group. The check sees that, the version goes to
  //    both over streams at once, and the next version forms a new group.
  replica_b.reset();
  replica_b = std::make_unique<Replica>(model_dir, address_b);
  REQUIRE(replica_b->Version() == 0);
  auto before_restart_step = learner_client->TrainStep(RolloutBatch(*replica_a->client, 6));
  REQUIRE(before_restart_step.ok());
  start = absl::Now();
  auto unregistered = Publish(*stub);
  CHECK(absl::Now() - start < group_timeout / 4);
  REQUIRE(unregistered.ok());
  CHECK(unregistered->acknowledged() == 2);
  CHECK(replica_b->Version() == 7);
  CHECK(publisher.fallbacks() == fallbacks + 1);
  auto after_restart_step = learner_client->TrainStep(RolloutBatch(*replica_b->client, 7));
  REQUIRE(after_restart_step.ok());
  CHECK(after_restart_step->logprob_mismatch() < 1e-4);
  const int64_t broadcasts_before_regroup = publisher.broadcasts();
  REQUIRE(Publish(*stub).ok());
  CHECK(publisher.broadcasts() == broadcasts_before_regroup + 1);
  CHECK(replica_a->Version() == 8);
  CHECK(replica_b->Version() == 8);

  (*server)->Shutdown();
  fs::remove_all(fs::path(model_dir).parent_path());
}

TEST_CASE("a replica refuses a weight group whose parameters do not match its model",
          "[integration]") {
  const std::string model_dir = InitModel();
  Replica replica(model_dir, "127.0.0.1:0");
  auto stub = cascade::v1::Rollout::NewStub(MakeChannel(replica.server->LocalAddress()));
  cascade::v1::JoinWeightGroupRequest join;
  join.set_group_id("g1");
  join.set_backend("gloo");
  join.set_master_address("127.0.0.1");
  join.set_master_port(1);
  join.set_world_size(2);
  join.set_rank(1);
  for (const model::ParameterInfo& info : replica.core->Parameters()) {
    cascade::v1::ParameterSpec* spec = join.add_parameters();
    spec->set_name(info.name);
    spec->set_dtype("float32");
    for (int64_t d : info.shape) spec->add_shape(d);
  }
  join.mutable_parameters(1)->set_shape(0, 7);
  auto call = [&](const cascade::v1::JoinWeightGroupRequest& request) {
    grpc::ClientContext context;
    SetCallTimeout(context, absl::Seconds(30));
    cascade::v1::JoinWeightGroupResponse response;
    return FromGrpcStatus(stub->JoinWeightGroup(&context, request, &response));
  };
  absl::Status refused = call(join);
  CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(refused.message()), Catch::Contains(join.parameters(1).name()));

  join.set_backend("mpi");
  CHECK(call(join).code() == absl::StatusCode::kInvalidArgument);

  // Receiving for a group never joined is refused; the version is unchanged.
  grpc::ClientContext context;
  SetCallTimeout(context, absl::Seconds(30));
  cascade::v1::ReceiveWeightsRequest receive;
  receive.set_group_id("g1");
  receive.set_version(1);
  receive.set_bucket_bytes(1 << 20);
  cascade::v1::UpdateWeightsResponse response;
  CHECK(FromGrpcStatus(stub->ReceiveWeights(&context, receive, &response)).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(replica.Version() == 0);
  fs::remove_all(fs::path(model_dir).parent_path());
}

TEST_CASE("a rollout replica started with --learner registers itself, even before the learner is up",
          "[integration]") {
  const std::string model_dir = InitModel();
  const std::string learner_address = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
  testing::Subprocess replica({kRolloutBinary, "serve", "--model", model_dir, "--address",
                               "127.0.0.1:0", "--metrics_port", "-1", "--threads", "1",
                               "--learner", learner_address});
  auto listening = replica.WaitForStderr("listening on port", absl::Seconds(60));
  INFO(replica.Stderr());
  REQUIRE(listening.has_value());
  const int replica_port = testing::ParseListeningPort(*listening);
  absl::SleepFor(absl::Seconds(1));  // the learner is not up yet

  testing::Subprocess learner({kLearnerBinary, "serve", "--model", model_dir, "--address",
                               learner_address, "--metrics-port", "-1", "--threads", "1", "--lr",
                               "1e-2"});
  INFO(learner.Stderr());
  REQUIRE(replica.WaitForStderr("registered with the learner", absl::Seconds(60)).has_value());
  CHECK_THAT(replica.Stderr(), Catch::Contains(absl::StrCat("as 127.0.0.1:", replica_port)));

  // The learner now publishes to the replica it never listed: strict
  // on-policy steps work through it.
  auto rollout_client = rollout::RolloutClient::Connect(absl::StrCat("127.0.0.1:", replica_port));
  auto learner_client = learner::LearnerClient::Connect(learner_address);
  auto stub = cascade::v1::Learner::NewStub(MakeChannel(learner_address));
  for (int64_t version = 0; version < 2; ++version) {
    auto step = learner_client->TrainStep(RolloutBatch(*rollout_client, version));
    REQUIRE(step.ok());
    CHECK(step->logprob_mismatch() < 1e-4);
    auto published = Publish(*stub);
    REQUIRE(published.ok());
    CHECK(published->acknowledged() == 1);
    auto state = rollout_client->GetState();
    REQUIRE(state.ok());
    CHECK(state->policy_version() == version + 1);
  }
  replica.Signal(SIGTERM);
  learner.Signal(SIGTERM);
  CHECK(replica.Wait(absl::Seconds(30)) == 0);
  CHECK(learner.Wait(absl::Seconds(30)) == 0);
  fs::remove_all(fs::path(model_dir).parent_path());
}

}  // namespace
}  // namespace cascade
