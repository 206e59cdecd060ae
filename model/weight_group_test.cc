#include "model/weight_group.h"

#include <torch/cuda.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>
#include <vector>

#include "model/test_util.h"
#include "model/transformer.h"

namespace cascade::model {
namespace {

using testing::MakeTempDir;
using testing::TinyConfig;

std::unique_ptr<Model> Tiny(uint64_t seed, const std::string& dtype = "float32") {
  RuntimeOptions options;
  options.num_threads = 1;
  options.dtype = dtype;
  auto m = Model::CreateRandom(TinyConfig(Arch::kQwen3), seed, options, /*perturb=*/0.2);
  REQUIRE(m.ok());
  return std::move(*m);
}

const std::vector<std::vector<int64_t>> kProbe = {{5, 17, 256, 3, 999}, {42, 7}};

std::vector<std::vector<float>> Logits(const Model& m) {
  auto logits = m.Logits(kProbe, /*use_cache=*/false);
  REQUIRE(logits.ok());
  return *logits;
}

TEST_CASE("a weight group broadcasts a model to every replica, across buckets and dtypes",
          "[model][weight_group]") {
  auto learner = Tiny(1);
  auto replica_f32 = Tiny(2);
  auto replica_bf16 = Tiny(3, "bfloat16");
  // What a bfloat16 replica must end up with: the learner's weights, rounded.
  const std::string dir = MakeTempDir("weight_group");
  REQUIRE(learner->Save(dir).ok());
  auto expected_bf16 = Model::Load(dir, {.device = "cpu", .dtype = "bfloat16", .num_threads = 1});
  REQUIRE(expected_bf16.ok());
  REQUIRE(Logits(*replica_f32) != Logits(*learner));

  WeightGroupOptions options;
  options.world_size = 3;
  options.group_id = "test-1";
  options.timeout_seconds = 60;
  auto host = WeightGroup::Host(options);
  REQUIRE(host.ok());
  CHECK((*host)->port() > 0);
  // 1000-byte buckets: many buckets, and parameters that span several.
  const size_t bucket_bytes = 1000;
  std::vector<StatusOr<std::unique_ptr<Model>>> received;
  received.emplace_back(InternalError("not run"));
  received.emplace_back(InternalError("not run"));
  std::vector<std::unique_ptr<WeightGroup>> members(2);
  std::vector<std::thread> ranks;
  for (int rank = 1; rank <= 2; ++rank) {
    ranks.emplace_back([&, rank] {
      WeightGroupOptions mine = options;
      mine.rank = rank;
      mine.master_port = (*host)->port();
      auto joined = WeightGroup::Join(mine);
      if (!joined.ok()) {
        received[rank - 1] = joined.status();
        return;
      }
      members[rank - 1] = std::move(*joined);
      const Model& like = rank == 1 ? *replica_f32 : *replica_bf16;
      received[rank - 1] = members[rank - 1]->Receive(like, DType::kF32, bucket_bytes);
    });
  }
  REQUIRE((*host)->Connect().ok());
  Status sent = (*host)->Send(*learner, bucket_bytes);
  for (std::thread& t : ranks) t.join();
  REQUIRE(sent.ok());
  for (auto& r : received) REQUIRE(r.ok());

  // Bit-identical weights in float32, the learner's rounded ones in bfloat16.
  CHECK(Logits(*received[0].value()) == Logits(*learner));
  CHECK(Logits(*received[1].value()) == Logits(**expected_bf16));
  CHECK(received[1].value()->Parameters()[0].dtype == DType::kBF16);

  // The same group carries the next version too.
  auto next = Tiny(4);
  std::thread again([&] {
    received[0] = members[0]->Receive(*replica_f32, DType::kF32, size_t{1} << 20);
  });
  std::thread again_bf16([&] {
    received[1] = members[1]->Receive(*replica_bf16, DType::kF32, size_t{1} << 20);
  });
  REQUIRE((*host)->Send(*next, size_t{1} << 20).ok());
  again.join();
  again_bf16.join();
  REQUIRE(received[0].ok());
  REQUIRE(received[1].ok());
  CHECK(Logits(*received[0].value()) == Logits(*next));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a weight group refuses bad settings and fails when a member never arrives",
          "[model][weight_group]") {
  WeightGroupOptions options;
  options.backend = "mpi";
  CHECK(WeightGroup::Host(options).status().code() == StatusCode::kInvalidArgument);
  options.backend = "gloo";
  options.world_size = 1;
  CHECK(WeightGroup::Host(options).status().code() == StatusCode::kInvalidArgument);
  options.world_size = 2;
  options.rank = 2;
  CHECK(WeightGroup::Join(options).status().code() == StatusCode::kInvalidArgument);
  if (!WeightGroupBackendAvailable("nccl").ok()) {
    CHECK(WeightGroupBackendAvailable("nccl").code() == StatusCode::kUnimplemented);
    CHECK_THAT(WeightGroupBackendAvailable("nccl").message(), Catch::Contains("NCCL"));
  }

  // Rank 1 never comes: rank 0's Connect gives up after the timeout.
  options.rank = 0;
  options.timeout_seconds = 2;
  auto host = WeightGroup::Host(options);
  REQUIRE(host.ok());
  Status connected = (*host)->Connect();
  CHECK_FALSE(connected.ok());
  // Nor can an unconnected group send.
  auto learner = Tiny(1);
  CHECK((*host)->Send(*learner, 1024).code() == StatusCode::kFailedPrecondition);
}

// Two GPUs (NCCL refuses two ranks on one device): hidden, run by
// scripts/gpu-check.sh where torch sees at least two.
TEST_CASE("over NCCL a weight group broadcasts a GPU model to a replica on another GPU",
          "[.][nccl]") {
  if (torch::cuda::device_count() < 2)
    FAIL("needs two CUDA devices, found " << torch::cuda::device_count());
  REQUIRE(WeightGroupBackendAvailable("nccl").ok());
  auto on = [](const std::string& device, uint64_t seed) {
    RuntimeOptions o;
    o.device = device;
    o.dtype = "bfloat16";
    auto m = Model::CreateRandom(TinyConfig(Arch::kQwen3), seed, o, /*perturb=*/0.2);
    REQUIRE(m.ok());
    return std::move(*m);
  };
  auto learner = on("cuda:0", 1);
  auto replica = on("cuda:1", 2);
  REQUIRE(Logits(*replica) != Logits(*learner));
  WeightGroupOptions options;
  options.backend = "nccl";
  options.group_id = "nccl-test";
  auto host = WeightGroup::Host(options);
  REQUIRE(host.ok());
  StatusOr<std::unique_ptr<Model>> received = InternalError("not run");
  std::unique_ptr<WeightGroup> member;
  std::thread rank1([&] {
    WeightGroupOptions mine = options;
    mine.rank = 1;
    mine.master_port = (*host)->port();
    auto joined = WeightGroup::Join(mine);
    if (!joined.ok()) {
      received = joined.status();
      return;
    }
    member = std::move(*joined);
    received = member->Receive(*replica, DType::kBF16, size_t{1} << 16);
  });
  Status connected = (*host)->Connect();
  Status sent = connected.ok() ? (*host)->Send(*learner, size_t{1} << 16) : connected;
  rank1.join();
  REQUIRE(sent.ok());
  REQUIRE(received.ok());
  CHECK(received.value()->transformer()->device().index() == 1);
  // The same bfloat16 weights on another GPU compute the same logits.
  CHECK(Logits(*received.value()) == Logits(*learner));
}

}  // namespace
}  // namespace cascade::model
