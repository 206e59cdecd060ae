#include "services/rollout/rollout_service.h"

#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_status.h"
#include "model/weight_group.h"
#include "services/rollout/weights_assembler.h"

namespace cascade::rollout {
namespace {

using cascade::v1::GenerateRequest;
using cascade::v1::GenerateResponse;
using cascade::v1::UpdateWeightsRequest;
using cascade::v1::UpdateWeightsResponse;

GenerateInput ToInput(const GenerateRequest& request) {
  GenerateInput in;
  for (const auto& prompt : request.prompts()) {
    in.prompts.push_back(
        {prompt.prompt_id(), std::vector<int64_t>(prompt.token_ids().begin(), prompt.token_ids().end())});
  }
  in.samples_per_prompt = request.samples_per_prompt();
  const auto& s = request.sampling();
  in.sampling.temperature = s.temperature();
  // proto3 cannot tell an unset top_p from 0; 0 would keep no token, so it
  // means "disabled" like 1.
  in.sampling.top_p = s.top_p() > 0 ? s.top_p() : 1.0;
  in.sampling.top_k = s.top_k();
  in.sampling.max_new_tokens = s.max_new_tokens();
  in.sampling.stop_token_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  in.sampling.seed = s.seed();
  in.policy_version = request.policy_version();
  return in;
}

cascade::v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return cascade::v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return cascade::v1::FINISH_REASON_LENGTH;
    case FinishReason::kCancelled: return cascade::v1::FINISH_REASON_CANCELLED;
  }
  return cascade::v1::FINISH_REASON_UNSPECIFIED;
}

ChunkRef ToChunkRef(const cascade::v1::TensorChunk& c) {
  return ChunkRef{c.name(),   c.dtype(),       std::vector<int64_t>(c.shape().begin(), c.shape().end()),
                  c.offset(), c.total_bytes(), c.data()};
}

}  // namespace

// Lifetime: deleted in OnDone, which follows Finish. Finish is called only
// after the core's DoneCallback (or when Submit failed), so no core callback
// can reach a deleted reactor.
class RolloutServiceImpl::GenerateReactor
    : public grpc::ServerWriteReactor<cascade::v1::GenerateResponse> {
 public:
  GenerateReactor(RolloutServiceImpl* service, const GenerateRequest& request)
      : service_(service) {
    absl::StatusOr<uint64_t> id = service_->core_->Submit(
        ToInput(request), [this](std::vector<SampleOutput> outputs) { OnResponses(std::move(outputs)); },
        [this](absl::Status status) { OnCoreDone(std::move(status)); });
    if (!id.ok()) {
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      Finish(ToGrpcStatus(id.status()));
      return;
    }
    absl::MutexLock lock(&mu_);
    id_ = *id;
  }

  void OnWriteDone(bool ok) override {
    std::optional<uint64_t> cancel;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !broken_) {
        // The client is gone: stop generating for it.
        broken_ = true;
        pending_.clear();
        cancel = id_;
      }
    }
    RolloutCore* core = service_->core_;
    if (cancel) core->Cancel(*cancel);
    Pump();
  }

  void OnCancel() override {
    std::optional<uint64_t> id;
    {
      absl::MutexLock lock(&mu_);
      id = id_;
    }
    if (id) service_->core_->Cancel(*id);
  }

  void OnDone() override { delete this; }

 private:
  void OnResponses(std::vector<SampleOutput> outputs) {
    GenerateResponse message;
    for (SampleOutput& o : outputs) {
      cascade::v1::Response* r = message.add_responses();
      r->set_prompt_id(o.prompt_id);
      r->set_sample_index(o.sample_index);
      r->mutable_token_ids()->Add(o.token_ids.begin(), o.token_ids.end());
      r->mutable_logprobs()->Add(o.logprobs.begin(), o.logprobs.end());
      if (service_->options_.decode) r->set_text(service_->options_.decode(o.token_ids));
      r->set_finish_reason(ToProto(o.finish_reason));
      r->set_policy_version(o.policy_version);
    }
    {
      absl::MutexLock lock(&mu_);
      if (broken_) return;
      pending_.push_back(std::move(message));
    }
    Pump();
  }

  void OnCoreDone(absl::Status status) {
    {
      absl::MutexLock lock(&mu_);
      final_ = std::move(status);
    }
    Pump();
  }

  // Starts the next write, or finishes once everything is written. gRPC may
  // run reactions inline, so StartWrite/Finish are called without mu_ held.
  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status finish_status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!pending_.empty()) {
        current_ = std::move(pending_.front());
        pending_.pop_front();
        writing_ = true;
        action = kWrite;
      } else if (final_.has_value()) {
        finished_ = true;
        finish_status = ToGrpcStatus(*final_);
        action = kFinish;
      }
    }
    if (action == kWrite) StartWrite(&current_);
    if (action == kFinish) Finish(finish_status);
  }

  RolloutServiceImpl* const service_;
  absl::Mutex mu_;
  std::optional<uint64_t> id_ ABSL_GUARDED_BY(mu_);
  std::deque<GenerateResponse> pending_ ABSL_GUARDED_BY(mu_);
  // The message being written; touched only by the thread that set writing_.
  GenerateResponse current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> final_ ABSL_GUARDED_BY(mu_);
};

// Reads run one at a time (gRPC never overlaps OnReadDone calls), so the
// stream state needs no lock.
class RolloutServiceImpl::UpdateReactor
    : public grpc::ServerReadReactor<cascade::v1::UpdateWeightsRequest> {
 public:
  UpdateReactor(RolloutServiceImpl* service, grpc::CallbackServerContext* context,
                UpdateWeightsResponse* response)
      : service_(service), context_(context), response_(response), start_(absl::Now()) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      EndOfStream();
      return;
    }
    absl::Status consumed = Consume();
    if (!consumed.ok()) {
      Finish(ToGrpcStatus(consumed));
      return;
    }
    StartRead(&message_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Consume() {
    if (message_.has_header()) {
      if (header_.has_value()) return absl::InvalidArgumentError("second WeightsHeader in one stream");
      header_ = message_.header();
      if (!header_->model().path().empty()) return absl::OkStatus();
      absl::StatusOr<std::unique_ptr<WeightsAssembler>> assembler = WeightsAssembler::Create(
          service_->core_->Parameters(), header_->tensor_count(), header_->total_bytes());
      if (!assembler.ok()) return assembler.status();
      assembler_ = std::move(*assembler);
      return absl::OkStatus();
    }
    if (!header_.has_value()) {
      return absl::InvalidArgumentError("weights stream must start with a WeightsHeader");
    }
    if (assembler_ == nullptr) {
      return absl::InvalidArgumentError(
          "weights header names a model directory; the stream must carry no chunks");
    }
    if (message_.has_chunk()) return assembler_->Add(ToChunkRef(message_.chunk()));
    for (const auto& chunk : message_.bucket().chunks()) {
      absl::Status added = assembler_->Add(ToChunkRef(chunk));
      if (!added.ok()) return added;
    }
    return absl::OkStatus();
  }

  void EndOfStream() {
    if (context_->IsCancelled()) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "weights stream cancelled; update dropped"));
      return;
    }
    if (!header_.has_value()) {
      Finish(ToGrpcStatus(absl::InvalidArgumentError("weights stream ended without a header")));
      return;
    }
    std::vector<model::TensorView> views;
    if (assembler_ != nullptr) {
      absl::StatusOr<std::vector<model::TensorView>> finished = assembler_->Finish();
      if (!finished.ok()) {
        Finish(ToGrpcStatus(finished.status()));
        return;
      }
      views = std::move(*finished);
    }
    // The views point into assembler_, which lives until OnDone (after Finish).
    absl::Status scheduled = service_->apply_pool_.TrySchedule([this, views = std::move(views)] {
      RolloutCore* core = service_->core_;
      const int64_t version = header_->version();
      absl::Status applied = assembler_ != nullptr
                                 ? core->ApplyWeights(version, views)
                                 : core->ApplyWeightsFromDir(version, header_->model().path());
      if (!applied.ok()) {
        Finish(ToGrpcStatus(applied));
        return;
      }
      response_->set_version(core->policy_version());
      response_->set_seconds(absl::ToDoubleSeconds(absl::Now() - start_));
      Finish(grpc::Status::OK);
    });
    if (!scheduled.ok()) {
      Finish(ToGrpcStatus(absl::ResourceExhaustedError(
          absl::StrCat("too many weight updates waiting; retry later (", scheduled.message(), ")"))));
    }
  }

  RolloutServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  UpdateWeightsResponse* const response_;
  const absl::Time start_;
  UpdateWeightsRequest message_;
  std::optional<cascade::v1::WeightsHeader> header_;
  std::unique_ptr<WeightsAssembler> assembler_;
};

// A weight group being met or met: `joined` fires when the meeting ended,
// successfully (`group` set) or not (`error`).
struct RolloutServiceImpl::WeightGroupState {
  std::string id;
  model::DType wire = model::DType::kF32;
  int timeout_seconds = 60;
  absl::Notification joined;
  std::unique_ptr<model::WeightGroup> group;  // written once, before `joined`
  absl::Status error;
};

RolloutServiceImpl::RolloutServiceImpl(RolloutCore* core, RolloutServiceOptions options)
    : core_(core),
      options_(std::move(options)),
      join_pool_({.name = "rollout-join", .threads = 2, .queue_capacity = 4}),
      apply_pool_({.name = "rollout-weights",
                   .threads = 1,
                   .queue_capacity = options_.max_queued_weight_updates}) {}

grpc::ServerUnaryReactor* RolloutServiceImpl::JoinWeightGroup(
    grpc::CallbackServerContext* context, const cascade::v1::JoinWeightGroupRequest* request,
    cascade::v1::JoinWeightGroupResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto refuse = [reactor](const absl::Status& error) {
    reactor->Finish(ToGrpcStatus(error));
    return reactor;
  };
  if (request->group_id().empty()) {
    return refuse(absl::InvalidArgumentError("JoinWeightGroupRequest.group_id: required"));
  }
  model::Status backend = model::WeightGroupBackendAvailable(request->backend());
  if (!backend.ok()) {
    return refuse(absl::Status(static_cast<absl::StatusCode>(backend.code()), backend.message()));
  }
  // The broadcast walks the parameters in order: names and shapes must match.
  const std::vector<model::ParameterInfo> mine = core_->Parameters();
  if (request->parameters_size() != static_cast<int>(mine.size())) {
    return refuse(absl::InvalidArgumentError(
        absl::StrCat("weight group: the learner sends ", request->parameters_size(),
                     " parameters, this replica's model has ", mine.size())));
  }
  model::DType wire = model::DType::kF32;
  for (size_t i = 0; i < mine.size(); ++i) {
    const cascade::v1::ParameterSpec& theirs = request->parameters(static_cast<int>(i));
    const std::vector<int64_t> shape(theirs.shape().begin(), theirs.shape().end());
    if (theirs.name() != mine[i].name || shape != mine[i].shape) {
      return refuse(absl::InvalidArgumentError(absl::StrCat(
          "weight group: parameter ", i, " is \"", theirs.name(), "\" on the learner but \"",
          mine[i].name, "\" on this replica, or their shapes differ")));
    }
    model::StatusOr<model::DType> dtype = model::ParseTorchDType(theirs.dtype());
    if (!dtype.ok() || (i > 0 && *dtype != wire)) {
      return refuse(absl::InvalidArgumentError(absl::StrCat(
          "weight group: parameter \"", theirs.name(), "\": dtype \"", theirs.dtype(),
          "\" (expected one of float32, bfloat16, float16, the same for every parameter)")));
    }
    wire = *dtype;
  }
  auto state = std::make_shared<WeightGroupState>();
  state->id = request->group_id();
  state->wire = wire;
  state->timeout_seconds = request->timeout_s() > 0 ? request->timeout_s() : 60;
  model::WeightGroupOptions options;
  options.backend = request->backend();
  options.master_address = request->master_address();
  options.master_port = request->master_port();
  options.world_size = request->world_size();
  options.rank = request->rank();
  options.group_id = request->group_id();
  options.timeout_seconds = state->timeout_seconds;
  absl::Status scheduled = join_pool_.TrySchedule([state, options] {
    model::StatusOr<std::unique_ptr<model::WeightGroup>> joined = model::WeightGroup::Join(options);
    if (joined.ok()) {
      state->group = std::move(*joined);
    } else {
      state->error = absl::Status(static_cast<absl::StatusCode>(joined.status().code()),
                                  absl::StrCat("weight group ", options.group_id, ": ",
                                               joined.status().message()));
    }
    state->joined.Notify();
  });
  if (!scheduled.ok()) {
    return refuse(absl::ResourceExhaustedError(
        absl::StrCat("weight group: too many meetings pending (", scheduled.message(), ")")));
  }
  {
    absl::MutexLock lock(&group_mu_);
    group_ = std::move(state);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RolloutServiceImpl::ReceiveWeights(
    grpc::CallbackServerContext* context, const cascade::v1::ReceiveWeightsRequest* request,
    cascade::v1::UpdateWeightsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status scheduled = apply_pool_.TrySchedule([this, reactor, request, response] {
    reactor->Finish(ToGrpcStatus(Receive(*request, response)));
  });
  if (!scheduled.ok()) {
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("too many weight updates waiting; retry later (", scheduled.message(), ")"))));
  }
  return reactor;
}

absl::Status RolloutServiceImpl::Receive(const cascade::v1::ReceiveWeightsRequest& request,
                                         cascade::v1::UpdateWeightsResponse* response) {
  const absl::Time start = absl::Now();
  if (request.bucket_bytes() <= 0) {
    return absl::InvalidArgumentError("ReceiveWeightsRequest.bucket_bytes: must be positive");
  }
  std::shared_ptr<WeightGroupState> state;
  {
    absl::MutexLock lock(&group_mu_);
    state = group_;
  }
  if (state == nullptr || state->id != request.group_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat("weight group \"", request.group_id(),
                     "\" is not the one this replica joined; join it first"));
  }
  if (!state->joined.WaitForNotificationWithTimeout(absl::Seconds(state->timeout_seconds))) {
    return absl::DeadlineExceededError(
        absl::StrCat("weight group ", state->id, ": the members did not meet in time"));
  }
  auto drop = [this, &state] {
    absl::MutexLock lock(&group_mu_);
    if (group_ == state) group_.reset();
  };
  if (state->group == nullptr) {
    drop();
    return state->error;
  }
  model::StatusOr<std::unique_ptr<model::Model>> received = state->group->Receive(
      *core_->model(), state->wire, static_cast<size_t>(request.bucket_bytes()));
  if (!received.ok()) {
    // A broken broadcast leaves the group unusable on every rank.
    drop();
    return absl::Status(static_cast<absl::StatusCode>(received.status().code()),
                        absl::StrCat("weights version ", request.version(),
                                     " not received (still serving the previous version): ",
                                     received.status().message()));
  }
  absl::Status applied = core_->ApplyModel(request.version(), std::move(*received));
  if (!applied.ok()) return applied;
  response->set_version(core_->policy_version());
  response->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

grpc::ServerWriteReactor<cascade::v1::GenerateResponse>* RolloutServiceImpl::Generate(
    grpc::CallbackServerContext* context, const cascade::v1::GenerateRequest* request) {
  return new GenerateReactor(this, *request);
}

grpc::ServerReadReactor<cascade::v1::UpdateWeightsRequest>* RolloutServiceImpl::UpdateWeights(
    grpc::CallbackServerContext* context, cascade::v1::UpdateWeightsResponse* response) {
  return new UpdateReactor(this, context, response);
}

grpc::ServerUnaryReactor* RolloutServiceImpl::GetState(
    grpc::CallbackServerContext* context, const cascade::v1::GetRolloutStateRequest* request,
    cascade::v1::RolloutState* response) {
  RolloutState state = core_->State();
  response->set_policy_version(state.policy_version);
  response->set_queued_requests(state.queued_requests);
  response->set_running_sequences(state.running_sequences);
  response->set_max_batch_tokens(state.max_batch_tokens);
  {
    absl::MutexLock lock(&group_mu_);
    if (group_ != nullptr) response->set_weight_group_id(group_->id);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cascade::rollout
