#include "services/orchestrator/orchestrator_service.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "services/orchestrator/cascade_config.h"

namespace cascade::orchestrator {
namespace fs = std::filesystem;

namespace {

cascade::v1::JobState ToProto(JobState state) {
  switch (state) {
    case JobState::kQueued: return cascade::v1::JOB_STATE_QUEUED;
    case JobState::kRunning: return cascade::v1::JOB_STATE_RUNNING;
    case JobState::kSucceeded: return cascade::v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed: return cascade::v1::JOB_STATE_FAILED;
    case JobState::kCancelled: return cascade::v1::JOB_STATE_CANCELLED;
  }
  return cascade::v1::JOB_STATE_UNSPECIFIED;
}

void StepToProto(const StepRecord& step, cascade::v1::StepRecord* out) {
  out->set_step(step.step + 1);
  out->set_mean_reward(step.reward_mean);
  out->set_filtered_fraction(step.filtered_fraction);
  out->set_loss(step.loss);
  out->set_seconds(step.total_s);
}

bool Finished(cascade::v1::JobState state) {
  return state == cascade::v1::JOB_STATE_SUCCEEDED || state == cascade::v1::JOB_STATE_FAILED ||
         state == cascade::v1::JOB_STATE_CANCELLED;
}

}  // namespace

absl::StatusOr<cascade::v1::JobStatus> JobStatusFromStore(JobStore& store, const std::string& job_id,
                                                          const Progress* live) {
  ASSIGN_OR_RETURN(JobRecord job, store.GetJob(job_id));
  cascade::v1::JobStatus status;
  status.set_job_id(job.job_id);
  status.set_state(ToProto(job.state));
  status.set_error(job.error);
  ASSIGN_OR_RETURN(auto stages, store.Stages(job_id));
  ASSIGN_OR_RETURN(auto steps, store.Steps(job_id));
  if (live != nullptr && job.state == JobState::kRunning) {
    status.set_stage_index(live->stage_index);
    status.set_stage_name(live->stage_name);
    status.set_step(live->step);
    status.set_total_steps(live->total_steps);
    status.set_eta_s(live->eta_s);
    if (live->has_last_step) StepToProto(live->last_step, status.mutable_last_step());
    return status;
  }
  if (!steps.empty()) {
    const StepRecord& last = steps.back();
    StepToProto(last, status.mutable_last_step());
    status.set_stage_index(last.stage_index);
    status.set_step(last.step + 1);
    for (const StageRecord& s : stages) {
      if (s.stage_index == last.stage_index) {
        status.set_stage_name(s.name);
        status.set_total_steps(s.total_steps);
      }
    }
  } else if (!stages.empty()) {
    status.set_stage_name(stages.front().name);
    status.set_total_steps(stages.front().total_steps);
  }
  return status;
}

OrchestratorServiceImpl::OrchestratorServiceImpl(JobStore* store)
    : store_(store),
      jobs_(std::make_unique<WorkerPool>(
          WorkerPoolOptions{.name = "orchestrator-jobs", .threads = 1, .queue_capacity = 1024})),
      watchers_(std::make_unique<WorkerPool>(
          WorkerPoolOptions{.name = "orchestrator-watch", .threads = 4, .queue_capacity = 256})) {}

OrchestratorServiceImpl::~OrchestratorServiceImpl() {
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, execution] : executions_) execution->Cancel();
  }
  jobs_.reset();
  watchers_.reset();
}

absl::Status OrchestratorServiceImpl::Enqueue(const std::string& job_id) {
  auto execution = std::make_shared<JobExecution>(store_, job_id);
  {
    absl::MutexLock lock(&mu_);
    if (executions_.count(job_id)) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is already queued or running"));
    }
    executions_[job_id] = execution;
  }
  RETURN_IF_ERROR(store_->SetJobState(job_id, JobState::kQueued));
  return jobs_->TrySchedule([this, job_id, execution] {
    absl::Status status = execution->Run();
    if (!status.ok()) CASCADE_LOG(WARNING) << "job " << job_id << ": " << status.message();
    absl::MutexLock lock(&mu_);
    executions_.erase(job_id);
  });
}

absl::Status OrchestratorServiceImpl::RecoverJobs() {
  ASSIGN_OR_RETURN(auto jobs, store_->ListJobs());
  // Oldest first, as they were submitted.
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
    if (it->state == JobState::kRunning || it->state == JobState::kQueued) {
      CASCADE_LOG(INFO) << "re-queueing " << it->job_id << " (" << JobStateName(it->state) << " when the server stopped)";
      RETURN_IF_ERROR(store_->AddEvent(it->job_id, "warning", "server restarted: job re-queued from its last checkpoint"));
      RETURN_IF_ERROR(Enqueue(it->job_id));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<cascade::v1::JobStatus> OrchestratorServiceImpl::Status(const std::string& job_id) {
  std::shared_ptr<JobExecution> execution;
  {
    absl::MutexLock lock(&mu_);
    auto it = executions_.find(job_id);
    if (it != executions_.end()) execution = it->second;
  }
  if (execution == nullptr) return JobStatusFromStore(*store_, job_id, nullptr);
  const Progress progress = execution->progress();
  return JobStatusFromStore(*store_, job_id, &progress);
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::Submit(grpc::CallbackServerContext* context,
                                                          const cascade::v1::SubmitRequest* request,
                                                          cascade::v1::SubmitResponse* response) {
  auto* reactor = context->DefaultReactor();
  const std::string source = request->source_name().empty() ? "cascade.json" : request->source_name();
  // Relative paths in a submitted file resolve against the server's working
  // directory (the client's files are not visible here).
  auto config = ParseCascadeConfig(request->cascade_json(), source, fs::current_path().string());
  if (!config.ok()) {
    reactor->Finish(ToGrpcStatus(config.status()));
    return reactor;
  }
  JobRecord job;
  job.name = config->name;
  job.config_text = request->cascade_json();
  job.source = (fs::current_path() / fs::path(source).filename()).string();
  job.output_dir = config->output_dir;
  auto id = store_->CreateJob(job);
  if (!id.ok()) {
    reactor->Finish(ToGrpcStatus(id.status()));
    return reactor;
  }
  absl::Status queued = Enqueue(*id);
  if (queued.ok()) response->set_job_id(*id);
  reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                             const cascade::v1::GetStatusRequest* request,
                                                             cascade::v1::JobStatus* response) {
  auto* reactor = context->DefaultReactor();
  auto status = Status(request->job_id());
  if (status.ok()) *response = *status;
  reactor->Finish(ToGrpcStatus(status.status()));
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::Cancel(grpc::CallbackServerContext* context,
                                                          const cascade::v1::CancelRequest* request,
                                                          cascade::v1::JobStatus* response) {
  auto* reactor = context->DefaultReactor();
  std::shared_ptr<JobExecution> execution;
  {
    absl::MutexLock lock(&mu_);
    auto it = executions_.find(request->job_id());
    if (it != executions_.end()) execution = it->second;
  }
  if (execution != nullptr) execution->Cancel();
  auto job = store_->GetJob(request->job_id());
  if (job.ok() && job->state == JobState::kQueued) {
    (void)store_->SetJobState(request->job_id(), JobState::kCancelled, "cancelled before it started");
  }
  auto status = Status(request->job_id());
  if (status.ok()) *response = *status;
  reactor->Finish(ToGrpcStatus(status.status()));
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::Resume(grpc::CallbackServerContext* context,
                                                          const cascade::v1::ResumeRequest* request,
                                                          cascade::v1::JobStatus* response) {
  auto* reactor = context->DefaultReactor();
  absl::Status queued = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, store_->GetJob(request->job_id()));
    if (job.state == JobState::kSucceeded) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job.job_id, " already succeeded"));
    }
    return Enqueue(job.job_id);
  }();
  if (queued.ok()) {
    auto status = Status(request->job_id());
    if (status.ok()) *response = *status;
    queued = status.status();
  }
  reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* OrchestratorServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                            const cascade::v1::ListJobsRequest*,
                                                            cascade::v1::ListJobsResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::Status result = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto jobs, store_->ListJobs());
    for (const JobRecord& job : jobs) {
      ASSIGN_OR_RETURN(*response->add_jobs(), Status(job.job_id));
    }
    return absl::OkStatus();
  }();
  reactor->Finish(ToGrpcStatus(result));
  return reactor;
}

// Streams the job's status whenever it changes (polled every 0.5 s on the
// watch pool) until the job finishes or the client goes away.
class OrchestratorServiceImpl::WatchReactor : public grpc::ServerWriteReactor<cascade::v1::JobStatus> {
 public:
  WatchReactor(OrchestratorServiceImpl* service, std::string job_id)
      : service_(service), job_id_(std::move(job_id)) {
    Poll();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    if (Finished(last_.state())) {
      Finish(grpc::Status::OK);
      return;
    }
    Poll();
  }
  void OnCancel() override { cancelled_.store(true); }
  void OnDone() override { delete this; }

 private:
  void Poll() {
    absl::Status scheduled = service_->watchers_->TrySchedule([this] {
      while (!cancelled_.load()) {
        auto status = service_->Status(job_id_);
        if (!status.ok()) {
          Finish(ToGrpcStatus(status.status()));
          return;
        }
        if (!sent_any_ || status->SerializeAsString() != last_.SerializeAsString()) {
          sent_any_ = true;
          last_ = *status;
          StartWrite(&last_);
          return;
        }
        absl::SleepFor(absl::Milliseconds(500));
      }
      Finish(grpc::Status::CANCELLED);
    });
    if (!scheduled.ok()) Finish(ToGrpcStatus(scheduled));
  }

  OrchestratorServiceImpl* const service_;
  const std::string job_id_;
  std::atomic<bool> cancelled_{false};
  bool sent_any_ = false;
  cascade::v1::JobStatus last_;
};

grpc::ServerWriteReactor<cascade::v1::JobStatus>* OrchestratorServiceImpl::Watch(
    grpc::CallbackServerContext*, const cascade::v1::GetStatusRequest* request) {
  return new WatchReactor(this, request->job_id());
}

}  // namespace cascade::orchestrator
