// Replicas of one service behind a single call with failover.
//
// A call goes to its preferred replica first; when that replica is
// unreachable (UNAVAILABLE: refused, reset, killed mid-call) or hangs past
// the call's deadline (DEADLINE_EXCEEDED), it is marked down for a backoff
// period and the call moves on to the next replica. When every replica is
// down the call waits with exponential backoff (0.1 s doubling to 5 s) and
// tries again, until the service has been unreachable for
// `unavailable_timeout`: then UNAVAILABLE names the service and the last
// error, so a job fails clearly instead of hanging. Other errors (bad input,
// stale version) are returned at once: another replica would answer the same.
//
// Thread-safe: calls may run concurrently (shards of one batch).
#ifndef CASCADE_SERVICES_ORCHESTRATOR_REPLICA_POOL_H_
#define CASCADE_SERVICES_ORCHESTRATOR_REPLICA_POOL_H_

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"

namespace cascade::orchestrator {

// True for errors another replica may not have.
inline bool IsReplicaFailure(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

template <typename Client>
class ReplicaPool {
 public:
  struct Replica {
    std::string address;
    std::shared_ptr<Client> client;
  };

  ReplicaPool(std::string service, std::vector<Replica> replicas, absl::Duration unavailable_timeout)
      : service_(std::move(service)),
        replicas_(std::move(replicas)),
        unavailable_timeout_(unavailable_timeout),
        down_until_(replicas_.size(), absl::InfinitePast()) {}

  size_t size() const { return replicas_.size(); }
  bool empty() const { return replicas_.empty(); }
  const std::string& service() const { return service_; }
  const Replica& replica(size_t i) const { return replicas_[i]; }

  // Runs `fn(client)` on a replica, `preferred` (mod size) first, with the
  // failover described above. `fn` returns absl::Status or absl::StatusOr.
  template <typename Fn>
  auto Call(size_t preferred, Fn&& fn) -> decltype(fn(std::declval<Client&>())) {
    using Result = decltype(fn(std::declval<Client&>()));
    if (replicas_.empty()) {
      return Result(absl::FailedPreconditionError(StrCatName("no replicas configured")));
    }
    const absl::Time start = absl::Now();
    absl::Duration backoff = absl::Milliseconds(100);
    absl::Status last = absl::UnavailableError("not tried");
    while (true) {
      bool tried_any = false;
      for (size_t k = 0; k < replicas_.size(); ++k) {
        const size_t i = (preferred + k) % replicas_.size();
        if (!Usable(i)) continue;
        tried_any = true;
        Result result = fn(*replicas_[i].client);
        const absl::Status& status = StatusOf(result);
        if (!IsReplicaFailure(status)) {
          MarkUp(i);
          return result;
        }
        last = status;
        MarkDown(i);
        CASCADE_LOG(WARNING) << service_ << " replica " << replicas_[i].address
                             << " failed, trying another: " << status.message();
      }
      if (absl::Now() - start > unavailable_timeout_) {
        return Result(absl::UnavailableError(StrCatName(
            absl::StrCat("no replica answered for ", absl::FormatDuration(absl::Now() - start),
                         " (services.unavailable_timeout_s); last error: ", last.message()))));
      }
      if (!tried_any) {
        absl::SleepFor(backoff);
        backoff = std::min(backoff * 2, absl::Seconds(5));
        // Give every replica another chance after sleeping.
        absl::MutexLock lock(&mu_);
        std::fill(down_until_.begin(), down_until_.end(), absl::InfinitePast());
      }
    }
  }

 private:
  static const absl::Status& StatusOf(const absl::Status& status) { return status; }
  template <typename T>
  static const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
    return result.status();
  }
  std::string StrCatName(const std::string& message) const {
    return absl::StrCat(service_, ": ", message);
  }
  bool Usable(size_t i) {
    absl::MutexLock lock(&mu_);
    return absl::Now() >= down_until_[i];
  }
  void MarkDown(size_t i) {
    absl::MutexLock lock(&mu_);
    down_until_[i] = absl::Now() + absl::Seconds(5);
  }
  void MarkUp(size_t i) {
    absl::MutexLock lock(&mu_);
    down_until_[i] = absl::InfinitePast();
  }

  const std::string service_;
  const std::vector<Replica> replicas_;
  const absl::Duration unavailable_timeout_;
  absl::Mutex mu_;
  // A replica that failed is skipped until then.
  std::vector<absl::Time> down_until_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_REPLICA_POOL_H_
