// Runs one job of the store to its end: starts the embedded services the
// cascade asks for, connects to the others, registers the rollout replicas
// with the learner, walks the stages (CascadeRunner), records the final
// state and writes `output_dir/report.html`.
//
// Used by `orchestrator run` / `resume` (in the CLI's process) and by the
// server (one per running job).
//
// Thread-safety: Run() once; Cancel() and progress() from any thread.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_JOB_EXECUTION_H_
#define CASCADE_SERVICES_ORCHESTRATOR_JOB_EXECUTION_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/orchestrator/cascade_runner.h"
#include "services/orchestrator/job_store.h"

namespace cascade::orchestrator {

class JobExecution {
 public:
  JobExecution(JobStore* store, std::string job_id);
  ~JobExecution();

  // Runs or resumes the job; the job's row ends succeeded, failed (with the
  // error) or cancelled. Returns the run's status.
  [[nodiscard]] absl::Status Run(std::function<void(const Progress&)> on_progress = {});
  void Cancel();
  Progress progress() const;

 private:
  JobStore* const store_;
  const std::string job_id_;
  std::atomic<bool> cancelled_{false};
  mutable absl::Mutex mu_;
  CascadeRunner* runner_ ABSL_GUARDED_BY(mu_) = nullptr;
  Progress last_progress_ ABSL_GUARDED_BY(mu_);
};

// Writes the job's HTML report to `path`.
absl::Status WriteReport(JobStore& store, const std::string& job_id, const std::string& path);

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_JOB_EXECUTION_H_
