#include "services/learner/rollout_publisher.h"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "services/rollout/weights_sender.h"

namespace cascade::learner {
namespace {

// Runs call(i) for every i in [0, n) at once, one thread each (a slow
// replica must not delay the others), and returns their statuses.
std::vector<absl::Status> CallEach(size_t n, const std::function<absl::Status(size_t)>& call) {
  std::vector<absl::Status> results(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i < n; ++i) threads.emplace_back([&, i] { results[i] = call(i); });
  for (std::thread& thread : threads) thread.join();
  return results;
}

}  // namespace

// "address: status" for each member whose call failed.
std::vector<std::string> RolloutPublisher::Failed(const std::vector<Replica*>& members,
                                                  const std::vector<absl::Status>& results) {
  std::vector<std::string> failed;
  for (size_t i = 0; i < members.size(); ++i) {
    if (!results[i].ok()) failed.push_back(absl::StrCat(members[i]->address, ": ", results[i].ToString()));
  }
  return failed;
}

int RolloutPublisher::RegisterReplica(const std::string& address) {
  // Publications use the stubs without mu_; wait for the one in flight.
  absl::MutexLock publishing(&publish_mu_);
  absl::MutexLock lock(&mu_);
  for (const auto& replica : replicas_) {
    if (replica->address != address) continue;
    // A replica registers again after a restart: a fresh channel skips the
    // reconnect backoff the old one built up while it was down, and it is
    // sent the current version whatever it held before.
    replica->stub = cascade::v1::Rollout::NewStub(MakeChannel(address));
    replica->acknowledged_version = -1;
    CASCADE_LOG(INFO) << "rollout replica " << address << " registered again";
    return static_cast<int>(replicas_.size());
  }
  auto replica = std::make_unique<Replica>();
  replica->address = address;
  replica->stub = cascade::v1::Rollout::NewStub(MakeChannel(address));
  replicas_.push_back(std::move(replica));
  CASCADE_LOG(INFO) << "registered rollout replica " << address;
  return static_cast<int>(replicas_.size());
}

absl::StatusOr<WeightTransport> ParseWeightTransport(const std::string& name) {
  if (name == "grpc") return WeightTransport::kGrpc;
  if (name == "collective") return WeightTransport::kCollective;
  return absl::InvalidArgumentError(
      absl::StrCat("weight transport \"", name, "\": unknown (expected grpc or collective)"));
}

absl::Status RolloutPublisher::Publish(int64_t version, const std::vector<TensorView>& tensors) {
  absl::MutexLock publishing(&publish_mu_);
  return PublishStreams(version, tensors);
}

absl::Status RolloutPublisher::PublishModel(int64_t version, const std::vector<TensorView>& tensors,
                                            const model::Model& model) {
  if (options_.transport == WeightTransport::kGrpc) return Publish(version, tensors);
  absl::MutexLock publishing(&publish_mu_);
  std::vector<Replica*> members;
  bool behind = false;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& replica : replicas_) {
      members.push_back(replica.get());
      behind = behind || replica->acknowledged_version != version;
    }
  }
  if (!behind) return absl::OkStatus();
  // A broadcast reaches every member, including any already at `version`.
  absl::Status broadcast = Broadcast(version, model, members);
  if (broadcast.ok()) {
    absl::MutexLock lock(&mu_);
    for (Replica* replica : members) replica->acknowledged_version = version;
    ++broadcasts_;
    return absl::OkStatus();
  }
  CASCADE_LOG(WARNING) << "collective publish of version " << version << " failed (" << broadcast
                       << "); sending it over gRPC streams instead";
  group_.reset();
  group_members_.clear();
  {
    absl::MutexLock lock(&mu_);
    ++fallbacks_;
  }
  return PublishStreams(version, tensors);
}

absl::Status RolloutPublisher::FormGroup(const model::Model& model,
                                         const std::vector<Replica*>& members) {
  group_.reset();
  group_members_.clear();
  model::WeightGroupOptions options;
  options.backend = options_.group_backend;
  options.master_address = options_.group_address;
  options.master_port = options_.group_port;
  options.world_size = static_cast<int>(members.size()) + 1;
  options.rank = 0;
  options.group_id = absl::StrCat("cascade-weights-", getpid(), "-", ++formations_);
  options.timeout_seconds =
      std::max(1, static_cast<int>(absl::ToInt64Seconds(options_.group_timeout)));
  model::StatusOr<std::unique_ptr<model::WeightGroup>> host = model::WeightGroup::Host(options);
  if (!host.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(host.status().code()),
                        absl::StrCat("weight group: ", host.status().message()));
  }
  // Every replica checks the parameter list and starts meeting the group;
  // only when all accepted does the learner meet it too, so a replica that
  // is down or incompatible costs one RPC, not the group's timeout.
  cascade::v1::JoinWeightGroupRequest join;
  join.set_group_id(options.group_id);
  join.set_backend(options.backend);
  join.set_master_address(options.master_address);
  join.set_master_port((*host)->port());
  join.set_world_size(options.world_size);
  join.set_timeout_s(options.timeout_seconds);
  for (const model::ParameterInfo& info : model.Parameters()) {
    cascade::v1::ParameterSpec* spec = join.add_parameters();
    spec->set_name(info.name);
    spec->set_dtype(model::TorchDTypeName(info.dtype));
    for (int64_t d : info.shape) spec->add_shape(d);
  }
  const std::vector<std::string> refusals = Failed(members, CallEach(members.size(), [&](size_t i) {
    cascade::v1::JoinWeightGroupRequest mine = join;
    mine.set_rank(static_cast<int>(i) + 1);
    grpc::ClientContext context;
    SetCallTimeout(context, absl::Seconds(30));
    cascade::v1::JoinWeightGroupResponse response;
    return FromGrpcStatus(members[i]->stub->JoinWeightGroup(&context, mine, &response));
  }));
  if (!refusals.empty()) {
    return absl::UnavailableError(
        absl::StrCat("weight group not formed: ", absl::StrJoin(refusals, "; ")));
  }
  model::Status connected = (*host)->Connect();
  if (!connected.ok()) {
    return absl::UnavailableError(
        absl::StrCat("weight group not formed: ", connected.message()));
  }
  group_ = std::move(*host);
  for (Replica* replica : members) group_members_.push_back(replica->address);
  CASCADE_LOG(INFO) << "weight group " << options.group_id << " formed over " << options.backend
                    << " with " << members.size() << " rollout replicas";
  return absl::OkStatus();
}

absl::Status RolloutPublisher::CheckMembers(const std::vector<Replica*>& members) {
  const std::string& group_id = group_->options().group_id;
  const std::vector<std::string> missing = Failed(members, CallEach(members.size(), [&](size_t i) {
    grpc::ClientContext context;
    SetCallTimeout(context, kMemberCheckTimeout);
    cascade::v1::RolloutState state;
    absl::Status answered = FromGrpcStatus(
        members[i]->stub->GetState(&context, cascade::v1::GetRolloutStateRequest(), &state));
    if (answered.ok() && state.weight_group_id() != group_id) {
      return absl::FailedPreconditionError(
          absl::StrCat("not in weight group ", group_id, " (restarted?)"));
    }
    return answered;
  }));
  if (!missing.empty()) {
    return absl::UnavailableError(
        absl::StrCat("weight group members gone: ", absl::StrJoin(missing, "; ")));
  }
  return absl::OkStatus();
}

absl::Status RolloutPublisher::Broadcast(int64_t version, const model::Model& model,
                                         const std::vector<Replica*>& members) {
  if (members.empty()) return absl::OkStatus();
  std::vector<std::string> addresses;
  for (Replica* replica : members) addresses.push_back(replica->address);
  if (group_ == nullptr || group_members_ != addresses) {
    RETURN_IF_ERROR(FormGroup(model, members));
  } else {
    RETURN_IF_ERROR(CheckMembers(members));
  }

  // Each replica's ReceiveWeights call stays open while the broadcast runs.
  std::vector<absl::Status> received(members.size());
  std::vector<std::thread> calls;
  const absl::Time deadline = absl::Now() + options_.timeout;
  for (size_t i = 0; i < members.size(); ++i) {
    calls.emplace_back([&, i] {
      cascade::v1::ReceiveWeightsRequest request;
      request.set_group_id(group_->options().group_id);
      request.set_version(version);
      request.set_bucket_bytes(static_cast<int64_t>(options_.bucket_bytes));
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      cascade::v1::UpdateWeightsResponse response;
      received[i] = FromGrpcStatus(members[i]->stub->ReceiveWeights(&context, request, &response));
      if (received[i].ok() && response.version() != version) {
        received[i] = absl::InternalError(
            absl::StrCat("acknowledged version ", response.version(), " instead of ", version));
      }
    });
  }
  model::Status sent = group_->Send(model, options_.bucket_bytes);
  for (std::thread& call : calls) call.join();
  std::vector<std::string> failures = Failed(members, received);
  if (!sent.ok()) failures.insert(failures.begin(), absl::StrCat("learner: ", sent.message()));
  if (!failures.empty()) {
    return absl::UnavailableError(absl::StrCat("broadcast of version ", version, " failed: ",
                                               absl::StrJoin(failures, "; ")));
  }
  return absl::OkStatus();
}

int64_t RolloutPublisher::broadcasts() const {
  absl::MutexLock lock(&mu_);
  return broadcasts_;
}

int64_t RolloutPublisher::fallbacks() const {
  absl::MutexLock lock(&mu_);
  return fallbacks_;
}

absl::Status RolloutPublisher::PublishStreams(int64_t version,
                                              const std::vector<TensorView>& tensors) {
  // 1. The learner's views (float32, or bfloat16 in mixed precision) as the
  //    sender's safetensors views; replicas convert to their own dtype.
  std::vector<rollout::NamedBuffer> buffers;
  buffers.reserve(tensors.size());
  for (const TensorView& tensor : tensors) {
    model::StatusOr<model::DType> dtype = model::ParseTorchDType(tensor.dtype);
    if (!dtype.ok()) {
      return absl::InternalError(
          absl::StrCat(tensor.name, ": cannot publish dtype ", tensor.dtype));
    }
    rollout::NamedBuffer buffer;
    buffer.name = tensor.name;
    buffer.dtype = *dtype;
    buffer.shape = tensor.shape;
    buffer.data = tensor.data.data();
    buffer.nbytes = tensor.data.size();
    buffers.push_back(std::move(buffer));
  }
  // 2. Replicas behind `version` (stubs stay alive: replicas are never removed).
  std::vector<Replica*> behind;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& replica : replicas_) {
      if (replica->acknowledged_version != version) behind.push_back(replica.get());
    }
  }
  if (behind.empty()) return absl::OkStatus();
  std::vector<cascade::v1::Rollout::StubInterface*> stubs;
  for (Replica* replica : behind) stubs.push_back(replica->stub.get());
  // 3. One stream per replica, concurrently; a dead one does not hold back the rest.
  std::vector<absl::Status> results = rollout::SendWeightsToAll(
      stubs, version, buffers, options_.bucket_bytes, absl::Now() + options_.timeout);
  std::vector<std::string> failures;
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < behind.size(); ++i) {
    if (results[i].ok()) {
      behind[i]->acknowledged_version = version;
    } else {
      failures.push_back(absl::StrCat(behind[i]->address, ": ", results[i].ToString()));
    }
  }
  if (failures.empty()) return absl::OkStatus();
  int acknowledged = 0;
  for (const auto& replica : replicas_) acknowledged += replica->acknowledged_version == version;
  return absl::UnavailableError(absl::StrCat(
      acknowledged, " of ", replicas_.size(), " rollout replicas acknowledged version ", version,
      "; the others keep their old version until the next publish: ",
      absl::StrJoin(failures, "; ")));
}

int RolloutPublisher::AcknowledgedCount(int64_t version) const {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const auto& replica : replicas_) count += replica->acknowledged_version == version;
  return count;
}

int64_t RolloutPublisher::AcknowledgedVersion(const std::string& address) const {
  absl::MutexLock lock(&mu_);
  for (const auto& replica : replicas_) {
    if (replica->address == address) return replica->acknowledged_version;
  }
  return -1;
}

int RolloutPublisher::replica_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(replicas_.size());
}

}  // namespace cascade::learner
