// orchestrator: walks a cascade of RL stages.
//
//   orchestrator validate FILE
//   orchestrator run FILE [--store DB] [--metrics_port N]
//   orchestrator resume JOB (--store DB | --server ADDR)
//   orchestrator serve [--address HOST:PORT] [--store DB] [--metrics_port N]
//   orchestrator submit FILE --server ADDR
//   orchestrator status JOB (--store DB | --server ADDR)
//   orchestrator watch JOB (--store DB | --server ADDR)
//   orchestrator cancel JOB --server ADDR
//   orchestrator list (--store DB | --server ADDR)
//   orchestrator report JOB --store DB [--output FILE]
//
// `run` and `resume --store` run the job in this process, with every
// service the cascade does not give an address for embedded on loopback.
// A killed `run` loses at most the step in flight: `resume` continues from
// the last checkpoint.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cascade/v1/orchestrator.grpc.pb.h"
#include "common/channel.h"
#include "common/cli.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server.h"
#include "services/orchestrator/cascade_config.h"
#include "services/orchestrator/dataset.h"
#include "services/orchestrator/job_execution.h"
#include "services/orchestrator/job_store.h"
#include "services/orchestrator/orchestrator_service.h"
#include "services/rollout/heap_tuning.h"

namespace cascade::orchestrator {
namespace {

namespace fs = std::filesystem;

constexpr char kTopUsage[] =
    "usage: orchestrator <command> [flags]\n\n"
    "Walks a cascade of RL stages (cascade.json).\n\n"
    "commands:\n"
    "  validate FILE   check a cascade.json (exit 1 with the JSON path at fault)\n"
    "  run FILE        run a cascade here, embedding the services it gives no address for\n"
    "  resume JOB      continue a stopped, failed or killed job from its last checkpoint\n"
    "  serve           run the Orchestrator gRPC service\n"
    "  submit FILE     submit a cascade to a server\n"
    "  status JOB      show a job's state\n"
    "  watch JOB       follow a job until it ends\n"
    "  cancel JOB      stop a job at its next step boundary\n"
    "  list            list jobs\n"
    "  report JOB      write a job's HTML report\n\n"
    "Run 'orchestrator <command> --help' for its flags.\n";

absl::StatusOr<std::unique_ptr<JobStore>> OpenStore(const std::string& path) {
  std::error_code error;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, error);
  return JobStore::Open(path);
}

int Fail(const absl::Status& status) {
  std::cerr << "orchestrator: " << status.message() << "\n";
  return kExitFailure;
}

// Runs or resumes `job_id` here, printing a progress line per step.
// `dump_metrics`, when set, receives the /metrics text at the end (for
// checks that every metric the dashboards use exists after a real run).
int Execute(JobStore* store, const std::string& job_id, const std::string& store_path, int metrics_port,
            const std::string& dump_metrics) {
  if (metrics_port >= 0) {
    auto port = StartMetricsExposer(metrics_port);
    if (!port.ok()) return Fail(port.status());
    CASCADE_LOG(INFO) << "metrics on :" << *port << "/metrics";
  }
  auto job = store->GetJob(job_id);
  if (!job.ok()) return Fail(job.status());
  std::cout << "job " << job_id << " (store " << store_path << "); if interrupted: orchestrator resume "
            << job_id << " --store " << store_path << std::endl;
  JobExecution execution(store, job_id);
  // The walker logs a progress line per step (stage, step, reward, filtered
  // fraction, step-time breakdown, ETA) on stderr.
  absl::Status status = execution.Run();
  std::cout << "report: " << (fs::path(job->output_dir) / "report.html").string() << std::endl;
  if (!dump_metrics.empty()) {
    std::ofstream out(dump_metrics, std::ios::binary | std::ios::trunc);
    out << RenderMetricsText();
    if (!out) return Fail(absl::InternalError(absl::StrCat(dump_metrics, ": cannot write the metrics")));
  }
  if (!status.ok()) return Fail(status);
  std::cout << "job " << job_id << " succeeded" << std::endl;
  return kExitOk;
}

int Validate(int argc, char** argv) {
  FlagSet flags("orchestrator validate FILE", "Checks a cascade.json: schema, values and paths.");
  auto positional = flags.Parse(argc, argv, 2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  if (positional->size() != 1) return flags.ExitForParseError(absl::InvalidArgumentError("expected one FILE"));
  auto config = LoadCascadeConfig((*positional)[0]);
  if (!config.ok()) return Fail(config.status());
  // Every row of every dataset too: a bad row fails here, not hours in.
  for (const StageConfig& stage : config->stages) {
    std::vector<const DatasetSpec*> specs = {&stage.train};
    if (stage.eval.has_value() && stage.kind == StageKind::kGrpo) specs.push_back(&*stage.eval);
    for (const DatasetSpec* spec : specs) {
      auto rows = LoadDataset(*spec, stage.kind, stage.reward.type, stage.system_prompt);
      if (!rows.ok()) return Fail(rows.status());
    }
  }
  std::cout << (*positional)[0] << ": ok (" << config->stages.size() << " stages:";
  for (const StageConfig& stage : config->stages) {
    std::cout << " " << stage.name << "/" << StageKindName(stage.kind);
    if (stage.kind == StageKind::kGrpo) std::cout << "/" << RewardTypeName(stage.reward.type);
  }
  std::cout << ")\n";
  return kExitOk;
}

int Run(int argc, char** argv) {
  std::string store_path, dump_metrics;
  int metrics_port = -1;
  FlagSet flags("orchestrator run FILE",
                "Runs a cascade in this process; services without an address in the file run\n"
                "embedded on loopback. Writes output_dir/ (checkpoints, report.html).");
  flags.AddString("store", &store_path, "job store (SQLite; default: output_dir/jobs.db)");
  flags.AddInt("metrics_port", &metrics_port, "Prometheus /metrics port (-1 = off, 0 = any)");
  flags.AddString("dump_metrics", &dump_metrics, "write the /metrics text to this file at the end");
  auto positional = flags.Parse(argc, argv, 2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  if (positional->size() != 1) return flags.ExitForParseError(absl::InvalidArgumentError("expected one FILE"));
  const std::string file = (*positional)[0];
  auto config = LoadCascadeConfig(file);
  if (!config.ok()) return Fail(config.status());
  if (store_path.empty()) store_path = (fs::path(config->output_dir) / "jobs.db").string();
  auto store = OpenStore(store_path);
  if (!store.ok()) return Fail(store.status());
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  JobRecord job;
  job.name = config->name;
  job.config_text = text.str();
  job.source = fs::absolute(file).lexically_normal().string();
  job.output_dir = config->output_dir;
  auto id = (*store)->CreateJob(job);
  if (!id.ok()) return Fail(id.status());
  return Execute(store->get(), *id, store_path, metrics_port, dump_metrics);
}

// A stub for --server commands.
std::unique_ptr<cascade::v1::Orchestrator::Stub> Connect(const std::string& address) {
  return cascade::v1::Orchestrator::NewStub(MakeChannel(address));
}

std::string StateName(cascade::v1::JobState state) {
  std::string name = cascade::v1::JobState_Name(state);
  name = name.substr(std::string("JOB_STATE_").size());
  for (char& c : name) c = static_cast<char>(std::tolower(c));
  return name;
}

void PrintStatus(const cascade::v1::JobStatus& s) {
  std::cout << s.job_id() << " " << StateName(s.state()) << " stage " << s.stage_index() << " ("
            << s.stage_name() << ") step " << s.step() << "/" << s.total_steps();
  if (s.has_last_step()) {
    std::cout << absl::StrFormat(" reward %.3f filtered %.0f%% loss %.4f", s.last_step().mean_reward(),
                                 100 * s.last_step().filtered_fraction(), s.last_step().loss());
  }
  if (s.state() == cascade::v1::JOB_STATE_RUNNING) std::cout << " ETA " << FormatDurationShort(s.eta_s());
  if (!s.error().empty()) std::cout << " error: " << s.error();
  std::cout << "\n";
}

// status, watch, cancel, list, resume, report: against a store or a server.
int JobCommand(const std::string& command, int argc, char** argv) {
  std::string store_path, server, output, dump_metrics;
  int metrics_port = -1;
  FlagSet flags("orchestrator " + command + (command == "list" ? "" : " JOB"),
                "See 'orchestrator --help'.");
  flags.AddString("store", &store_path, "job store (SQLite) to use directly");
  flags.AddString("server", &server, "orchestrator server host:port");
  if (command == "report") flags.AddString("output", &output, "HTML file (default: output_dir/report.html)");
  if (command == "resume") {
    flags.AddInt("metrics_port", &metrics_port, "Prometheus /metrics port (-1 = off, 0 = any)");
    flags.AddString("dump_metrics", &dump_metrics, "write the /metrics text to this file at the end");
  }
  auto positional = flags.Parse(argc, argv, 2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  const size_t want = command == "list" ? 0 : 1;
  if (positional->size() != want) {
    return flags.ExitForParseError(absl::InvalidArgumentError(want ? "expected one JOB id" : "no arguments expected"));
  }
  if (store_path.empty() == server.empty()) {
    return flags.ExitForParseError(absl::InvalidArgumentError("give exactly one of --store and --server"));
  }
  const std::string job_id = want ? (*positional)[0] : "";
  if (!server.empty()) {
    auto stub = Connect(server);
    grpc::ClientContext context;
    SetCallTimeout(context, command == "watch" ? absl::Hours(24 * 30) : kDefaultCallTimeout);
    cascade::v1::JobStatus status;
    grpc::Status rpc;
    if (command == "status") {
      cascade::v1::GetStatusRequest request;
      request.set_job_id(job_id);
      rpc = stub->GetStatus(&context, request, &status);
    } else if (command == "cancel") {
      cascade::v1::CancelRequest request;
      request.set_job_id(job_id);
      rpc = stub->Cancel(&context, request, &status);
    } else if (command == "resume") {
      cascade::v1::ResumeRequest request;
      request.set_job_id(job_id);
      rpc = stub->Resume(&context, request, &status);
    } else if (command == "list") {
      cascade::v1::ListJobsResponse jobs;
      rpc = stub->ListJobs(&context, {}, &jobs);
      if (rpc.ok()) for (const auto& job : jobs.jobs()) PrintStatus(job);
      if (!rpc.ok()) return Fail(FromGrpcStatus(rpc));
      return kExitOk;
    } else if (command == "watch") {
      cascade::v1::GetStatusRequest request;
      request.set_job_id(job_id);
      auto reader = stub->Watch(&context, request);
      while (reader->Read(&status)) PrintStatus(status);
      rpc = reader->Finish();
      if (!rpc.ok()) return Fail(FromGrpcStatus(rpc));
      return status.state() == cascade::v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitFailure;
    } else {
      return flags.ExitForParseError(absl::InvalidArgumentError(command + " needs --store"));
    }
    if (!rpc.ok()) return Fail(FromGrpcStatus(rpc));
    PrintStatus(status);
    return kExitOk;
  }

  auto store = OpenStore(store_path);
  if (!store.ok()) return Fail(store.status());
  if (command == "resume") {
    auto job = (*store)->GetJob(job_id);
    if (!job.ok()) return Fail(job.status());
    if (job->state == JobState::kSucceeded) {
      return Fail(absl::FailedPreconditionError(absl::StrCat("job ", job_id, " already succeeded")));
    }
    return Execute(store->get(), job_id, store_path, metrics_port, dump_metrics);
  }
  if (command == "report") {
    auto job = (*store)->GetJob(job_id);
    if (!job.ok()) return Fail(job.status());
    if (output.empty()) output = (fs::path(job->output_dir) / "report.html").string();
    if (absl::Status written = WriteReport(**store, job_id, output); !written.ok()) return Fail(written);
    std::cout << output << "\n";
    return kExitOk;
  }
  if (command == "list") {
    auto jobs = (*store)->ListJobs();
    if (!jobs.ok()) return Fail(jobs.status());
    for (const JobRecord& job : *jobs) {
      auto status = JobStatusFromStore(**store, job.job_id, nullptr);
      if (status.ok()) PrintStatus(*status);
    }
    return kExitOk;
  }
  if (command == "cancel") {
    return flags.ExitForParseError(absl::InvalidArgumentError(
        "cancel needs --server (a job run by 'orchestrator run' stops with Ctrl-C and resumes later)"));
  }
  // status / watch from the store.
  while (true) {
    auto status = JobStatusFromStore(**store, job_id, nullptr);
    if (!status.ok()) return Fail(status.status());
    PrintStatus(*status);
    const bool running = status->state() == cascade::v1::JOB_STATE_RUNNING ||
                         status->state() == cascade::v1::JOB_STATE_QUEUED;
    if (command == "status" || !running) {
      return command == "watch" && status->state() != cascade::v1::JOB_STATE_SUCCEEDED ? kExitFailure : kExitOk;
    }
    absl::SleepFor(absl::Seconds(2));
  }
}

int Submit(int argc, char** argv) {
  std::string server;
  FlagSet flags("orchestrator submit FILE", "Submits a cascade.json to an orchestrator server.");
  flags.AddString("server", &server, "orchestrator server host:port", /*required=*/true);
  auto positional = flags.Parse(argc, argv, 2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  if (positional->size() != 1) return flags.ExitForParseError(absl::InvalidArgumentError("expected one FILE"));
  std::ifstream in((*positional)[0], std::ios::binary);
  if (!in) return Fail(absl::NotFoundError(absl::StrCat((*positional)[0], ": cannot read the file")));
  std::stringstream text;
  text << in.rdbuf();
  cascade::v1::SubmitRequest request;
  request.set_cascade_json(text.str());
  request.set_source_name((*positional)[0]);
  cascade::v1::SubmitResponse response;
  grpc::ClientContext context;
  SetCallTimeout(context, kDefaultCallTimeout);
  grpc::Status rpc = Connect(server)->Submit(&context, request, &response);
  if (!rpc.ok()) return Fail(FromGrpcStatus(rpc));
  std::cout << response.job_id() << "\n";
  return kExitOk;
}

int Serve(int argc, char** argv) {
  BlockTerminationSignals();
  std::string address = "0.0.0.0:50050";
  std::string store_path = "jobs.db";
  int metrics_port = 9100;
  FlagSet flags("orchestrator serve", "Runs the Orchestrator gRPC service until SIGTERM.");
  flags.AddString("address", &address, "host:port to listen on (port 0 = any free port)");
  flags.AddString("store", &store_path, "job store (SQLite)");
  flags.AddInt("metrics_port", &metrics_port, "Prometheus /metrics port (-1 = off, 0 = any)");
  auto positional = flags.Parse(argc, argv, 2);
  if (!positional.ok()) return flags.ExitForParseError(positional.status());
  auto store = OpenStore(store_path);
  if (!store.ok()) return Fail(store.status());
  OrchestratorServiceImpl service(store->get());
  if (absl::Status recovered = service.RecoverJobs(); !recovered.ok()) return Fail(recovered);
  return ServeUntilTerminated("orchestrator", {.address = address}, metrics_port, {&service},
                              absl::StrCat(" with store ", store_path));
}

}  // namespace
}  // namespace cascade::orchestrator

int main(int argc, char** argv) {
  using namespace cascade::orchestrator;
  cascade::SetLogProcessName("orchestrator");
  cascade::rollout::KeepLargeAllocationsInHeap();
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "validate") return Validate(argc, argv);
  if (command == "run") return Run(argc, argv);
  if (command == "serve") return Serve(argc, argv);
  if (command == "submit") return Submit(argc, argv);
  if (command == "status" || command == "watch" || command == "cancel" || command == "resume" ||
      command == "list" || command == "report") {
    return JobCommand(command, argc, argv);
  }
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kTopUsage;
    return cascade::kExitOk;
  }
  std::cerr << (command.empty() ? "orchestrator: missing command\n"
                                : "orchestrator: unknown command \"" + command + "\"\n")
            << kTopUsage;
  return cascade::kExitUsage;
}
