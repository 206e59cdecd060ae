// The verifier's logic, apart from gRPC: routes a batch of items to one
// backend's worker pool and returns a result per item, in order, within a
// hard per-item time limit.
//
// Time limits without signals: each item runs on a pool worker with a
// CancelToken expiring at start + item_timeout; backends poll it. The caller
// stops waiting at the same deadline (plus a little slack) whether or not
// the backend polls, marks the item "timeout" and moves on; the pool replaces
// a worker that stays stuck (common/worker_pool.h). So one pathological item
// can neither stall its batch nor, over time, the server.
//
// Thread-safe: VerifyBatch may be called concurrently.
#ifndef CASCADE_SERVICES_VERIFIER_VERIFIER_CORE_H_
#define CASCADE_SERVICES_VERIFIER_VERIFIER_CORE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/json_util.h"
#include "common/worker_pool.h"
#include "services/verifier/backends/backend.h"

namespace cascade::verifier {

struct VerifierOptions {
  // Worker threads per backend; 0 = one per hardware thread.
  int workers_per_backend = 0;
  // Items that may wait per backend before VerifyBatch refuses the batch
  // with RESOURCE_EXHAUSTED.
  int queue_capacity = 4096;
  // Per-item time limit when the request gives none.
  absl::Duration default_item_timeout = absl::Seconds(10);
  // Backends whose items legitimately take longer get their own default:
  // a code item compiles once and runs every test (each up to its own
  // time limit, enforced by the sandbox).
  std::map<std::string, absl::Duration, std::less<>> backend_item_timeouts = {
      {"code", absl::Minutes(2)}};
  // Upper bound a request may ask for.
  absl::Duration max_item_timeout = absl::Minutes(5);
};

// One item to check: the eval-line JSON object (with "response") and the
// name used for it in messages ("in.jsonl: line 7", "items[3]").
struct VerifyInput {
  Json item;
  JsonPath path;
  // Set when the item could not even be decoded (e.g. its spec was not
  // JSON): it becomes an "invalid_input" result without reaching a backend.
  std::string decode_error;
};

struct VerifyOutput {
  double reward = 0.0;
  std::string verdict;
  Json details = Json::object();
  // Wall time from start of the check to its result (or to the timeout).
  double seconds = 0.0;
};

struct BackendStats {
  std::string name;
  int workers = 0;
  int queue_capacity = 0;
  absl::Duration default_item_timeout;
};

class VerifierCore {
 public:
  VerifierCore(std::vector<std::unique_ptr<Backend>> backends, VerifierOptions options);
  ~VerifierCore();
  VerifierCore(const VerifierCore&) = delete;
  VerifierCore& operator=(const VerifierCore&) = delete;

  // Checks `items` with `backend`. Fails as a whole only for an unknown
  // backend (INVALID_ARGUMENT, listing the known ones) or a full queue
  // (RESOURCE_EXHAUSTED); every per-item problem is that item's verdict.
  // `item_timeout` of zero uses the default. Items not started by
  // `batch_deadline` get "timeout".
  absl::StatusOr<std::vector<VerifyOutput>> VerifyBatch(
      absl::string_view backend, std::vector<VerifyInput> items,
      absl::Duration item_timeout = absl::ZeroDuration(),
      absl::Time batch_deadline = absl::InfiniteFuture());

  std::vector<BackendStats> ListBackends() const;
  // The per-item limit used for `backend` when a request gives none.
  absl::Duration DefaultItemTimeout(absl::string_view backend) const;
  bool HasBackend(absl::string_view name) const;

 private:
  struct BackendSlot;
  absl::StatusOr<BackendSlot*> Find(absl::string_view name);

  const VerifierOptions options_;
  std::map<std::string, std::unique_ptr<BackendSlot>, std::less<>> backends_;
};

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_VERIFIER_CORE_H_
