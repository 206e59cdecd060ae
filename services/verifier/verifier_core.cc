#include "services/verifier/verifier_core.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/metrics.h"

namespace cascade::verifier {
namespace {

// How long past an item's deadline the caller still waits for the backend
// to notice its expired CancelToken and report by itself.
constexpr absl::Duration kTimeoutSlack = absl::Milliseconds(50);

// The shared state of one item between the waiting caller and the worker.
// Held by shared_ptr: a worker that overruns may outlive the request.
struct ItemState {
  absl::Mutex mu;
  bool started ABSL_GUARDED_BY(mu) = false;
  absl::Time started_at ABSL_GUARDED_BY(mu);
  bool done ABSL_GUARDED_BY(mu) = false;
  // The caller gave up before the item started; the worker skips it.
  bool abandoned ABSL_GUARDED_BY(mu) = false;
  VerifyOutput output ABSL_GUARDED_BY(mu);
  // Valid while the check runs; the caller cancels it on timeout.
  CancelToken* token ABSL_GUARDED_BY(mu) = nullptr;
};

VerifyOutput TimeoutOutput(absl::Duration limit, double seconds) {
  VerifyOutput output;
  output.verdict = std::string(kVerdictTimeout);
  output.details = {{"error", absl::StrCat("check exceeded the item time limit of ",
                                           absl::FormatDuration(limit))}};
  output.seconds = seconds;
  return output;
}

VerifyOutput ErrorOutput(absl::string_view verdict, absl::string_view message) {
  VerifyOutput output;
  output.verdict = std::string(verdict);
  output.details = {{"error", std::string(message)}};
  return output;
}

// Runs the backend on one item and turns every failure into a verdict.
VerifyOutput RunCheck(const Backend& backend, const VerifyInput& input,
                      const CancelToken& token) {
  if (!input.decode_error.empty()) return ErrorOutput(kVerdictInvalidInput, input.decode_error);
  if (!input.item.is_object()) {
    return ErrorOutput(kVerdictInvalidInput,
                       input.path.Error(absl::StrCat("expected a JSON object, got ",
                                                     JsonTypeName(input.item)))
                           .message());
  }
  try {
    absl::StatusOr<CheckResult> result = backend.Check(input.item, input.path, token);
    if (result.ok()) {
      return {result->reward, std::move(result->verdict), std::move(result->details), 0.0};
    }
    switch (result.status().code()) {
      case absl::StatusCode::kDeadlineExceeded:
        return ErrorOutput(kVerdictTimeout, result.status().message());
      case absl::StatusCode::kInvalidArgument:
      case absl::StatusCode::kFailedPrecondition:
        return ErrorOutput(kVerdictInvalidInput, result.status().message());
      default:
        return ErrorOutput(kVerdictInternalError, result.status().ToString());
    }
  } catch (const std::bad_alloc&) {
    return ErrorOutput(kVerdictInternalError, "out of memory while checking the item");
  } catch (const std::exception& e) {
    return ErrorOutput(kVerdictInternalError, absl::StrCat("backend threw: ", e.what()));
  }
}

}  // namespace

struct VerifierCore::BackendSlot {
  BackendSlot(std::shared_ptr<Backend> backend_in, WorkerPoolOptions pool_options)
      : backend(std::move(backend_in)), pool(std::move(pool_options)) {
    auto& registry = *MetricsRegistry();
    const prometheus::Labels labels = {{"backend", std::string(backend->name())}};
    requests = &prometheus::BuildCounter()
                    .Name("cascade_verifier_requests_total")
                    .Help("Verify batches received, by backend")
                    .Register(registry)
                    .Add(labels);
    items = &prometheus::BuildCounter()
                 .Name("cascade_verifier_items_total")
                 .Help("Items checked, by backend")
                 .Register(registry)
                 .Add(labels);
    verdicts = &prometheus::BuildCounter()
                    .Name("cascade_verifier_verdicts_total")
                    .Help("Item verdicts, by backend and verdict")
                    .Register(registry);
    timeouts = &prometheus::BuildCounter()
                    .Name("cascade_verifier_timeouts_total")
                    .Help("Items that exceeded their time limit, by backend")
                    .Register(registry)
                    .Add(labels);
    rejected = &prometheus::BuildCounter()
                    .Name("cascade_verifier_rejected_batches_total")
                    .Help("Batches refused because the backend queue was full")
                    .Register(registry)
                    .Add(labels);
    check_seconds = &prometheus::BuildHistogram()
                         .Name("cascade_verifier_check_seconds")
                         .Help("Time to check one item, by backend")
                         .Register(registry)
                         .Add(labels, LatencyBuckets());
    in_flight = &prometheus::BuildGauge()
                     .Name("cascade_verifier_in_flight_items")
                     .Help("Items queued or running, by backend")
                     .Register(registry)
                     .Add(labels);
  }

  std::shared_ptr<Backend> backend;
  WorkerPool pool;
  prometheus::Counter* requests;
  prometheus::Counter* items;
  prometheus::Family<prometheus::Counter>* verdicts;
  prometheus::Counter* timeouts;
  prometheus::Counter* rejected;
  prometheus::Histogram* check_seconds;
  prometheus::Gauge* in_flight;
};

VerifierCore::VerifierCore(std::vector<std::unique_ptr<Backend>> backends,
                           VerifierOptions options)
    : options_(std::move(options)) {
  for (auto& backend : backends) {
    std::string name(backend->name());
    WorkerPoolOptions pool_options;
    pool_options.name = absl::StrCat("verify-", name);
    pool_options.threads = options_.workers_per_backend;
    pool_options.queue_capacity = options_.queue_capacity;
    backends_[name] = std::make_unique<BackendSlot>(std::move(backend), pool_options);
  }
}

VerifierCore::~VerifierCore() = default;

bool VerifierCore::HasBackend(absl::string_view name) const {
  return backends_.find(name) != backends_.end();
}

std::vector<BackendStats> VerifierCore::ListBackends() const {
  std::vector<BackendStats> stats;
  for (const auto& [name, slot] : backends_) {
    stats.push_back({name, slot->pool.threads(), slot->pool.queue_capacity(),
                     DefaultItemTimeout(name)});
  }
  return stats;
}

absl::Duration VerifierCore::DefaultItemTimeout(absl::string_view backend) const {
  auto it = options_.backend_item_timeouts.find(backend);
  return it != options_.backend_item_timeouts.end() ? it->second : options_.default_item_timeout;
}

absl::StatusOr<VerifierCore::BackendSlot*> VerifierCore::Find(absl::string_view name) {
  auto it = backends_.find(name);
  if (it != backends_.end()) return it->second.get();
  std::vector<std::string> known;
  for (const auto& [known_name, slot] : backends_) known.push_back(known_name);
  return absl::InvalidArgumentError(absl::StrCat("unknown backend \"", name,
                                                 "\" (expected one of: ",
                                                 absl::StrJoin(known, ", "), ")"));
}

absl::StatusOr<std::vector<VerifyOutput>> VerifierCore::VerifyBatch(
    absl::string_view backend_name, std::vector<VerifyInput> items, absl::Duration item_timeout,
    absl::Time batch_deadline) {
  auto found = Find(backend_name);
  if (!found.ok()) return found.status();
  BackendSlot* slot = *found;
  slot->requests->Increment();
  if (item_timeout <= absl::ZeroDuration()) item_timeout = DefaultItemTimeout(backend_name);
  item_timeout = std::min(item_timeout, options_.max_item_timeout);

  // 1. Refuse the whole batch up front when it cannot be queued, rather than
  //    half-queue it: the caller retries later (backpressure).
  if (static_cast<int>(items.size()) + slot->pool.queued() > slot->pool.queue_capacity()) {
    slot->rejected->Increment();
    return absl::ResourceExhaustedError(absl::StrCat(
        "verifier backend ", backend_name, " is busy: ", slot->pool.queued(),
        " items queued, capacity ", slot->pool.queue_capacity(), "; retry later"));
  }

  // 2. Schedule every item. Each task owns its input and shares its state.
  std::vector<std::shared_ptr<ItemState>> states;
  states.reserve(items.size());
  std::shared_ptr<Backend> backend = slot->backend;
  for (size_t i = 0; i < items.size(); ++i) {
    auto state = std::make_shared<ItemState>();
    states.push_back(state);
    auto input = std::make_shared<VerifyInput>(std::move(items[i]));
    slot->in_flight->Increment();
    absl::Status scheduled = slot->pool.TrySchedule(
        [backend, input, state, item_timeout, gauge = slot->in_flight] {
          absl::Time start = absl::Now();
          CancelToken token(start + item_timeout);
          {
            absl::MutexLock lock(&state->mu);
            if (state->abandoned) {
              gauge->Decrement();
              return;
            }
            state->started = true;
            state->started_at = start;
            state->token = &token;
          }
          VerifyOutput output = RunCheck(*backend, *input, token);
          output.seconds = absl::ToDoubleSeconds(absl::Now() - start);
          gauge->Decrement();
          absl::MutexLock lock(&state->mu);
          state->token = nullptr;
          state->output = std::move(output);
          state->done = true;
        },
        item_timeout);
    if (!scheduled.ok()) {
      // A concurrent batch filled the queue between the check and here.
      slot->in_flight->Decrement();
      absl::MutexLock lock(&state->mu);
      state->output = ErrorOutput(kVerdictInternalError, scheduled.message());
      state->done = true;
    }
  }

  // 3. Collect in order. Each wait is bounded by the item's own deadline
  //    once it starts, and by the batch deadline before that.
  std::vector<VerifyOutput> outputs;
  outputs.reserve(states.size());
  for (auto& state : states) {
    absl::MutexLock lock(&state->mu);
    auto started_or_done = [&]() ABSL_SHARED_LOCKS_REQUIRED(state->mu) {
      return state->started || state->done;
    };
    if (!state->mu.AwaitWithDeadline(absl::Condition(&started_or_done), batch_deadline)) {
      outputs.push_back(TimeoutOutput(item_timeout, 0.0));
      outputs.back().details["error"] = "the request deadline passed before the item started";
      state->abandoned = true;
      slot->timeouts->Increment();
      continue;
    }
    absl::Time item_deadline =
        std::min(state->started_at + item_timeout + kTimeoutSlack, batch_deadline);
    if (!state->mu.AwaitWithDeadline(absl::Condition(&state->done), item_deadline)) {
      if (state->token != nullptr) state->token->Cancel();
      outputs.push_back(
          TimeoutOutput(item_timeout, absl::ToDoubleSeconds(absl::Now() - state->started_at)));
      CASCADE_LOG(WARNING) << "backend " << backend_name
                           << " did not stop at the item deadline; abandoning the item";
    } else {
      outputs.push_back(std::move(state->output));
    }
    if (outputs.back().verdict == kVerdictTimeout) slot->timeouts->Increment();
  }

  for (const VerifyOutput& output : outputs) {
    slot->items->Increment();
    slot->verdicts->Add({{"backend", std::string(backend_name)}, {"verdict", output.verdict}})
        .Increment();
    slot->check_seconds->Observe(output.seconds);
  }
  return outputs;
}

}  // namespace cascade::verifier
