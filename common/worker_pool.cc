#include "common/worker_pool.h"

#include <pthread.h>

#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace cascade {

struct WorkerPool::State {
  struct Task {
    std::function<void()> run;
    absl::Duration run_limit;
  };
  // What one worker is doing; lives as long as the worker.
  struct Worker {
    bool busy = false;
    bool lost = false;  // counted as replaced; retires after its task
    absl::Time deadline = absl::InfiniteFuture();
  };

  explicit State(WorkerPoolOptions opts) : options(std::move(opts)) {}

  const WorkerPoolOptions options;
  mutable absl::Mutex mu;
  std::deque<Task> queue ABSL_GUARDED_BY(mu);
  std::vector<std::shared_ptr<Worker>> workers ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  int live_threads ABSL_GUARDED_BY(mu) = 0;
  int lost_running ABSL_GUARDED_BY(mu) = 0;
  int64_t replaced_total ABSL_GUARDED_BY(mu) = 0;
  int next_worker_id ABSL_GUARDED_BY(mu) = 0;
};

namespace {

using State = WorkerPool::State;

void SetThreadName(const std::string& name) {
  // Linux limits thread names to 15 bytes.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

void WorkerLoop(std::shared_ptr<State> state, std::shared_ptr<State::Worker> self,
                std::string thread_name) {
  SetThreadName(thread_name);
  while (true) {
    State::Task task;
    {
      absl::MutexLock lock(&state->mu);
      if (self->lost) {
        // Our task overran and a replacement took our place: retire.
        --state->lost_running;
        break;
      }
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(state->mu) {
        return state->stopping || !state->queue.empty();
      };
      state->mu.Await(absl::Condition(&ready));
      if (state->stopping) break;
      task = std::move(state->queue.front());
      state->queue.pop_front();
      self->busy = true;
      self->deadline = absl::Now() + task.run_limit;
    }
    task.run();
    task.run = nullptr;  // release captured state outside the lock
    absl::MutexLock lock(&state->mu);
    self->busy = false;
    self->deadline = absl::InfiniteFuture();
  }
  absl::MutexLock lock(&state->mu);
  for (auto it = state->workers.begin(); it != state->workers.end(); ++it) {
    if (*it == self) {
      state->workers.erase(it);
      break;
    }
  }
  --state->live_threads;
}

void StartWorker(const std::shared_ptr<State>& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
  auto worker = std::make_shared<State::Worker>();
  state->workers.push_back(worker);
  ++state->live_threads;
  std::string name = absl::StrCat(state->options.name, "-", state->next_worker_id++);
  std::thread(WorkerLoop, state, std::move(worker), std::move(name)).detach();
}

// Every 100 ms: replace workers whose task ran past deadline + grace.
void WatchdogLoop(std::shared_ptr<State> state) {
  SetThreadName(state->options.name + "-wd");
  absl::MutexLock lock(&state->mu);
  while (!state->stopping) {
    state->mu.AwaitWithTimeout(absl::Condition(&state->stopping), absl::Milliseconds(100));
    if (state->stopping) break;
    absl::Time now = absl::Now();
    std::vector<std::shared_ptr<State::Worker>> overdue;
    for (const auto& worker : state->workers) {
      if (worker->busy && !worker->lost &&
          now > worker->deadline + state->options.overdue_grace) {
        overdue.push_back(worker);
      }
    }
    for (const auto& worker : overdue) {
      if (state->lost_running >= state->options.max_replacements) {
        CASCADE_LOG(WARNING) << "pool " << state->options.name
                             << ": a task overran its deadline and the replacement limit ("
                             << state->options.max_replacements << ") is reached";
        break;
      }
      worker->lost = true;
      ++state->lost_running;
      ++state->replaced_total;
      CASCADE_LOG(WARNING) << "pool " << state->options.name
                           << ": replacing a worker stuck past its task deadline";
      StartWorker(state);
    }
  }
  --state->live_threads;
}

}  // namespace

WorkerPool::WorkerPool(WorkerPoolOptions options) {
  if (options.threads <= 0) {
    options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (options.queue_capacity < 1) options.queue_capacity = 1;
  state_ = std::make_shared<State>(std::move(options));
  absl::MutexLock lock(&state_->mu);
  for (int i = 0; i < state_->options.threads; ++i) StartWorker(state_);
  ++state_->live_threads;
  std::thread(WatchdogLoop, state_).detach();
}

WorkerPool::~WorkerPool() {
  absl::MutexLock lock(&state_->mu);
  state_->stopping = true;
  state_->queue.clear();
  auto all_but_lost_done = [this]() ABSL_SHARED_LOCKS_REQUIRED(state_->mu) {
    return state_->live_threads <= state_->lost_running;
  };
  if (!state_->mu.AwaitWithTimeout(absl::Condition(&all_but_lost_done), absl::Seconds(5))) {
    CASCADE_LOG(WARNING) << "pool " << state_->options.name
                         << ": workers still running at shutdown were left behind";
  }
}

absl::Status WorkerPool::TrySchedule(std::function<void()> task, absl::Duration run_limit) {
  absl::MutexLock lock(&state_->mu);
  if (state_->stopping) {
    return absl::UnavailableError(absl::StrCat("pool ", state_->options.name, " is stopping"));
  }
  if (static_cast<int>(state_->queue.size()) >= state_->options.queue_capacity) {
    return absl::ResourceExhaustedError(
        absl::StrCat("pool ", state_->options.name, ": queue full (",
                     state_->options.queue_capacity, " tasks waiting); retry later"));
  }
  state_->queue.push_back({std::move(task), run_limit});
  return absl::OkStatus();
}

const std::string& WorkerPool::name() const { return state_->options.name; }
int WorkerPool::threads() const { return state_->options.threads; }
int WorkerPool::queue_capacity() const { return state_->options.queue_capacity; }

int WorkerPool::queued() const {
  absl::MutexLock lock(&state_->mu);
  return static_cast<int>(state_->queue.size());
}

int WorkerPool::busy() const {
  absl::MutexLock lock(&state_->mu);
  int count = 0;
  for (const auto& worker : state_->workers) count += worker->busy ? 1 : 0;
  return count;
}

int64_t WorkerPool::replaced_total() const {
  absl::MutexLock lock(&state_->mu);
  return state_->replaced_total;
}

}  // namespace cascade
