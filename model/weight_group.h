// Weights by collective broadcast: the learner (rank 0) and its rollout
// replicas (ranks 1..N) form a torch c10d process group, and each new policy
// version is broadcast from rank 0 in flat buckets — over Gloo (TCP, CPU
// buffers, any hosts) or, where libtorch has NCCL, over NCCL between GPUs
// without a copy through host memory. This is the transport for clusters
// where the learner and the replicas share a fast network; the chunked gRPC
// stream (services/rollout/weights_sender.h) stays the default because it
// needs nothing but the replicas' gRPC addresses and tolerates any of them
// failing independently.
//
// A group is fixed at formation: every rank must take part in every
// broadcast, so a member that dies breaks the group (the broadcast fails on
// the others within `timeout_seconds`) and the caller forms a new one.
//
// Both ends walk the parameters in Model::Parameters() order and pack them,
// flattened, into buckets of at most `bucket_bytes` in the sender's compute
// dtype; a parameter larger than a bucket spans several. The receiver builds
// a new Model next to its serving one and converts to its own compute dtype
// and device, so a float32 learner can feed bfloat16 replicas.
//
// Rendezvous: rank 0 opens a c10d TCPStore (Host), tells the other ranks its
// address and port out of band (the rollout service's JoinWeightGroup RPC),
// then every rank calls Connect, which returns once all `world_size` ranks
// arrived. `group_id` prefixes the store's keys so that a re-formed group
// never meets a stale member of the previous one.
//
// Not thread-safe: one broadcast at a time per group.
#ifndef CASCADE_MODEL_WEIGHT_GROUP_H_
#define CASCADE_MODEL_WEIGHT_GROUP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "model/runtime.h"
#include "model/safetensors.h"
#include "model/status.h"

namespace cascade::model {

struct WeightGroupOptions {
  // "gloo" (CPU buffers, works everywhere) or "nccl" (CUDA buffers; needs a
  // libtorch built with NCCL, see WeightGroupBackendAvailable).
  std::string backend = "gloo";
  // Rank 0's address as the other ranks reach it, and its store's port
  // (Host: 0 picks a free port, read it back with port()).
  std::string master_address = "127.0.0.1";
  int master_port = 0;
  int world_size = 2;
  int rank = 0;
  // The same on every rank of one formation, different for the next.
  std::string group_id = "weights";
  // Limit for the rendezvous and for each broadcast.
  int timeout_seconds = 60;
};

// OK when `backend` can run in this build, else UNIMPLEMENTED saying why.
Status WeightGroupBackendAvailable(const std::string& backend);

class WeightGroup {
 public:
  // Rank 0: opens the rendezvous store. Call Connect next.
  static StatusOr<std::unique_ptr<WeightGroup>> Host(const WeightGroupOptions& options);
  // Ranks > 0: reaches rank 0's store and connects (blocks until every rank
  // arrived or the timeout passed).
  static StatusOr<std::unique_ptr<WeightGroup>> Join(const WeightGroupOptions& options);
  ~WeightGroup();
  WeightGroup(const WeightGroup&) = delete;
  WeightGroup& operator=(const WeightGroup&) = delete;

  // Rank 0's second step: blocks until every rank arrived.
  Status Connect();

  // Rank 0: broadcasts `model`'s parameters. Every other rank must call
  // Receive with a model of the same architecture.
  Status Send(const Model& model, size_t bucket_bytes);

  // Ranks > 0: what rank 0's Send broadcasts (`wire`: the sender's compute
  // dtype), as a new model with `like`'s config, device and compute dtype.
  StatusOr<std::unique_ptr<Model>> Receive(const Model& like, DType wire, size_t bucket_bytes);

  // The store's port (rank 0: the one picked when options.master_port was 0).
  int port() const;
  const WeightGroupOptions& options() const { return options_; }

 private:
  struct Torch;
  explicit WeightGroup(const WeightGroupOptions& options);

  WeightGroupOptions options_;
  std::unique_ptr<Torch> torch_;
};

}  // namespace cascade::model

#endif  // CASCADE_MODEL_WEIGHT_GROUP_H_
