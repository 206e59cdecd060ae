// `orchestrator serve`: the Orchestrator gRPC service over a job store.
// Jobs run one at a time, in submission order, on the "orchestrator-jobs"
// pool (a cluster's GPUs serve one cascade at a time); Cancel stops a running
// job at its next step boundary, Resume re-queues a stopped or failed job
// from its last checkpoint. Jobs found running in the store at start-up
// (the server was killed) are re-queued, so a restarted server resumes them.
//
// Thread-safety: thread-safe.
#ifndef CASCADE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
#define CASCADE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cascade/v1/orchestrator.grpc.pb.h"
#include "common/worker_pool.h"
#include "services/orchestrator/job_execution.h"
#include "services/orchestrator/job_store.h"

namespace cascade::orchestrator {

// Fills a status message from the store's rows and, for a running job, its
// live progress.
absl::StatusOr<cascade::v1::JobStatus> JobStatusFromStore(JobStore& store, const std::string& job_id,
                                                          const Progress* live);

class OrchestratorServiceImpl : public cascade::v1::Orchestrator::CallbackService {
 public:
  explicit OrchestratorServiceImpl(JobStore* store);
  ~OrchestratorServiceImpl() override;

  // Re-queues jobs left running or queued by a previous server process.
  absl::Status RecoverJobs();

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const cascade::v1::SubmitRequest* request,
                                   cascade::v1::SubmitResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const cascade::v1::GetStatusRequest* request,
                                      cascade::v1::JobStatus* response) override;
  grpc::ServerWriteReactor<cascade::v1::JobStatus>* Watch(
      grpc::CallbackServerContext* context, const cascade::v1::GetStatusRequest* request) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context,
                                   const cascade::v1::CancelRequest* request,
                                   cascade::v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* Resume(grpc::CallbackServerContext* context,
                                   const cascade::v1::ResumeRequest* request,
                                   cascade::v1::JobStatus* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const cascade::v1::ListJobsRequest* request,
                                     cascade::v1::ListJobsResponse* response) override;

  absl::StatusOr<cascade::v1::JobStatus> Status(const std::string& job_id);

 private:
  class WatchReactor;
  absl::Status Enqueue(const std::string& job_id);

  JobStore* const store_;
  absl::Mutex mu_;
  // Executions queued or running, by job id.
  std::map<std::string, std::shared_ptr<JobExecution>> executions_ ABSL_GUARDED_BY(mu_);
  // Last: its worker uses the members above.
  std::unique_ptr<WorkerPool> jobs_;
  // Watch streams poll on their own pool, never on gRPC's threads.
  std::unique_ptr<WorkerPool> watchers_;
};

}  // namespace cascade::orchestrator

#endif  // CASCADE_SERVICES_ORCHESTRATOR_ORCHESTRATOR_SERVICE_H_
