// Cooperative cancellation for CPU-bound checks.
//
// Threads cannot be interrupted safely and SIGALRM breaks threaded servers, so
// long-running pure functions (math equivalence, similarity) poll a
// CancelToken at loop heads and bail out with DEADLINE_EXCEEDED. The worker
// pool additionally stops waiting at the deadline, so a check that never
// polls still cannot stall its batch.
//
// Thread-safe: Cancel() and Expired() may race freely.
#ifndef CASCADE_COMMON_DEADLINE_H_
#define CASCADE_COMMON_DEADLINE_H_

#include <atomic>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cascade {

class CancelToken {
 public:
  explicit CancelToken(absl::Time deadline = absl::InfiniteFuture())
      : deadline_(deadline) {}
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  absl::Time deadline() const { return deadline_; }

  // True once cancelled or past the deadline. Cheap enough for inner loops
  // (one relaxed load; the clock is read only every 64 calls).
  bool Expired() const {
    if (cancelled_.load(std::memory_order_relaxed)) return true;
    if (deadline_ == absl::InfiniteFuture()) return false;
    if ((polls_.fetch_add(1, std::memory_order_relaxed) & 63) != 0) return false;
    if (absl::Now() >= deadline_) {
      cancelled_.store(true, std::memory_order_relaxed);
      return true;
    }
    return false;
  }

  // OK while there is time left, DEADLINE_EXCEEDED otherwise.
  absl::Status Check() const {
    return Expired() ? absl::DeadlineExceededError("check ran past its time limit")
                     : absl::OkStatus();
  }

 private:
  const absl::Time deadline_;
  mutable std::atomic<bool> cancelled_{false};
  mutable std::atomic<unsigned> polls_{0};
};

}  // namespace cascade

#endif  // CASCADE_COMMON_DEADLINE_H_
