#include "services/orchestrator/job_execution.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "services/orchestrator/embedded_services.h"
#include "services/orchestrator/report.h"

namespace cascade::orchestrator {
namespace fs = std::filesystem;

JobExecution::JobExecution(JobStore* store, std::string job_id)
    : store_(store), job_id_(std::move(job_id)) {}

JobExecution::~JobExecution() = default;

void JobExecution::Cancel() {
  cancelled_.store(true);
  absl::MutexLock lock(&mu_);
  if (runner_ != nullptr) runner_->Cancel();
}

Progress JobExecution::progress() const {
  absl::MutexLock lock(&mu_);
  return runner_ != nullptr ? runner_->progress() : last_progress_;
}

absl::Status WriteReport(JobStore& store, const std::string& job_id, const std::string& path) {
  ASSIGN_OR_RETURN(JobRecord job, store.GetJob(job_id));
  ASSIGN_OR_RETURN(auto stages, store.Stages(job_id));
  ASSIGN_OR_RETURN(auto steps, store.Steps(job_id));
  ASSIGN_OR_RETURN(auto evals, store.Evals(job_id));
  ASSIGN_OR_RETURN(auto events, store.Events(job_id));
  const std::string html = RenderReportHtml(job, stages, steps, evals, events);
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << html;
    if (!out) return absl::InternalError(absl::StrCat(temporary, ": cannot write the report"));
  }
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) return absl::InternalError(absl::StrCat(path, ": ", error.message()));
  return absl::OkStatus();
}

namespace {

absl::Status RunJob(JobStore* store, const std::string& job_id, const JobRecord& job,
                    std::atomic<bool>* cancelled, absl::Mutex* mu, CascadeRunner** runner_slot,
                    const std::function<void(const Progress&)>& on_progress) {
  // The directory the file came from resolves its relative paths.
  std::string base = fs::path(job.source).parent_path().string();
  if (base.empty()) base = ".";
  ASSIGN_OR_RETURN(CascadeConfig config, ParseCascadeConfig(job.config_text, job.source,
                                                            fs::absolute(base).lexically_normal().string()));
  ServicesConfig services;
  ASSIGN_OR_RETURN(std::unique_ptr<EmbeddedServices> embedded, EmbeddedServices::Start(config, &services));
  const absl::Duration unavailable = absl::Seconds(services.unavailable_timeout_s);

  auto learner = learner::LearnerClient::Connect(services.learner);
  std::vector<RolloutPool::Replica> rollout_replicas;
  for (const std::string& address : services.rollout) {
    rollout_replicas.push_back({address, std::shared_ptr<rollout::RolloutClientInterface>(
                                             rollout::RolloutClient::Connect(address))});
  }
  std::vector<VerifierPool::Replica> verifier_replicas;
  for (const std::string& address : services.verifier) {
    verifier_replicas.push_back({address, std::shared_ptr<verifier::VerifierClientInterface>(
                                              verifier::VerifierClient::Connect(address))});
  }
  std::vector<RewardModelPool::Replica> rm_replicas;
  for (const std::string& address : services.reward_model) {
    rm_replicas.push_back({address, std::shared_ptr<reward_model::RewardModelClientInterface>(
                                        reward_model::RewardModelClient::Connect(address))});
  }
  RolloutPool rollout("rollout", std::move(rollout_replicas), unavailable);
  VerifierPool verifier("verifier", std::move(verifier_replicas), unavailable);
  RewardModelPool reward_model("reward_model", std::move(rm_replicas), unavailable);
  // A remote learner must know every replica it publishes to.
  if (!config.services.learner.empty()) {
    for (const std::string& address : services.rollout) {
      RETURN_IF_ERROR(learner->RegisterRollout(address).status());
    }
  }
  auto tok = tokenizer::Tokenizer::FromFile(config.model);
  if (!tok.ok()) return tok.status();

  CascadeRunner runner(config, job_id, store, {learner.get(), &rollout, &verifier, &reward_model}, tok->get());
  runner.set_progress_callback(on_progress);
  {
    absl::MutexLock lock(mu);
    *runner_slot = &runner;
  }
  if (cancelled->load()) runner.Cancel();
  absl::Status status = runner.Run();
  {
    absl::MutexLock lock(mu);
    *runner_slot = nullptr;
  }
  return status;
}

}  // namespace

absl::Status JobExecution::Run(std::function<void(const Progress&)> on_progress) {
  ASSIGN_OR_RETURN(JobRecord job, store_->GetJob(job_id_));
  RETURN_IF_ERROR(store_->SetJobState(job_id_, JobState::kRunning));
  RETURN_IF_ERROR(store_->AddEvent(job_id_, "info", "job started"));
  auto remember = [this, on_progress](const Progress& p) {
    {
      absl::MutexLock lock(&mu_);
      last_progress_ = p;
    }
    if (on_progress) on_progress(p);
  };
  absl::Status status = RunJob(store_, job_id_, job, &cancelled_, &mu_, &runner_, remember);
  const JobState state = status.ok()                 ? JobState::kSucceeded
                         : absl::IsCancelled(status) ? JobState::kCancelled
                                                     : JobState::kFailed;
  (void)store_->SetJobState(job_id_, state, status.ok() ? "" : std::string(status.message()));
  (void)store_->AddEvent(job_id_, status.ok() ? "info" : "error",
                         status.ok() ? "job succeeded" : absl::StrCat("job ", JobStateName(state), ": ", status.message()));
  std::error_code error;
  fs::create_directories(job.output_dir, error);
  const std::string report = (fs::path(job.output_dir) / "report.html").string();
  if (absl::Status written = WriteReport(*store_, job_id_, report); !written.ok()) {
    CASCADE_LOG(WARNING) << "report: " << written.message();
  }
  return status;
}

}  // namespace cascade::orchestrator
