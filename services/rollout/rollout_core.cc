#include "services/rollout/rollout_core.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace cascade::rollout {
namespace {

absl::Status FromModelStatus(const model::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

// splitmix64 finalizer: decorrelates neighbouring seeds.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t SampleSeed(uint64_t seed, int prompt_index, int sample_index) {
  return Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(prompt_index)) ^
             static_cast<uint64_t>(sample_index));
}

absl::Status VersionMismatchError(int64_t required, int64_t served) {
  return absl::FailedPreconditionError(
      absl::StrCat("policy version ", required, " requested but this replica serves version ",
                   served, "; wait until the learner's update to ", required,
                   " is acknowledged and retry"));
}

struct RolloutCore::Metrics {
  Metrics() {
    auto& registry = *MetricsRegistry();
    tokens = &prometheus::BuildCounter()
                  .Name("cascade_rollout_tokens_total")
                  .Help("Tokens generated")
                  .Register(registry)
                  .Add({});
    responses = &prometheus::BuildCounter()
                     .Name("cascade_rollout_responses_total")
                     .Help("Responses delivered")
                     .Register(registry)
                     .Add({});
    queued = &prometheus::BuildGauge()
                  .Name("cascade_rollout_queued_requests")
                  .Help("Requests waiting with sequences not yet scheduled")
                  .Register(registry)
                  .Add({});
    running = &prometheus::BuildGauge()
                   .Name("cascade_rollout_running_sequences")
                   .Help("Sequences in the running batch")
                   .Register(registry)
                   .Add({});
    occupancy = &prometheus::BuildGauge()
                     .Name("cascade_rollout_batch_occupancy_ratio")
                     .Help("Share of the token budget the running batch reserves (0..1)")
                     .Register(registry)
                     .Add({});
    version = &prometheus::BuildGauge()
                   .Name("cascade_rollout_policy_version")
                   .Help("Policy version served")
                   .Register(registry)
                   .Add({});
    request_seconds = &prometheus::BuildHistogram()
                           .Name("cascade_rollout_request_seconds")
                           .Help("Time from Submit to the last response of a request")
                           .Register(registry)
                           .Add({}, LatencyBuckets());
    step_seconds = &prometheus::BuildHistogram()
                        .Name("cascade_rollout_step_seconds")
                        .Help("Time of one decoding step of the running batch, with the "
                              "prefill of the sequences that joined it")
                        .Register(registry)
                        .Add({}, LatencyBuckets());
    weight_updates = &prometheus::BuildCounter()
                          .Name("cascade_rollout_weight_updates_total")
                          .Help("Weight updates applied")
                          .Register(registry)
                          .Add({});
    weight_update_seconds = &prometheus::BuildHistogram()
                                 .Name("cascade_rollout_weight_update_seconds")
                                 .Help("Time to build and swap in new weights")
                                 .Register(registry)
                                 .Add({}, LatencyBuckets());
  }
  prometheus::Counter* tokens;
  prometheus::Counter* responses;
  prometheus::Gauge* queued;
  prometheus::Gauge* running;
  prometheus::Gauge* occupancy;
  prometheus::Gauge* version;
  prometheus::Histogram* request_seconds;
  prometheus::Histogram* step_seconds;
  prometheus::Counter* weight_updates;
  prometheus::Histogram* weight_update_seconds;
};

// Fields other than the immutable ones are guarded by RolloutCore::mu_.
struct RolloutCore::Request {
  uint64_t id = 0;
  GenerateInput input;
  ResponsesCallback on_responses;
  DoneCallback on_done;
  absl::Time submitted;
  int64_t total = 0;        // prompts x G
  int64_t next = 0;         // next sequence to schedule
  int64_t outstanding = 0;  // sequences in the running batch
  bool cancelled = false;
  bool done = false;        // DoneCallback queued

  int64_t SequenceTokens(int64_t sequence) const {
    const auto& prompt = input.prompts[sequence / input.samples_per_prompt];
    return static_cast<int64_t>(prompt.token_ids.size()) + input.sampling.max_new_tokens;
  }
};

RolloutCore::RolloutCore(std::unique_ptr<model::Model> model, int64_t policy_version,
                         RolloutOptions options)
    : options_(options), metrics_(std::make_unique<Metrics>()) {
  {
    absl::MutexLock lock(&mu_);
    model_ = std::shared_ptr<const model::Model>(std::move(model));
    version_ = policy_version;
  }
  metrics_->version->Set(static_cast<double>(policy_version));
  scheduler_ = std::make_unique<WorkerPool>(
      WorkerPoolOptions{.name = "rollout-scheduler", .threads = 1, .queue_capacity = 1});
  {
    absl::MutexLock lock(&mu_);
    loop_running_ = true;
  }
  absl::Status started = scheduler_->TrySchedule([this] { SchedulerLoop(); });
  if (!started.ok()) {
    CASCADE_LOG(ERROR) << "rollout scheduler did not start: " << started;
    absl::MutexLock lock(&mu_);
    loop_running_ = false;
    stopping_ = true;  // Submit then answers UNAVAILABLE instead of queueing forever
  }
}

RolloutCore::~RolloutCore() {
  std::vector<std::shared_ptr<Request>> orphans;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // The loop sees stopping_ between decoding steps.
    auto exited = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !loop_running_; };
    mu_.Await(absl::Condition(&exited));
  }
  scheduler_.reset();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, request] : live_) {
      if (!request->done) orphans.push_back(request);
      request->done = true;
    }
    live_.clear();
    queue_.clear();
  }
  for (auto& request : orphans) {
    request->on_done(absl::UnavailableError("rollout replica is shutting down"));
  }
}

absl::StatusOr<uint64_t> RolloutCore::Submit(GenerateInput input, ResponsesCallback on_responses,
                                             DoneCallback on_done) {
  // 1. Validate everything a batch could trip over, so one bad request never
  //    fails the batch it would share with others.
  if (input.prompts.empty()) return absl::InvalidArgumentError("prompts: empty");
  if (input.samples_per_prompt < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples_per_prompt: ", input.samples_per_prompt, " (expected >= 1)"));
  }
  if (input.sampling.max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampling.max_new_tokens: ", input.sampling.max_new_tokens, " (expected >= 1)"));
  }
  std::shared_ptr<const model::Model> model;
  {
    absl::MutexLock lock(&mu_);
    model = model_;
  }
  const int64_t vocab = model->config().vocab_size;
  for (size_t i = 0; i < input.prompts.size(); ++i) {
    const auto& ids = input.prompts[i].token_ids;
    if (ids.empty()) return absl::InvalidArgumentError(absl::StrCat("prompts[", i, "]: no tokens"));
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat("prompts[", i, "]: token id ", id,
                                                       " outside the vocabulary [0, ", vocab, ")"));
      }
    }
    const int64_t cost = static_cast<int64_t>(ids.size()) + input.sampling.max_new_tokens;
    if (cost > options_.max_batch_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompts[", i, "]: prompt + max_new_tokens = ", cost,
          " tokens exceed the replica's batch budget of ", options_.max_batch_tokens,
          "; shorten the prompt or lower max_new_tokens"));
    }
  }
  for (int64_t id : input.sampling.stop_token_ids) {
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("sampling.stop_token_ids: ", id,
                                                     " outside the vocabulary [0, ", vocab, ")"));
    }
  }

  // 2. Version and capacity, under the lock that also guards swaps.
  auto request = std::make_shared<Request>();
  request->total = static_cast<int64_t>(input.prompts.size()) * input.samples_per_prompt;
  request->input = std::move(input);
  request->on_responses = std::move(on_responses);
  request->on_done = std::move(on_done);
  request->submitted = absl::Now();
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("rollout replica is shutting down");
  if (request->input.policy_version != version_) {
    return VersionMismatchError(request->input.policy_version, version_);
  }
  if (static_cast<int>(queue_.size()) >= options_.max_queued_requests) {
    return absl::ResourceExhaustedError(absl::StrCat("rollout queue is full (",
                                                     options_.max_queued_requests,
                                                     " requests); retry later"));
  }
  request->id = next_id_++;
  queue_.push_back(request);
  live_[request->id] = request;
  metrics_->queued->Set(static_cast<double>(queue_.size()));
  return request->id;
}

void RolloutCore::Cancel(uint64_t request_id) {
  std::shared_ptr<Request> finished;
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(request_id);
    if (it == live_.end() || it->second->done) return;
    std::shared_ptr<Request> request = it->second;
    request->cancelled = true;
    queue_.erase(std::remove(queue_.begin(), queue_.end(), request), queue_.end());
    metrics_->queued->Set(static_cast<double>(queue_.size()));
    // With sequences running, the scheduler finishes it after the batch.
    if (request->outstanding == 0) {
      request->done = true;
      live_.erase(it);
      finished = request;
    }
  }
  if (finished) finished->on_done(absl::CancelledError("request cancelled"));
}

absl::StatusOr<std::vector<SampleOutput>> RolloutCore::Generate(GenerateInput input,
                                                                absl::Duration timeout) {
  struct Waiter {
    absl::Mutex mu;
    std::vector<SampleOutput> outputs ABSL_GUARDED_BY(mu);
    std::optional<absl::Status> status ABSL_GUARDED_BY(mu);
  };
  auto waiter = std::make_shared<Waiter>();
  absl::StatusOr<uint64_t> id = Submit(
      std::move(input),
      [waiter](std::vector<SampleOutput> outputs) {
        absl::MutexLock lock(&waiter->mu);
        for (auto& o : outputs) waiter->outputs.push_back(std::move(o));
      },
      [waiter](absl::Status status) {
        absl::MutexLock lock(&waiter->mu);
        waiter->status = std::move(status);
      });
  if (!id.ok()) return id.status();
  auto finished = [&waiter]() ABSL_SHARED_LOCKS_REQUIRED(waiter->mu) {
    return waiter->status.has_value();
  };
  bool in_time;
  {
    absl::MutexLock lock(&waiter->mu);
    in_time = waiter->mu.AwaitWithTimeout(absl::Condition(&finished), timeout);
  }
  if (!in_time) {
    // Cancel outside the waiter's lock: it may run the DoneCallback inline.
    Cancel(*id);
    absl::MutexLock lock(&waiter->mu);
    waiter->mu.Await(absl::Condition(&finished));
    return absl::DeadlineExceededError(
        absl::StrCat("generation did not finish within ", absl::FormatDuration(timeout)));
  }
  absl::MutexLock lock(&waiter->mu);
  if (!waiter->status->ok()) return *waiter->status;
  std::vector<SampleOutput> outputs = std::move(waiter->outputs);
  std::sort(outputs.begin(), outputs.end(), [](const SampleOutput& a, const SampleOutput& b) {
    return std::make_pair(a.prompt_index, a.sample_index) <
           std::make_pair(b.prompt_index, b.sample_index);
  });
  return outputs;
}

std::vector<RolloutCore::Slot> RolloutCore::AdmitLocked(int64_t batch_version,
                                                        int64_t* tokens_in_flight,
                                                        Deferred* deferred) {
  std::vector<Slot> admitted;
  while (!queue_.empty()) {
    std::shared_ptr<Request> request = queue_.front();
    if (request->input.policy_version != version_) {
      // Step 3 of the version contract: its weights are gone.
      queue_.pop_front();
      request->cancelled = true;
      SettleLocked(request, deferred);  // or after its running sequences
      continue;
    }
    // New weights wait for the batch on the old ones to drain.
    if (batch_version != version_) break;
    while (request->next < request->total) {
      const int64_t cost = request->SequenceTokens(request->next);
      const bool empty = *tokens_in_flight == 0 && admitted.empty();
      if (*tokens_in_flight + cost > options_.max_batch_tokens && !empty) break;
      *tokens_in_flight += cost;
      admitted.push_back(Slot{request, request->next, cost});
      ++request->next;
      ++request->outstanding;
    }
    if (request->next < request->total) break;  // budget spent
    queue_.pop_front();
  }
  metrics_->queued->Set(static_cast<double>(queue_.size()));
  return admitted;
}

void RolloutCore::SettleLocked(const std::shared_ptr<Request>& request, Deferred* deferred) {
  if (request->done || request->outstanding > 0) return;
  if (request->cancelled) {
    request->done = true;
    live_.erase(request->id);
    absl::Status error = request->input.policy_version != version_
                             ? VersionMismatchError(request->input.policy_version, version_)
                             : absl::CancelledError("request cancelled");
    deferred->push_back([request, error] { request->on_done(error); });
  } else if (request->next == request->total) {
    request->done = true;
    live_.erase(request->id);
    metrics_->request_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - request->submitted));
    deferred->push_back([request] { request->on_done(absl::OkStatus()); });
  }
}

void RolloutCore::FailLocked(const std::shared_ptr<Request>& request, const absl::Status& error,
                             Deferred* deferred) {
  if (request->done) return;
  request->done = true;
  request->cancelled = true;
  queue_.erase(std::remove(queue_.begin(), queue_.end(), request), queue_.end());
  live_.erase(request->id);
  deferred->push_back([request, error] { request->on_done(error); });
}

void RolloutCore::SchedulerLoop() {
  // The running batch, owned by this thread: its weights and version, and
  // its sequences under the ids GenerationBatch knows them by.
  std::shared_ptr<const model::Model> model;
  int64_t batch_version = 0;
  std::unique_ptr<model::GenerationBatch> batch;
  std::map<uint64_t, Slot> running;
  int64_t tokens_in_flight = 0;
  uint64_t next_slot_id = 0;

  while (true) {
    Deferred deferred;
    std::vector<std::pair<uint64_t, Slot>> joining;
    // 1. Under the lock: wait for work, drop cancelled sequences, admit.
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this, &running]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || !running.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) {
        loop_running_ = false;  // the destructor ends the requests still live
        return;
      }
      for (auto it = running.begin(); it != running.end();) {
        const std::shared_ptr<Request>& request = it->second.request;
        if (!request->cancelled && !request->done) {
          ++it;
          continue;
        }
        batch->Remove(it->first);
        tokens_in_flight -= it->second.tokens;
        --request->outstanding;
        SettleLocked(request, &deferred);
        it = running.erase(it);
      }
      if (running.empty()) {
        // A fresh batch starts on the weights served now.
        model = model_;
        batch_version = version_;
        batch = model->NewBatch();
        tokens_in_flight = 0;
      }
      for (Slot& slot : AdmitLocked(batch_version, &tokens_in_flight, &deferred)) {
        joining.emplace_back(next_slot_id++, std::move(slot));
      }
      sequences_total_ += static_cast<int64_t>(joining.size());
      running_sequences_ = static_cast<int>(running.size() + joining.size());
      peak_running_sequences_ = std::max(peak_running_sequences_, running_sequences_);
      metrics_->running->Set(static_cast<double>(running_sequences_));
      metrics_->occupancy->Set(static_cast<double>(tokens_in_flight) /
                               static_cast<double>(options_.max_batch_tokens));
    }
    for (auto& call : deferred) call();
    deferred.clear();
    if (running.empty() && joining.empty()) continue;

    // 2. Prefill the joining sequences, then one step for the whole batch,
    //    all on the batch's weights.
    const absl::Time start = absl::Now();
    absl::Status failure;
    if (!joining.empty()) {
      std::vector<uint64_t> ids;
      std::vector<model::GenerationRequest> requests;
      for (const auto& [id, slot] : joining) {
        const GenerateInput& in = slot.request->input;
        const int prompt = static_cast<int>(slot.sequence / in.samples_per_prompt);
        const int sample = static_cast<int>(slot.sequence % in.samples_per_prompt);
        model::GenerationRequest r;
        r.prompt = in.prompts[prompt].token_ids;
        r.params = in.sampling;
        r.params.seed = SampleSeed(in.sampling.seed, prompt, sample);
        ids.push_back(id);
        requests.push_back(std::move(r));
      }
      failure = FromModelStatus(batch->Add(ids, requests));
      for (auto& [id, slot] : joining) running.emplace(id, std::move(slot));
    }
    model::StatusOr<std::vector<model::FinishedSequence>> finished =
        std::vector<model::FinishedSequence>{};
    if (failure.ok()) {
      finished = batch->Step();
      if (!finished.ok()) failure = FromModelStatus(finished.status());
    }
    metrics_->step_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start));

    // 3. Under the lock: deliver what finished and settle its requests.
    {
      absl::MutexLock lock(&mu_);
      ++steps_total_;
      sequence_steps_total_ += static_cast<int64_t>(running.size());
      if (!failure.ok()) {
        // The batch's state is unknown after a failed step: end every
        // request in it and start over with an empty batch.
        for (auto& [id, slot] : running) FailLocked(slot.request, failure, &deferred);
        running.clear();
        batch.reset();
      } else {
        std::map<Request*, std::vector<SampleOutput>> delivered;
        std::vector<std::shared_ptr<Request>> touched;
        for (model::FinishedSequence& f : *finished) {
          auto it = running.find(f.id);
          if (it == running.end()) continue;
          Slot slot = std::move(it->second);
          running.erase(it);
          tokens_in_flight -= slot.tokens;
          const std::shared_ptr<Request>& request = slot.request;
          --request->outstanding;
          touched.push_back(request);
          if (request->done || request->cancelled) continue;
          const GenerateInput& in = request->input;
          SampleOutput out;
          out.prompt_index = static_cast<int>(slot.sequence / in.samples_per_prompt);
          out.prompt_id = in.prompts[out.prompt_index].prompt_id;
          out.sample_index = static_cast<int>(slot.sequence % in.samples_per_prompt);
          out.token_ids = std::move(f.result.token_ids);
          out.logprobs = std::move(f.result.logprobs);
          out.finish_reason = f.result.finish_reason == model::FinishReason::kStop
                                  ? FinishReason::kStop
                                  : FinishReason::kLength;
          out.policy_version = batch_version;
          metrics_->tokens->Increment(static_cast<double>(out.token_ids.size()));
          delivered[request.get()].push_back(std::move(out));
        }
        // Responses first, then completions, in one pass per request.
        for (const std::shared_ptr<Request>& request : touched) {
          auto it = delivered.find(request.get());
          if (it != delivered.end()) {
            auto outputs = std::make_shared<std::vector<SampleOutput>>(std::move(it->second));
            delivered.erase(it);
            metrics_->responses->Increment(static_cast<double>(outputs->size()));
            deferred.push_back([request, outputs] { request->on_responses(std::move(*outputs)); });
          }
          SettleLocked(request, &deferred);
        }
      }
      if (running.empty()) {
        batch.reset();
        model.reset();  // an old copy of the weights dies with its last sequence
        tokens_in_flight = 0;
      }
      running_sequences_ = static_cast<int>(running.size());
      metrics_->running->Set(static_cast<double>(running_sequences_));
    }
    for (auto& call : deferred) call();
  }
}

absl::Status RolloutCore::ApplyWeights(int64_t version,
                                       const std::vector<model::TensorView>& tensors) {
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat("weights version ", version, " is negative"));
  }
  absl::MutexLock apply_lock(&apply_mu_);
  const absl::Time start = absl::Now();
  std::shared_ptr<const model::Model> current;
  {
    absl::MutexLock lock(&mu_);
    current = model_;
  }
  // Built apart from the serving copy: batches keep running meanwhile.
  model::StatusOr<std::unique_ptr<model::Model>> next = current->WithWeights(tensors);
  if (!next.ok()) {
    absl::Status error = FromModelStatus(next.status());
    return absl::Status(error.code(),
                        absl::StrCat("weights version ", version, " rejected (still serving the "
                                     "previous version): ",
                                     error.message()));
  }
  current.reset();
  Swap(version, std::move(*next));
  metrics_->weight_update_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status RolloutCore::ApplyModel(int64_t version, std::unique_ptr<model::Model> next) {
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat("weights version ", version, " is negative"));
  }
  if (next == nullptr) return absl::InvalidArgumentError("ApplyModel: null model");
  absl::MutexLock apply_lock(&apply_mu_);
  const std::vector<model::ParameterInfo> given = next->Parameters();
  const std::vector<model::ParameterInfo> served = model()->Parameters();
  bool same = given.size() == served.size();
  for (size_t i = 0; same && i < given.size(); ++i) {
    same = given[i].name == served[i].name && given[i].shape == served[i].shape;
  }
  if (!same) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights version ", version,
        " rejected (still serving the previous version): its parameters differ from the served "
        "model's"));
  }
  Swap(version, std::move(next));
  return absl::OkStatus();
}

void RolloutCore::Swap(int64_t version, std::unique_ptr<model::Model> next) {
  {
    absl::MutexLock lock(&mu_);
    model_ = std::shared_ptr<const model::Model>(std::move(next));
    version_ = version;
  }
  metrics_->version->Set(static_cast<double>(version));
  metrics_->weight_updates->Increment();
}

std::shared_ptr<const model::Model> RolloutCore::model() const {
  absl::MutexLock lock(&mu_);
  return model_;
}

absl::Status RolloutCore::ApplyWeightsFromDir(int64_t version, const std::string& dir) {
  model::StatusOr<model::SafetensorsCheckpoint> checkpoint =
      model::SafetensorsCheckpoint::OpenDir(dir);
  if (!checkpoint.ok()) return FromModelStatus(checkpoint.status());
  std::vector<model::TensorView> views;
  for (const std::string& name : checkpoint->Names()) {
    // Buffers some exporters store; they are recomputed, not weights.
    if (absl::EndsWith(name, "rotary_emb.inv_freq")) continue;
    views.push_back(*checkpoint->Find(name));
  }
  return ApplyWeights(version, views);
}

std::vector<model::ParameterInfo> RolloutCore::Parameters() const {
  absl::MutexLock lock(&mu_);
  return model_->Parameters();
}

int64_t RolloutCore::policy_version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

RolloutState RolloutCore::State() const {
  absl::MutexLock lock(&mu_);
  return RolloutState{.policy_version = version_,
                      .queued_requests = static_cast<int>(queue_.size()),
                      .running_sequences = running_sequences_,
                      .peak_running_sequences = peak_running_sequences_,
                      .max_batch_tokens = options_.max_batch_tokens,
                      .steps_total = steps_total_,
                      .sequences_total = sequences_total_,
                      .sequence_steps_total = sequence_steps_total_};
}

}  // namespace cascade::rollout
