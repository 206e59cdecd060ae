#include "model/weight_group.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef CASCADE_WEIGHT_GROUP_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <map>
#include <vector>

#include "model/collective_backend.h"
#include "model/torch_status.h"
#include "model/transformer.h"

namespace cascade::model {
namespace {

at::ScalarType WireType(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return at::kBFloat16;
    case DType::kF16: return at::kHalf;
    default: return at::kFloat;
  }
}

// Where one parameter's elements lie in the stream of buckets.
struct Piece {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel = 0;
};

// The parameters in Parameters() order; both ends derive the same list from
// the same architecture.
std::vector<Piece> Plan(const Model& model) {
  std::vector<Piece> plan;
  for (const ParameterInfo& info : model.Parameters()) {
    Piece piece{info.name, info.shape, 1};
    for (int64_t d : info.shape) piece.numel *= d;
    plan.push_back(std::move(piece));
  }
  return plan;
}

bool IsLoopback(const std::string& address) {
  return address == "127.0.0.1" || address == "localhost" || address == "::1";
}

}  // namespace

Status WeightGroupBackendAvailable(const std::string& backend) {
  if (backend == "gloo") return OkStatus();
  if (backend == "nccl") {
#ifdef CASCADE_WEIGHT_GROUP_NCCL
    return OkStatus();
#else
    return UnimplementedError(
        "weight group backend \"nccl\": this build's libtorch has no NCCL (CPU-only); use "
        "\"gloo\" or build against a CUDA libtorch");
#endif
  }
  return InvalidArgumentError("weight group backend \"" + backend +
                              "\": unknown (expected gloo or nccl)");
}

struct WeightGroup::Torch {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<CollectiveBackend> group;

  // Broadcasts `bucket` from rank 0 in place.
  void Broadcast(at::Tensor& bucket) {
    std::vector<at::Tensor> tensors{bucket};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    group->broadcast(tensors, options)->wait();
  }
};

WeightGroup::WeightGroup(const WeightGroupOptions& options)
    : options_(options), torch_(std::make_unique<Torch>()) {}

WeightGroup::~WeightGroup() = default;

int WeightGroup::port() const {
  return torch_->store ? static_cast<int>(torch_->store->getPort()) : options_.master_port;
}

StatusOr<std::unique_ptr<WeightGroup>> WeightGroup::Host(const WeightGroupOptions& options) {
  Status available = WeightGroupBackendAvailable(options.backend);
  if (!available.ok()) return available;
  if (options.rank != 0) return InvalidArgumentError("WeightGroup::Host is for rank 0 only");
  if (options.world_size < 2) {
    return InvalidArgumentError("weight group: world size " + std::to_string(options.world_size) +
                                " (expected the learner and at least one replica)");
  }
  std::unique_ptr<WeightGroup> group(new WeightGroup(options));
  Status opened = CatchStatus("weight group store", [&]() -> Status {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(options.master_port);
    so.isServer = true;
    so.waitWorkers = false;  // the ranks meet in Connect, through the process group
    so.timeout = std::chrono::seconds(options.timeout_seconds);
    group->torch_->store = c10::make_intrusive<c10d::TCPStore>(options.master_address, so);
    return OkStatus();
  });
  if (!opened.ok()) return opened;
  group->options_.master_port = group->port();
  return group;
}

StatusOr<std::unique_ptr<WeightGroup>> WeightGroup::Join(const WeightGroupOptions& options) {
  Status available = WeightGroupBackendAvailable(options.backend);
  if (!available.ok()) return available;
  if (options.rank < 1 || options.rank >= options.world_size) {
    return InvalidArgumentError("weight group: rank " + std::to_string(options.rank) +
                                " outside 1.." + std::to_string(options.world_size - 1));
  }
  std::unique_ptr<WeightGroup> group(new WeightGroup(options));
  Status reached = CatchStatus("weight group store", [&]() -> Status {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(options.master_port);
    so.isServer = false;
    so.timeout = std::chrono::seconds(options.timeout_seconds);
    group->torch_->store = c10::make_intrusive<c10d::TCPStore>(options.master_address, so);
    return OkStatus();
  });
  if (!reached.ok()) return reached;
  Status connected = group->Connect();
  if (!connected.ok()) return connected;
  return group;
}

Status WeightGroup::Connect() {
  return CatchStatus("weight group " + options_.group_id, [&]() -> Status {
    auto store = c10::make_intrusive<c10d::PrefixStore>(options_.group_id, torch_->store);
    const auto timeout = std::chrono::seconds(options_.timeout_seconds);
    if (options_.backend == "nccl") {
#ifdef CASCADE_WEIGHT_GROUP_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      torch_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, options_.rank,
                                                                  options_.world_size, nccl);
      return OkStatus();
#else
      return WeightGroupBackendAvailable("nccl");
#endif
    }
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    gloo->devices.push_back(IsLoopback(options_.master_address)
                                ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                : c10d::ProcessGroupGloo::createDefaultDevice());
    torch_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, options_.rank,
                                                                options_.world_size, gloo);
    return OkStatus();
  });
}

Status WeightGroup::Send(const Model& model, size_t bucket_bytes) {
  if (!torch_->group) return FailedPreconditionError("weight group: not connected");
  if (options_.rank != 0) return FailedPreconditionError("weight group: only rank 0 sends");
  return CatchStatus("weight group send", [&]() -> Status {
    c10::InferenceMode inference;
    const Transformer& t = *model.transformer();
    const at::Device device = options_.backend == "nccl" ? t.device() : at::Device(at::kCPU);
    const int64_t element = c10::elementSize(t.dtype());
    const int64_t capacity = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes) / element);
    at::Tensor bucket = at::empty({capacity}, at::TensorOptions().dtype(t.dtype()).device(device));
    int64_t filled = 0;
    auto flush = [&]() {
      if (filled == 0) return;
      at::Tensor part = bucket.narrow(0, 0, filled);
      torch_->Broadcast(part);
      filled = 0;
    };
    for (const Piece& piece : Plan(model)) {
      at::Tensor flat = t.named_parameters().at(piece.name).detach().reshape({-1});
      int64_t offset = 0;
      while (offset < piece.numel) {
        const int64_t take = std::min(piece.numel - offset, capacity - filled);
        bucket.narrow(0, filled, take).copy_(flat.narrow(0, offset, take));
        filled += take;
        offset += take;
        if (filled == capacity) flush();
      }
    }
    flush();
    return OkStatus();
  });
}

StatusOr<std::unique_ptr<Model>> WeightGroup::Receive(const Model& like, DType wire,
                                                      size_t bucket_bytes) {
  if (!torch_->group) return FailedPreconditionError("weight group: not connected");
  if (options_.rank == 0) return FailedPreconditionError("weight group: rank 0 does not receive");
  StatusOr<std::unique_ptr<Transformer>> built =
      CatchStatus("weight group receive", [&]() -> StatusOr<std::unique_ptr<Transformer>> {
        c10::InferenceMode inference;
        const Transformer& t = *like.transformer();
        const at::Device device = options_.backend == "nccl" ? t.device() : at::Device(at::kCPU);
        const at::ScalarType type = WireType(wire);
        const int64_t element = c10::elementSize(type);
        const int64_t capacity = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes) / element);
        const auto options = at::TensorOptions().dtype(type).device(device);
        std::vector<Piece> plan = Plan(like);
        int64_t total = 0;
        for (const Piece& piece : plan) total += piece.numel;
        // One flat receive buffer: the buckets land in it back to back, and
        // each parameter is a view of it until WithTensors copies it out.
        at::Tensor flat = at::empty({total}, options);
        for (int64_t offset = 0; offset < total; offset += capacity) {
          at::Tensor part = flat.narrow(0, offset, std::min(capacity, total - offset));
          torch_->Broadcast(part);
        }
        std::map<std::string, at::Tensor> tensors;
        int64_t offset = 0;
        for (const Piece& piece : plan) {
          tensors[piece.name] = flat.narrow(0, offset, piece.numel).view(piece.shape);
          offset += piece.numel;
        }
        return ValueOrThrow(t.WithTensors(tensors));
      });
  if (!built.ok()) return built.status();
  return Model::Wrap(std::move(*built));
}

}  // namespace cascade::model
