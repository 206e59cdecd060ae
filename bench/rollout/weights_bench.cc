// Weight-sync throughput: a ~100M-parameter model's weights (float32) sent
// to an in-process rollout replica over loopback gRPC with SendWeights,
// against a raw memcpy of the same bytes, measured in the same run:
//   memcpy        - one copy of every tensor into preallocated memory
//                   (the floor of any transport: the bytes must move once);
//   apply         - RolloutCore::ApplyWeights alone (building the new copy of
//                   the model from the buffers and swapping it in);
//   grpc e2e      - SendWeights until the replica acknowledged the version
//                   (serialise, loopback TCP, reassemble, apply), per bucket size;
//   gloo broadcast - the learner's collective transport (RolloutPublisher with
//                   a weight group of the learner and the replica): broadcast
//                   over Gloo TCP, build the new model, swap, acknowledge.
// Sender and replica share this process, hence one heap setting for both
// (KeepLargeAllocationsInHeap, as `rollout serve`; --default_malloc: glibc's).
// GB/s = bytes / seconds (1 GB = 1e9 bytes); the best of --repeats runs.
//
// usage: weights_bench [--layers 8] [--hidden 768] [--vocab 32000] [--repeats 3]
//                      [--threads 0] [--device cpu] [--default_malloc]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/server.h"
#include "model/runtime.h"
#include "services/rollout/rollout_client.h"
#include "services/rollout/rollout_core.h"
#include "services/learner/rollout_publisher.h"
#include "services/rollout/heap_tuning.h"
#include "services/rollout/rollout_service.h"
#include "services/rollout/weights_sender.h"

namespace cascade::rollout {
namespace {

struct Args {
  int layers = 8;
  int hidden = 768;
  int vocab = 32000;
  int repeats = 3;
  int threads = 0;
  std::string device = "cpu";
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Run(const Args& args) {
  model::ModelConfig config;
  config.arch = model::Arch::kQwen2;
  config.vocab_size = args.vocab;
  config.hidden_size = args.hidden;
  config.intermediate_size = args.hidden * 8 / 3;
  config.num_hidden_layers = args.layers;
  config.num_attention_heads = 12;
  config.num_key_value_heads = 12;
  config.head_dim = args.hidden / 12;
  config.qkv_bias = true;
  config.eos_token_ids = {args.vocab - 1};
  auto created = model::Model::CreateRandom(
      config, 1, {.device = args.device, .dtype = "float32", .num_threads = args.threads});
  if (!created.ok()) {
    std::fprintf(stderr, "weights_bench: %s\n", created.status().message().c_str());
    return 1;
  }
  // The sender's buffers: what a learner holds after its step (float32).
  std::vector<std::vector<float>> storage;
  std::vector<NamedBuffer> tensors;
  size_t total = 0;
  int64_t params = 0;
  for (const model::ParameterInfo& p : (*created)->Parameters()) {
    int64_t numel = 1;
    for (int64_t d : p.shape) numel *= d;
    params += numel;
    storage.emplace_back(static_cast<size_t>(numel), 0.01f);
    NamedBuffer b;
    b.name = p.name;
    b.dtype = model::DType::kF32;
    b.shape = p.shape;
    b.data = storage.back().data();
    b.nbytes = static_cast<size_t>(numel) * sizeof(float);
    total += b.nbytes;
    tensors.push_back(std::move(b));
  }
  const double gb = static_cast<double>(total) / 1e9;
  std::printf("model: %.1fM parameters, %zu tensors, %.3f GB float32, device %s\n", params / 1e6,
              tensors.size(), gb, args.device.c_str());

  // 1. memcpy of the same bytes into preallocated, pre-touched memory.
  std::vector<std::unique_ptr<char[]>> dst;
  for (const NamedBuffer& t : tensors) {
    dst.emplace_back(new char[t.nbytes]);
    std::memset(dst.back().get(), 0, t.nbytes);
  }
  double best_memcpy = 1e30;
  for (int r = 0; r < args.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < tensors.size(); ++i) std::memcpy(dst[i].get(), tensors[i].data, tensors[i].nbytes);
    best_memcpy = std::min(best_memcpy, Seconds(start));
  }
  dst.clear();

  // 2. A replica on loopback.
  RolloutCore core(std::move(*created), 0);
  RolloutServiceImpl service(&core);
  auto server = GrpcServer::Start({.address = "127.0.0.1:0"}, {&service});
  if (!server.ok()) {
    std::fprintf(stderr, "weights_bench: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  auto client = RolloutClient::Connect((*server)->LocalAddress());

  double best_apply = 1e30;
  int64_t version = 0;
  for (int r = 0; r < args.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    absl::Status applied = core.ApplyWeights(++version, tensors);
    if (!applied.ok()) {
      std::fprintf(stderr, "weights_bench: %s\n", std::string(applied.message()).c_str());
      return 1;
    }
    best_apply = std::min(best_apply, Seconds(start));
  }

  std::printf("\n%-28s %10s %10s %12s\n", "path", "seconds", "GB/s", "vs memcpy");
  std::printf("%-28s %10.4f %10.2f %11.1fx\n", "memcpy", best_memcpy, gb / best_memcpy, 1.0);
  std::printf("%-28s %10.4f %10.2f %11.1fx\n", "apply (no transport)", best_apply, gb / best_apply,
              best_apply / best_memcpy);
  for (size_t bucket_mb : {4, 32, 64}) {
    double best = 1e30;
    for (int r = 0; r < args.repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      absl::Status sent = SendWeights(client->stub(), ++version, tensors, bucket_mb << 20,
                                      absl::Now() + absl::Minutes(5));
      if (!sent.ok()) {
        std::fprintf(stderr, "weights_bench: %s\n", std::string(sent.message()).c_str());
        return 1;
      }
      best = std::min(best, Seconds(start));
    }
    char label[64];
    std::snprintf(label, sizeof(label), "grpc e2e, %zu MiB buckets", bucket_mb);
    std::printf("%-28s %10.4f %10.2f %11.1fx\n", label, best, gb / best, best / best_memcpy);
  }

  // 3. Collective broadcast over Gloo on loopback: the learner's publisher
  //    with the replica in its weight group (formed by the first, untimed
  //    publish), ReceiveWeights open while the learner broadcasts.
  auto sender = model::Model::CreateRandom(
      config, 2, {.device = args.device, .dtype = "float32", .num_threads = args.threads});
  if (!sender.ok()) {
    std::fprintf(stderr, "weights_bench: %s\n", sender.status().message().c_str());
    return 1;
  }
  for (size_t bucket_mb : {4, 32, 64}) {
    learner::RolloutPublisher publisher({.bucket_bytes = bucket_mb << 20,
                                         .transport = learner::WeightTransport::kCollective});
    publisher.RegisterReplica((*server)->LocalAddress());
    double best = 1e30;
    for (int r = 0; r <= args.repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      absl::Status sent = publisher.PublishModel(++version, {}, **sender);
      if (!sent.ok() || publisher.broadcasts() != r + 1) {
        std::fprintf(stderr, "weights_bench: collective: %s\n", sent.ToString().c_str());
        return 1;
      }
      if (r > 0) best = std::min(best, Seconds(start));
    }
    char label[64];
    std::snprintf(label, sizeof(label), "gloo broadcast, %zu MiB", bucket_mb);
    std::printf("%-28s %10.4f %10.2f %11.1fx\n", label, best, gb / best, best / best_memcpy);
  }
  (*server)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace cascade::rollout

int main(int argc, char** argv) {
  cascade::rollout::Args args;
  bool default_malloc = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "weights_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--layers") args.layers = std::atoi(next().c_str());
    else if (a == "--hidden") args.hidden = std::atoi(next().c_str());
    else if (a == "--vocab") args.vocab = std::atoi(next().c_str());
    else if (a == "--repeats") args.repeats = std::atoi(next().c_str());
    else if (a == "--threads") args.threads = std::atoi(next().c_str());
    else if (a == "--device") args.device = next();
    else if (a == "--default_malloc") default_malloc = true;
    else {
      std::fprintf(stderr,
                   "usage: weights_bench [--layers 8] [--hidden 768] [--vocab 32000] "
                   "[--repeats 3] [--threads 0] [--device cpu] [--default_malloc]\n");
      return 2;
    }
  }
  if (args.layers < 1 || args.hidden < 12 || args.hidden % 12 != 0 || args.vocab < 2 ||
      args.repeats < 1) {
    std::fprintf(stderr, "weights_bench: --hidden must be a positive multiple of 12, others positive\n");
    return 2;
  }
  // As `rollout serve` does; --default_malloc shows what it saves.
  if (!default_malloc) cascade::rollout::KeepLargeAllocationsInHeap();
  std::printf("heap: %s\n", default_malloc ? "glibc defaults" : "KeepLargeAllocationsInHeap");
  return cascade::rollout::Run(args);
}
