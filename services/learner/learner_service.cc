#include "services/learner/learner_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace cascade::learner {

absl::StatusOr<Batch> BatchFromProto(const cascade::v1::TrainStepRequest& request) {
  Batch batch;
  switch (request.loss()) {
    case cascade::v1::LOSS_KIND_GRPO:
      batch.loss = LossKind::kGrpo;
      break;
    case cascade::v1::LOSS_KIND_SFT:
      batch.loss = LossKind::kSft;
      break;
    default:
      return absl::InvalidArgumentError(
          "TrainStepRequest.loss: must be LOSS_KIND_GRPO or LOSS_KIND_SFT");
  }
  if (request.sequences_size() == 0) {
    return absl::InvalidArgumentError("TrainStepRequest.sequences: empty batch");
  }
  batch.policy_version = request.policy_version();
  batch.learning_rate = request.learning_rate();
  batch.micro_batch_tokens = request.micro_batch_tokens();
  batch.optimizer_scope = request.optimizer_scope();
  batch.sequences.reserve(request.sequences_size());
  for (const auto& proto : request.sequences()) {
    Sequence s;
    s.token_ids.assign(proto.token_ids().begin(), proto.token_ids().end());
    s.loss_mask.reserve(proto.loss_mask_size());
    for (int32_t m : proto.loss_mask()) s.loss_mask.push_back(m != 0);
    s.advantage = proto.advantage();
    s.rollout_logprobs.assign(proto.rollout_logprobs().begin(), proto.rollout_logprobs().end());
    batch.sequences.push_back(std::move(s));
  }
  return batch;
}

void StatsToProto(const StepStats& stats, cascade::v1::TrainStepResponse* response) {
  response->set_policy_version(stats.policy_version);
  response->set_loss(static_cast<float>(stats.loss));
  response->set_grad_norm(static_cast<float>(stats.grad_norm));
  response->set_learning_rate(static_cast<float>(stats.learning_rate));
  response->set_tokens(stats.tokens);
  response->set_entropy(static_cast<float>(stats.entropy));
  response->set_logprob_mismatch(static_cast<float>(stats.logprob_mismatch));
  response->set_seconds(stats.seconds);
  response->set_optimizer_reset(stats.optimizer_reset);
}

Batch ShardForRank(const Batch& batch, int rank, int world_size) {
  if (world_size <= 1) return batch;
  Batch share = batch;
  share.sequences.clear();
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    if (static_cast<int>(i % world_size) == rank) share.sequences.push_back(batch.sequences[i]);
  }
  return share;
}

namespace {

// Per-step figures of rank 0 (the whole batch), for dashboards and alerts:
// a rising logprob mismatch means stale or corrupted rollout weights.
struct StepMetrics {
  StepMetrics() {
    auto& registry = *MetricsRegistry();
    auto& steps_family = prometheus::BuildCounter()
                             .Name("cascade_learner_steps_total")
                             .Help("Optimizer steps taken, by loss")
                             .Register(registry);
    grpo_steps = &steps_family.Add({{"loss", "grpo"}});
    sft_steps = &steps_family.Add({{"loss", "sft"}});
    tokens = &prometheus::BuildCounter()
                  .Name("cascade_learner_tokens_total")
                  .Help("Assistant tokens trained on")
                  .Register(registry)
                  .Add({});
    step_seconds = &prometheus::BuildHistogram()
                        .Name("cascade_learner_step_seconds")
                        .Help("Wall time of one optimizer step")
                        .Register(registry)
                        .Add({}, LatencyBuckets());
    auto gauge = [&](const char* name, const char* help) {
      return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
    };
    version = gauge("cascade_learner_policy_version", "Current policy version (steps taken)");
    loss = gauge("cascade_learner_loss", "Loss of the last step");
    grad_norm = gauge("cascade_learner_grad_norm", "Gradient L2 norm of the last step, before clipping");
    learning_rate = gauge("cascade_learner_learning_rate", "Learning rate of the last step");
    entropy = gauge("cascade_learner_entropy_nats", "Mean per-token policy entropy of the last step");
    mismatch = gauge("cascade_learner_logprob_mismatch",
                     "Mean |rollout - learner| log-prob of the last step's assistant tokens");
  }
  void Record(LossKind kind, const StepStats& s) {
    (kind == LossKind::kSft ? sft_steps : grpo_steps)->Increment();
    tokens->Increment(static_cast<double>(s.tokens));
    step_seconds->Observe(s.seconds);
    version->Set(static_cast<double>(s.policy_version));
    loss->Set(s.loss);
    grad_norm->Set(s.grad_norm);
    learning_rate->Set(s.learning_rate);
    entropy->Set(s.entropy);
    mismatch->Set(s.logprob_mismatch);
  }
  prometheus::Counter *grpo_steps, *sft_steps, *tokens;
  prometheus::Histogram* step_seconds;
  prometheus::Gauge *version, *loss, *grad_norm, *learning_rate, *entropy, *mismatch;
};

StepMetrics& Metrics() {
  static StepMetrics* metrics = new StepMetrics();  // process-wide, like the registry
  return *metrics;
}

// Rank 0: sends `command` to every other rank (nothing with one rank).
absl::Status Relay(LearnerCore* core, const cascade::v1::LearnerCommand& command) {
  if (core->world_size() == 1) return absl::OkStatus();
  std::string bytes = command.SerializeAsString();
  return core->BroadcastBytes(&bytes);
}

// The part every rank runs for a train step.
absl::StatusOr<StepStats> TrainShare(LearnerCore* core, const Batch& batch) {
  return core->TrainStep(ShardForRank(batch, core->rank(), core->world_size()));
}

}  // namespace

absl::Status RunFollower(LearnerCore* core) {
  while (true) {
    std::string bytes;
    absl::Status received = core->BroadcastBytes(&bytes);
    if (!received.ok()) return received;
    cascade::v1::LearnerCommand command;
    if (!command.ParseFromString(bytes)) {
      return absl::DataLossError("data-parallel relay: unparsable command from rank 0");
    }
    absl::Status done = absl::OkStatus();
    switch (command.command_case()) {
      case cascade::v1::LearnerCommand::kTrainStep: {
        // Rank 0 validated the request before relaying it.
        absl::StatusOr<Batch> batch = BatchFromProto(command.train_step());
        done = batch.ok() ? TrainShare(core, *batch).status() : batch.status();
        break;
      }
      case cascade::v1::LearnerCommand::kSaveCheckpoint:
        done = core->SaveCheckpoint(command.save_checkpoint().directory());
        break;
      case cascade::v1::LearnerCommand::kLoadCheckpoint:
        done = command.load_checkpoint().weights_only()
                   ? core->LoadModelWeights(command.load_checkpoint().directory())
                   : core->LoadCheckpoint(command.load_checkpoint().directory());
        break;
      case cascade::v1::LearnerCommand::kShutdown:
        return absl::OkStatus();
      case cascade::v1::LearnerCommand::kHeartbeat:
        break;
      default:
        return absl::DataLossError("data-parallel relay: empty command from rank 0");
    }
    // Rank 0 reports the same failure to its caller; a follower keeps going.
    if (!done.ok()) {
      CASCADE_LOG(WARNING) << "rank " << core->rank() << ": relayed command failed: " << done;
    }
  }
}

LearnerServiceImpl::LearnerServiceImpl(LearnerCore* core, LearnerServiceOptions options)
    : core_(core),
      options_(options),
      pool_({.name = "learner-rpc", .threads = 1, .queue_capacity = options.max_queued_requests}) {
  Metrics().version->Set(static_cast<double>(core_->version()));
  if (core_->world_size() > 1 && options_.heartbeat > absl::ZeroDuration()) {
    heartbeat_ = std::thread([this] {
      while (!stop_heartbeat_.WaitForNotificationWithTimeout(options_.heartbeat)) {
        // Queued behind real calls on the same pool: a busy learner sends
        // its heartbeats late, which is fine, since its steps reach the
        // followers anyway. A full queue skips a beat.
        (void)pool_.TrySchedule([this] {
          cascade::v1::LearnerCommand command;
          command.set_heartbeat(true);
          if (absl::Status s = Relay(core_, command); !s.ok()) {
            CASCADE_LOG(WARNING) << "heartbeat to the other ranks failed: " << s;
          }
        });
      }
    });
  }
}

LearnerServiceImpl::~LearnerServiceImpl() { StopHeartbeat(); }

void LearnerServiceImpl::StopHeartbeat() {
  if (!stop_heartbeat_.HasBeenNotified()) stop_heartbeat_.Notify();
  if (heartbeat_.joinable()) heartbeat_.join();
}

absl::Status LearnerServiceImpl::Shutdown() {
  StopHeartbeat();
  if (core_->world_size() == 1) return absl::OkStatus();
  absl::Notification done;
  absl::Status result;
  absl::Status scheduled = pool_.TrySchedule([this, &done, &result] {
    cascade::v1::LearnerCommand command;
    command.set_shutdown(true);
    result = Relay(core_, command);
    done.Notify();
  });
  if (!scheduled.ok()) return scheduled;
  done.WaitForNotification();
  return result;
}

grpc::ServerUnaryReactor* LearnerServiceImpl::Run(grpc::CallbackServerContext* context,
                                                  std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status scheduled = pool_.TrySchedule([reactor, work = std::move(work)] {
    reactor->Finish(ToGrpcStatus(work()));
  });
  if (!scheduled.ok()) {
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "learner is busy with earlier calls; retry later (", scheduled.message(), ")"))));
  }
  return reactor;
}

grpc::ServerUnaryReactor* LearnerServiceImpl::TrainStep(
    grpc::CallbackServerContext* context, const cascade::v1::TrainStepRequest* request,
    cascade::v1::TrainStepResponse* response) {
  return Run(context, [this, request, response]() -> absl::Status {
    absl::StatusOr<Batch> batch = BatchFromProto(*request);
    if (!batch.ok()) return batch.status();
    cascade::v1::LearnerCommand command;
    *command.mutable_train_step() = *request;
    absl::Status relayed = Relay(core_, command);
    if (!relayed.ok()) return relayed;
    absl::StatusOr<StepStats> stats = TrainShare(core_, *batch);
    if (!stats.ok()) return stats.status();
    if (stats->optimizer_reset) {
      CASCADE_LOG(INFO) << "optimizer scope \"" << batch->optimizer_scope
                        << "\" begins at version " << stats->policy_version - 1 << ": fresh AdamW state";
    }
    Metrics().Record(batch->loss, *stats);
    StatsToProto(*stats, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LearnerServiceImpl::SaveCheckpoint(
    grpc::CallbackServerContext* context, const cascade::v1::SaveCheckpointRequest* request,
    cascade::v1::SaveCheckpointResponse* response) {
  return Run(context, [this, request, response]() -> absl::Status {
    if (request->directory().empty()) {
      return absl::InvalidArgumentError("SaveCheckpointRequest.directory: required");
    }
    cascade::v1::LearnerCommand command;
    *command.mutable_save_checkpoint() = *request;
    absl::Status relayed = Relay(core_, command);
    if (!relayed.ok()) return relayed;
    absl::Status saved = core_->SaveCheckpoint(request->directory());
    if (!saved.ok()) return saved;
    response->set_directory(request->directory());
    response->set_step(core_->version());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LearnerServiceImpl::LoadCheckpoint(
    grpc::CallbackServerContext* context, const cascade::v1::LoadCheckpointRequest* request,
    cascade::v1::LoadCheckpointResponse* response) {
  return Run(context, [this, request, response]() -> absl::Status {
    if (request->directory().empty()) {
      return absl::InvalidArgumentError("LoadCheckpointRequest.directory: required");
    }
    cascade::v1::LearnerCommand command;
    *command.mutable_load_checkpoint() = *request;
    absl::Status relayed = Relay(core_, command);
    if (!relayed.ok()) return relayed;
    absl::Status loaded = request->weights_only() ? core_->LoadModelWeights(request->directory())
                                                  : core_->LoadCheckpoint(request->directory());
    if (!loaded.ok()) return loaded;
    response->set_step(core_->version());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LearnerServiceImpl::RegisterRollout(
    grpc::CallbackServerContext* context, const cascade::v1::RegisterRolloutRequest* request,
    cascade::v1::RegisterRolloutResponse* response) {
  if (options_.publisher == nullptr) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(absl::UnimplementedError(
        "RegisterRollout: this learner has no weight publisher wired in")));
    return reactor;
  }
  return Run(context, [this, request, response]() -> absl::Status {
    if (request->address().empty()) {
      return absl::InvalidArgumentError("RegisterRolloutRequest.address: required");
    }
    response->set_replicas(options_.publisher->RegisterReplica(request->address()));
    // Catch-up: a new or restarted replica gets the current version now, so
    // it can serve the next step; replicas already holding it are skipped.
    absl::Status published = core_->PublishWeights(*options_.publisher);
    // The caller asked for itself: another replica being down is the next
    // PublishWeights' concern, not a reason to make this one register again.
    if (!published.ok() &&
        options_.publisher->AcknowledgedVersion(request->address()) == core_->version()) {
      CASCADE_LOG(WARNING) << request->address() << " registered at version " << core_->version()
                           << "; other replicas are behind: " << published.message();
      return absl::OkStatus();
    }
    return published;
  });
}

grpc::ServerUnaryReactor* LearnerServiceImpl::PublishWeights(
    grpc::CallbackServerContext* context, const cascade::v1::PublishWeightsRequest* request,
    cascade::v1::PublishWeightsResponse* response) {
  if (options_.publisher == nullptr) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(absl::UnimplementedError(
        "PublishWeights: this learner has no weight publisher wired in")));
    return reactor;
  }
  return Run(context, [this, response]() -> absl::Status {
    absl::Time start = absl::Now();
    absl::Status published = core_->PublishWeights(*options_.publisher);
    if (!published.ok()) return published;
    response->set_version(core_->version());
    // Publish succeeds only when every registered replica acknowledged.
    response->set_acknowledged(options_.publisher->replica_count());
    response->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
    return absl::OkStatus();
  });
}

}  // namespace cascade::learner
