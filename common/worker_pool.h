// A named pool of worker threads with a bounded queue and per-task deadlines.
//
// Backpressure: TrySchedule() fails with RESOURCE_EXHAUSTED when the queue
// is full instead of growing without bound.
//
// Stuck tasks: C++ threads cannot be killed, so a task that runs far past its
// deadline (a check that never polls its CancelToken) would otherwise keep a
// worker forever. A watchdog counts such workers as lost and starts a
// replacement, up to `max_replacements` at a time, so the pool keeps its
// capacity; the lost worker retires when its task finally returns. Tasks
// must therefore not touch state that may die before they return, other than
// through shared ownership.
//
// Thread-safe.
#ifndef CASCADE_COMMON_WORKER_POOL_H_
#define CASCADE_COMMON_WORKER_POOL_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cascade {

struct WorkerPoolOptions {
  // Shown in thread names and errors ("verifier-math").
  std::string name = "pool";
  // Worker threads; 0 means one per hardware thread.
  int threads = 0;
  // Tasks that may wait for a worker; TrySchedule fails beyond it.
  int queue_capacity = 1024;
  // How long past its deadline a task may run before its worker is replaced.
  absl::Duration overdue_grace = absl::Seconds(1);
  // Replacement workers alive at once at most (bounds leaked threads).
  int max_replacements = 8;
};

class WorkerPool {
 public:
  explicit WorkerPool(WorkerPoolOptions options);
  // Stops accepting work, drops queued tasks, waits up to 5 s for running
  // ones; workers still stuck then are left to finish on their own.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; RESOURCE_EXHAUSTED when the queue is full. `run_limit` is
  // how long the task may run once started before its worker counts as
  // stuck (plus overdue_grace); the task itself should stop by then.
  absl::Status TrySchedule(std::function<void()> task,
                           absl::Duration run_limit = absl::InfiniteDuration());

  const std::string& name() const;
  int threads() const;
  int queue_capacity() const;
  // Gauges for metrics.
  int queued() const;
  int busy() const;
  // Workers replaced because their task overran its deadline, since start.
  int64_t replaced_total() const;

  // Shared by the pool and its threads, so a worker left behind at shutdown
  // never touches freed memory. Opaque outside worker_pool.cc.
  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace cascade

#endif  // CASCADE_COMMON_WORKER_POOL_H_
