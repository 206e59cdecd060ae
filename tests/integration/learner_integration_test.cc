// The learner over gRPC on loopback: in-process (service + client on a real
// tiny model) and as `learner serve` processes, including two data-parallel
// ranks that follow each other over Gloo.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "common/server.h"
#include "model/runtime.h"
#include "services/learner/learner_client.h"
#include "services/learner/learner_core.h"
#include "services/learner/learner_service.h"
#include "tests/util/subprocess.h"

namespace cascade::learner {
namespace {

namespace fs = std::filesystem;
using cascade::testing::RunCommand;
using cascade::testing::Subprocess;

const std::string kLearnerBinary = std::string(CASCADE_BIN_DIR) + "/learner";

std::string TempDir(const std::string& stem) {
  std::string tmpl = (fs::temp_directory_path() / (stem + "_XXXXXX")).string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

// A fresh tiny model directory written by `learner init`.
std::string InitModel(const std::string& root) {
  const std::string dir = root + "/init";
  auto result = RunCommand({kLearnerBinary, "init", "--arch", "qwen3", "--hidden", "32", "--layers",
                            "2", "--heads", "4", "--kv-heads", "2", "--vocab", "300", "--seed", "3",
                            "--out", dir});
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  return dir;
}

// Prompt of 4 tokens, responses of different lengths; advantages +-1.
cascade::v1::TrainStepRequest MakeRequest(int64_t version, uint32_t seed, int sequences = 4) {
  cascade::v1::TrainStepRequest request;
  request.set_loss(cascade::v1::LOSS_KIND_GRPO);
  request.set_policy_version(version);
  request.set_micro_batch_tokens(16);
  for (int i = 0; i < sequences; ++i) {
    auto* s = request.add_sequences();
    for (int t = 0; t < 4; ++t) {
      s->add_token_ids(static_cast<int32_t>((seed * 31 + t * 7) % 300));
      s->add_loss_mask(0);
    }
    for (int t = 0; t < 3 + 2 * i; ++t) {
      s->add_token_ids(static_cast<int32_t>((seed * 17 + i * 13 + t * 29) % 300));
      s->add_loss_mask(1);
    }
    s->set_advantage(i % 2 == 0 ? 1.0f : -1.0f);
  }
  return request;
}

std::vector<std::vector<int64_t>> Sequences(const cascade::v1::TrainStepRequest& request) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& s : request.sequences()) out.emplace_back(s.token_ids().begin(), s.token_ids().end());
  return out;
}

double MaxAbsDiff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < a[i].size(); ++j) m = std::max(m, std::fabs(double(a[i][j]) - b[i][j]));
  }
  return m;
}

LearnerOptions TestOptions() {
  LearnerOptions o;
  o.num_threads = 1;
  o.optimizer.learning_rate = 1e-2;
  return o;
}

TEST_CASE("a train step over gRPC changes the weights and reports the step's statistics",
          "[learner][integration]") {
  const std::string root = TempDir("learner_rpc");
  auto core = LearnerCore::Open(InitModel(root), TestOptions());
  REQUIRE(core.ok());
  LearnerServiceImpl service(core->get());
  auto server = GrpcServer::Start({.address = "127.0.0.1:0"}, {&service});
  REQUIRE(server.ok());
  auto client = LearnerClient::Connect((*server)->LocalAddress());

  cascade::v1::TrainStepRequest request = MakeRequest(/*version=*/0, /*seed=*/1);
  auto before = (*core)->model().TokenLogProbs(Sequences(request));
  REQUIRE(before.ok());
  // The rollout's log-probs are the learner's own: the mismatch must be ~0.
  int64_t assistant = 0;
  for (int i = 0; i < request.sequences_size(); ++i) {
    auto* s = request.mutable_sequences(i);
    for (int t = 1; t < s->token_ids_size(); ++t) {
      if (s->loss_mask(t) == 0) continue;
      s->add_rollout_logprobs((*before)[i][t - 1]);
      ++assistant;
    }
  }
  auto stats = client->TrainStep(request);
  REQUIRE(stats.ok());
  CHECK(stats->policy_version() == 1);
  CHECK(stats->tokens() == assistant);
  CHECK(std::isfinite(stats->loss()));
  CHECK(stats->grad_norm() > 0);
  CHECK(stats->learning_rate() == Approx(1e-2));
  CHECK(stats->entropy() > 0);
  CHECK(stats->logprob_mismatch() < 1e-4);
  auto after = (*core)->model().TokenLogProbs(Sequences(request));
  REQUIRE(after.ok());
  CHECK(MaxAbsDiff(*before, *after) > 1e-3);
  const std::string metrics = RenderMetricsText();
  CHECK_THAT(metrics, Catch::Contains("cascade_learner_policy_version 1"));
  CHECK_THAT(metrics, Catch::Contains(absl::StrCat("cascade_learner_tokens_total ", assistant)));
  CHECK_THAT(metrics, Catch::Contains("cascade_learner_steps_total{loss=\"grpo\"} 1"));

  // Strict on-policy: the same batch again is stale.
  auto stale = client->TrainStep(request);
  CHECK(stale.status().code() == absl::StatusCode::kFailedPrecondition);
  cascade::v1::TrainStepRequest empty;
  empty.set_loss(cascade::v1::LOSS_KIND_GRPO);
  CHECK(client->TrainStep(empty).status().code() == absl::StatusCode::kInvalidArgument);

  auto saved = client->SaveCheckpoint(root + "/ckpt");
  REQUIRE(saved.ok());
  CHECK(*saved == 1);
  REQUIRE(client->TrainStep(MakeRequest(1, 2)).ok());
  auto loaded = client->LoadCheckpoint(root + "/ckpt");
  REQUIRE(loaded.ok());
  CHECK(*loaded == 1);
  CHECK((*core)->version() == 1);
  CHECK(client->LoadCheckpoint(root + "/missing").status().code() == absl::StatusCode::kNotFound);

  // A model directory's weights come back as a new version with fresh
  // optimizer state: the learner computes what it did before training.
  auto model_version = client->LoadModel(root + "/init");
  REQUIRE(model_version.ok());
  CHECK(*model_version == 2);
  auto reloaded = (*core)->model().TokenLogProbs(Sequences(request));
  REQUIRE(reloaded.ok());
  CHECK(MaxAbsDiff(*before, *reloaded) == 0.0);
  CHECK((*core)->optimizer_scope().empty());
  auto trained = client->TrainStep(MakeRequest(2, 3));
  REQUIRE(trained.ok());
  CHECK(trained->policy_version() == 3);
  // Another architecture is refused, naming the directory, and changes nothing.
  auto other = RunCommand({kLearnerBinary, "init", "--arch", "qwen3", "--hidden", "48", "--layers", "2",
                           "--heads", "4", "--kv-heads", "2", "--vocab", "300", "--seed", "3", "--out",
                           root + "/wider"});
  REQUIRE(other.exit_code == 0);
  auto refused = client->LoadModel(root + "/wider");
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains(root + "/wider"));
  CHECK((*core)->version() == 3);
  CHECK(client->PublishWeights().status().code() == absl::StatusCode::kUnimplemented);
  (*server)->Shutdown();
  fs::remove_all(root);
}

TEST_CASE("two `learner serve` ranks train over gRPC like one process on the whole batch",
          "[learner][integration][distributed]") {
  const std::string root = TempDir("learner_serve_dp");
  const std::string model_dir = InitModel(root);
  const std::string master = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
  auto rank = [&](int r) {
    return std::make_unique<Subprocess>(std::vector<std::string>{
        kLearnerBinary, "serve", "--model", model_dir, "--address", "127.0.0.1:0", "--rank",
        std::to_string(r), "--world-size", "2", "--master", master, "--threads", "1", "--lr",
        "1e-2", "--dp-timeout-s", "8", "--metrics-port", "0"});
  };
  auto follower = rank(1);
  auto leader = rank(0);
  auto log = leader->WaitForStderr("listening on port", absl::Seconds(60));
  INFO(leader->Stderr() << follower->Stderr());
  REQUIRE(log.has_value());
  auto client = LearnerClient::Connect(absl::StrCat("127.0.0.1:", cascade::testing::ParseListeningPort(*log)));

  auto single = LearnerCore::Open(model_dir, TestOptions());
  REQUIRE(single.ok());
  for (int64_t step = 0; step < 2; ++step) {
    auto request = MakeRequest(step, 10 + step, /*sequences=*/5);
    auto stats = client->TrainStep(request);
    REQUIRE(stats.ok());
    auto batch = BatchFromProto(request);
    REQUIRE(batch.ok());
    auto expected = (*single)->TrainStep(*batch);
    REQUIRE(expected.ok());
    CHECK(stats->tokens() == expected->tokens);  // the whole batch, not rank 0's share
    CHECK(stats->loss() == Approx(expected->loss).epsilon(1e-4));
    CHECK(stats->grad_norm() == Approx(expected->grad_norm).epsilon(1e-4));
    // Idle longer than the collective timeout: only rank 0's heartbeats keep
    // the follower alive for the next step.
    if (step == 0) absl::SleepFor(absl::Seconds(10));
  }
  REQUIRE(client->SaveCheckpoint(root + "/dp").ok());
  leader->Signal(SIGTERM);
  CHECK(leader->Wait(absl::Seconds(30)) == std::optional<int>(0));
  CHECK(follower->Wait(absl::Seconds(30)) == std::optional<int>(0));

  auto dp = model::Model::Load(root + "/dp");
  REQUIRE(dp.ok());
  auto probe = Sequences(MakeRequest(0, 99));
  auto got = (*dp)->TokenLogProbs(probe);
  auto want = (*single)->model().TokenLogProbs(probe);
  auto start = (*model::Model::Load(model_dir))->TokenLogProbs(probe);
  REQUIRE((got.ok() && want.ok() && start.ok()));
  CHECK(MaxAbsDiff(*got, *want) < 1e-4);
  CHECK(MaxAbsDiff(*start, *want) > 1e-3);
  fs::remove_all(root);
}

TEST_CASE("a learner killed with SIGKILL after a checkpoint resumes with the steps of an uninterrupted run",
          "[learner][integration][checkpoint]") {
  const std::string root = TempDir("learner_kill");
  const std::string model_dir = InitModel(root);
  const std::string ckpt = root + "/ckpt";
  auto serve = [&](const std::string& dir) {
    return std::make_unique<Subprocess>(std::vector<std::string>{
        kLearnerBinary, "serve", "--model", dir, "--address", "127.0.0.1:0", "--threads", "1",
        "--lr", "1e-2", "--metrics-port", "-1"});
  };
  auto connect = [](Subprocess& p) {
    auto log = p.WaitForStderr("listening on port", absl::Seconds(60));
    INFO(p.Stderr());
    REQUIRE(log.has_value());
    return LearnerClient::Connect(
        absl::StrCat("127.0.0.1:", cascade::testing::ParseListeningPort(*log)));
  };
  std::vector<cascade::v1::TrainStepResponse> resumed;
  {
    auto first = serve(model_dir);
    auto client = connect(*first);
    for (int64_t step = 0; step < 2; ++step) REQUIRE(client->TrainStep(MakeRequest(step, 20 + step)).ok());
    REQUIRE(client->SaveCheckpoint(ckpt).ok());
    REQUIRE(client->TrainStep(MakeRequest(2, 22)).ok());  // lost with the process
    first->Signal(SIGKILL);
    first->Wait(absl::Seconds(10));
  }
  auto second = serve(ckpt);
  auto client = connect(*second);
  CHECK(client->TrainStep(MakeRequest(3, 23)).status().code() ==
        absl::StatusCode::kFailedPrecondition);  // resumed at version 2, not 3
  for (int64_t step = 2; step < 4; ++step) {
    auto stats = client->TrainStep(MakeRequest(step, 20 + step));
    REQUIRE(stats.ok());
    resumed.push_back(*stats);
  }
  REQUIRE(client->SaveCheckpoint(root + "/final").ok());
  second->Signal(SIGTERM);
  CHECK(second->Wait(absl::Seconds(30)) == std::optional<int>(0));

  auto uninterrupted = LearnerCore::Open(model_dir, TestOptions());
  REQUIRE(uninterrupted.ok());
  for (int64_t step = 0; step < 4; ++step) {
    auto batch = BatchFromProto(MakeRequest(step, 20 + step));
    REQUIRE(batch.ok());
    auto stats = (*uninterrupted)->TrainStep(*batch);
    REQUIRE(stats.ok());
    if (step >= 2) CHECK(static_cast<float>(stats->loss) == resumed[step - 2].loss());
  }
  auto final_model = model::Model::Load(root + "/final");
  REQUIRE(final_model.ok());
  auto probe = Sequences(MakeRequest(0, 99));
  auto got = (*final_model)->TokenLogProbs(probe);
  auto want = (*uninterrupted)->model().TokenLogProbs(probe);
  REQUIRE((got.ok() && want.ok()));
  CHECK(MaxAbsDiff(*got, *want) == 0.0);  // bit-identical on CPU
  fs::remove_all(root);
}

TEST_CASE("learner serve rejects bad usage with exit code 2", "[learner][integration]") {
  CHECK(RunCommand({kLearnerBinary, "serve"}).exit_code == 2);
  CHECK(RunCommand({kLearnerBinary, "serve", "--model", "/nonexistent", "--rank", "3",
                    "--world-size", "2"}).exit_code == 2);
  CHECK(RunCommand({kLearnerBinary, "serve", "--model", "/nonexistent", "--address",
                    "127.0.0.1:0"}).exit_code == 1);
  CHECK(RunCommand({kLearnerBinary, "serve", "--help"}).exit_code == 0);
}

}  // namespace
}  // namespace cascade::learner
