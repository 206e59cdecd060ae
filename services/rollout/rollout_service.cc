#include "services/rollout/rollout_service.h"

#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
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

RolloutServiceImpl::RolloutServiceImpl(RolloutCore* core, RolloutServiceOptions options)
    : core_(core),
      options_(std::move(options)),
      apply_pool_({.name = "rollout-weights",
                   .threads = 1,
                   .queue_capacity = options_.max_queued_weight_updates}) {}

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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cascade::rollout
