// learner: the trainable policy of Cascade.
//
//   learner init --arch {qwen3,qwen2,llama} ... --out DIR
//   learner serve --model DIR [--address HOST:PORT] [--device cpu|cuda[:N]]
//                 [--dtype float32|bfloat16] [--rank R --world-size N
//                 --master HOST:PORT] [optimizer flags]
//
// `serve` on rank 0 exposes the Learner gRPC service; the other ranks of a
// data-parallel group join by rendezvous at --master and follow rank 0's
// commands. Rank, world size and master default to the environment
// (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; a StatefulSet pod ordinal
// gives the rank when RANK is unset).
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server.h"
#include "model/cli.h"
#include "model/weight_group.h"
#include "services/learner/learner_core.h"
#include "services/learner/learner_service.h"
#include "services/learner/rollout_publisher.h"
#include "services/rollout/heap_tuning.h"

namespace {

using cascade::kExitFailure;
using cascade::kExitOk;
using cascade::kExitUsage;

constexpr char kTopUsage[] =
    "usage: learner <command> [flags]\n\n"
    "The trainable policy of Cascade.\n\n"
    "commands:\n"
    "  init   write a fresh random Hugging Face-format model directory\n"
    "  serve  train on batches sent over gRPC (rank 0) or follow rank 0 (other ranks)\n\n"
    "Run 'learner <command> --help' for its flags.\n";

int Serve(int argc, char** argv) {
  using namespace cascade;
  using namespace cascade::learner;
  BlockTerminationSignals();
  // Publishing streams the whole model every step: reuse heap pages instead
  // of page-faulting fresh message buffers in each time (bench/rollout).
  rollout::KeepLargeAllocationsInHeap();
  std::string model_dir;
  std::string address = "0.0.0.0:50061";
  std::string master;
  int metrics_port = 9105;
  int rank = -1, world_size = -1, threads = 0, micro_batch_tokens = 8192;
  int warmup_steps = 0, total_steps = 0, dp_timeout_s = 3600;
  double lr = 1e-6, weight_decay = 0.01, max_grad_norm = 1.0, min_lr_ratio = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::string schedule = "constant";
  std::string device = "cpu", dtype = "float32";
  bool activation_checkpointing = false;
  std::string weight_transport = "grpc", weight_group_backend = "gloo";
  std::string weight_group_address = "127.0.0.1";
  int weight_group_port = 29600, weight_group_timeout_s = 60, weight_bucket_mb = 32;
  FlagSet flags("learner serve", "Runs the Learner gRPC service (rank 0) until SIGTERM.");
  flags.AddString("model", &model_dir,
                  "Hugging Face model directory or learner checkpoint to start from", true);
  flags.AddString("address", &address, "host:port to listen on, rank 0 (port 0 = any free port)");
  std::string rollouts;
  flags.AddString("rollouts", &rollouts,
                  "comma-separated rollout replicas (host:port) that receive every published "
                  "version; more can join with RegisterRollout");
  flags.AddInt("metrics-port", &metrics_port, "Prometheus /metrics port, rank 0 (-1 = off, 0 = any)");
  flags.AddInt("rank", &rank, "data-parallel rank (default: RANK or the pod ordinal, else 0)");
  flags.AddInt("world-size", &world_size, "data-parallel ranks (default: WORLD_SIZE, else 1)");
  flags.AddString("master", &master,
                  "rendezvous host:port of rank 0 (default: MASTER_ADDR:MASTER_PORT)");
  flags.AddInt("dp-timeout-s", &dp_timeout_s,
               "longest wait in a collective, seconds (followers idle this long between steps fail)");
  flags.AddInt("threads", &threads, "CPU intra-op threads (0 = every core)");
  flags.AddString("device", &device, "where the model trains: cpu, cuda or cuda:N");
  flags.AddString("dtype", &dtype,
                  "compute dtype: float32, or bfloat16 (float32 master weights and optimizer "
                  "state; publishes bfloat16); float16 is refused (no loss scaling)");
  flags.AddInt("micro-batch-tokens", &micro_batch_tokens, "default micro-batch budget (padded tokens)");
  flags.AddBool("activation-checkpointing", &activation_checkpointing,
                "recompute each layer in the backward pass instead of storing its activations "
                "(less memory, about one more forward pass)");
  flags.AddDouble("lr", &lr, "peak learning rate");
  flags.AddString("schedule", &schedule, "LR schedule: constant, linear_warmup or cosine");
  flags.AddInt("warmup-steps", &warmup_steps, "linear warm-up steps");
  flags.AddInt("total-steps", &total_steps, "cosine horizon in steps");
  flags.AddDouble("min-lr-ratio", &min_lr_ratio, "cosine floor as a fraction of --lr");
  flags.AddDouble("weight-decay", &weight_decay, "AdamW decoupled weight decay");
  flags.AddDouble("beta1", &beta1, "AdamW beta1");
  flags.AddDouble("beta2", &beta2, "AdamW beta2");
  flags.AddDouble("eps", &eps, "AdamW epsilon");
  flags.AddDouble("max-grad-norm", &max_grad_norm, "gradient clipping norm (<= 0 = off)");
  flags.AddString("weight-transport", &weight_transport,
                  "how versions reach the rollout replicas: grpc (chunked streams) or collective "
                  "(one broadcast to a weight group; falls back to streams when it fails)");
  flags.AddString("weight-group-backend", &weight_group_backend,
                  "collective backend: gloo (CPU buffers) or nccl (GPU to GPU)");
  flags.AddString("weight-group-address", &weight_group_address,
                  "this learner's address as the replicas reach it (its pod's DNS name)");
  flags.AddInt("weight-group-port", &weight_group_port,
               "port of the weight group's rendezvous store (0 = any free port)");
  flags.AddInt("weight-group-timeout-s", &weight_group_timeout_s,
               "limit for forming the weight group and for each broadcast");
  flags.AddInt("weight-bucket-mb", &weight_bucket_mb, "MiB per weight message or broadcast bucket");
  auto positional = flags.Parse(argc, argv, /*first=*/2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());

  auto transport = ParseWeightTransport(weight_transport);
  if (!transport.ok()) return flags.ExitForParseError(transport.status());
  if (*transport == WeightTransport::kCollective) {
    model::Status backend = model::WeightGroupBackendAvailable(weight_group_backend);
    if (!backend.ok()) {
      return flags.ExitForParseError(absl::InvalidArgumentError(
          absl::StrCat("--weight-group-backend: ", backend.message())));
    }
  }
  if (weight_group_timeout_s < 1 || weight_bucket_mb < 1 || weight_group_port < 0) {
    return flags.ExitForParseError(absl::InvalidArgumentError(
        "--weight-group-timeout-s and --weight-bucket-mb must be positive, --weight-group-port "
        "non-negative"));
  }
  if (dtype != "float32" && dtype != "bfloat16" && dtype != "float16") {
    return flags.ExitForParseError(absl::InvalidArgumentError(absl::StrCat(
        "--dtype \"", dtype, "\": expected one of: float32, bfloat16, float16")));
  }
  LearnerOptions options;
  options.num_threads = threads;
  options.device = device;
  options.dtype = dtype;
  options.micro_batch_tokens = micro_batch_tokens;
  options.activation_checkpointing = activation_checkpointing;
  OptimizerOptions& o = options.optimizer;
  o.learning_rate = lr;
  o.weight_decay = weight_decay;
  o.beta1 = beta1;
  o.beta2 = beta2;
  o.eps = eps;
  o.max_grad_norm = max_grad_norm;
  o.warmup_steps = warmup_steps;
  o.total_steps = total_steps;
  o.min_lr_ratio = min_lr_ratio;
  auto parsed_schedule = ParseLrSchedule(schedule);
  if (!parsed_schedule.ok()) return flags.ExitForParseError(parsed_schedule.status());
  o.schedule = *parsed_schedule;
  DistributedOptions& d = options.distributed;
  if (absl::Status env = DistributedFromEnvironment(&d); !env.ok()) {
    return flags.ExitForParseError(env);
  }
  if (rank >= 0) d.rank = rank;
  if (world_size >= 0) d.world_size = world_size;
  d.timeout_seconds = dp_timeout_s;
  if (!master.empty()) {
    const size_t colon = master.rfind(':');
    if (colon == std::string::npos || !absl::SimpleAtoi(master.substr(colon + 1), &d.master_port)) {
      return flags.ExitForParseError(absl::InvalidArgumentError(
          absl::StrCat("--master \"", master, "\": expected host:port")));
    }
    d.master_addr = master.substr(0, colon);
  }
  if (d.world_size < 1 || d.rank < 0 || d.rank >= d.world_size) {
    return flags.ExitForParseError(absl::InvalidArgumentError(
        absl::StrCat("rank ", d.rank, " is outside world size ", d.world_size)));
  }

  if (d.world_size > 1) {
    CASCADE_LOG(INFO) << "rank " << d.rank << "/" << d.world_size << " joining at "
                      << d.master_addr << ":" << d.master_port;
  }
  auto core = LearnerCore::Open(model_dir, options);
  if (!core.ok()) {
    CASCADE_LOG(ERROR) << model_dir << ": " << core.status().message();
    return kExitFailure;
  }
  CASCADE_LOG(INFO) << "loaded " << model_dir << " at policy version " << (*core)->version();
  if (d.rank != 0) {
    absl::Status followed = RunFollower(core->get());
    if (!followed.ok()) {
      CASCADE_LOG(ERROR) << "rank " << d.rank << ": " << followed.message();
      return kExitFailure;
    }
    CASCADE_LOG(INFO) << "rank " << d.rank << " stopped";
    return kExitOk;
  }
  // Rollout replicas get every published version over chunked gRPC streams
  // or by broadcast; more register at run time with RegisterRollout.
  RolloutPublisher publisher({.bucket_bytes = static_cast<size_t>(weight_bucket_mb) << 20,
                              .transport = *transport,
                              .group_backend = weight_group_backend,
                              .group_address = weight_group_address,
                              .group_port = weight_group_port,
                              .group_timeout = absl::Seconds(weight_group_timeout_s)});
  for (absl::string_view address : absl::StrSplit(rollouts, ',', absl::SkipEmpty())) {
    publisher.RegisterReplica(std::string(address));
  }
  LearnerServiceOptions service_options;
  service_options.publisher = &publisher;
  // Well inside the collective timeout, so idle followers never expire.
  service_options.heartbeat = absl::Seconds(std::max(1, std::min(30, dp_timeout_s / 4)));
  LearnerServiceImpl service(core->get(), service_options);
  if (metrics_port >= 0) {
    auto port = StartMetricsExposer(metrics_port);
    if (!port.ok()) {
      CASCADE_LOG(ERROR) << port.status().message();
      (void)service.Shutdown();
      return kExitFailure;
    }
    CASCADE_LOG(INFO) << "metrics on :" << *port << "/metrics";
  }
  auto server = GrpcServer::Start({.address = address}, {&service});
  if (!server.ok()) {
    CASCADE_LOG(ERROR) << server.status().message();
    (void)service.Shutdown();
    return kExitFailure;
  }
  // Tests and scripts read the port from this line.
  CASCADE_LOG(INFO) << "learner listening on port " << (*server)->port();
  WaitForTerminationSignal();
  (*server)->Shutdown();
  if (absl::Status stopped = service.Shutdown(); !stopped.ok()) {
    CASCADE_LOG(ERROR) << "stopping the other ranks: " << stopped.message();
    return kExitFailure;
  }
  CASCADE_LOG(INFO) << "learner stopped";
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  cascade::SetLogProcessName("learner");
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "init") {
    std::vector<std::string> args(argv + 2, argv + argc);
    return cascade::model::RunInitCommand(args, std::cout, std::cerr);
  }
  if (command == "serve") return Serve(argc, argv);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kTopUsage;
    return kExitOk;
  }
  std::cerr << (command.empty() ? "learner: missing command\n"
                                : "learner: unknown command \"" + command + "\"\n")
            << kTopUsage;
  return kExitUsage;
}
