// Whole cascades through the real `orchestrator` binary, every service real
// (embedded on loopback, or separate `verifier serve` processes), on a tiny
// model with the Qwen3 tokenizer:
//   - kill -9 of the orchestrator mid-stage, then `resume`: every step is
//     recorded exactly once and the final weights equal those of an
//     uninterrupted run with the same seed;
//   - kill -9 of one of two verifier replicas: the job completes, its items
//     moved to the other replica;
//   - one address naming two verifier replicas: calls reach both;
//   - two jobs in a row on one remote learner and rollout replica: the second
//     starts from its own model, not the first job's policy;
//   - `serve` + `submit` + `watch` + `status` + `list` over gRPC;
//   - the CLI's exit codes and errors for bad input.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/json_util.h"
#include "services/orchestrator/job_store.h"
#include "tests/util/subprocess.h"
#include "tokenizer/test_tokenizers.h"

namespace cascade {
namespace {

namespace fs = std::filesystem;
using orchestrator::JobStore;
using orchestrator::StepRecord;

const std::string kOrchestrator = std::string(CASCADE_BIN_DIR) + "/orchestrator";
const std::string kLearner = std::string(CASCADE_BIN_DIR) + "/learner";
const std::string kVerifier = std::string(CASCADE_BIN_DIR) + "/verifier";
const std::string kRollout = std::string(CASCADE_BIN_DIR) + "/rollout";

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A work directory with a tiny policy and small math/SFT datasets, shared by
// the tests of this binary (built once).
const fs::path& Workspace() {
  static const fs::path* root = [] {
    auto* dir = new fs::path(fs::temp_directory_path() / absl::StrCat("cascade_e2e_", ::getpid()));
    fs::create_directories(*dir);
    auto init = testing::RunCommand({kLearner, "init", "--arch", "qwen3", "--hidden", "32", "--layers", "1",
                                     "--heads", "2", "--kv-heads", "1", "--intermediate", "64",
                                     "--tie-embeddings", "--seed", "5", "--max-position", "512",
                                     "--vocab-from", tokenizer::testing::CacheDir() + "/qwen3", "--out",
                                     (*dir / "model").string()});
    INFO(init.err);
    REQUIRE(init.exit_code == 0);
    std::string math, sft;
    for (int a = 0; a < 5; ++a) {
      for (int b = 0; b < 4; ++b) {
        math += absl::StrCat(R"({"id": "m)", a, "_", b, R"(", "question": "What is )", a, " + ", b,
                             R"(?", "answer": {"value": ")", a + b, R"("}})", "\n");
        sft += absl::StrCat(R"({"prompt": "What is )", a, " + ", b, R"(?", "response": "\\boxed{)", a + b,
                            R"(}"})", "\n");
      }
    }
    WriteFile(*dir / "data/math.jsonl", math);
    WriteFile(*dir / "data/sft.jsonl", sft);
    return dir;
  }();
  return *root;
}

// cascade.json for a 2-stage cascade (SFT then math GRPO) writing to `out`.
std::string CascadeJson(const std::string& out, const Json& services) {
  Json doc = Json::parse(R"({
    "name": "e2e", "model": "model", "seed": 5,
    "defaults": {"batch_prompts": 4, "group_size": 4, "learning_rate": 0.01, "max_response_tokens": 8,
                 "checkpoint_every": 1, "eval": {"limit": 4}},
    "stages": [
      {"name": "warmup", "kind": "sft", "datasets": {"train": "data/sft.jsonl"}, "steps": 3},
      {"name": "math", "reward": "math", "dynamic_filtering": {"max_refill_rounds": 1}, "steps": 4,
       "datasets": {"train": {"path": "data/math.jsonl",
                              "fields": {"prompt": "question", "ground_truth": "answer.value"}},
                    "eval": {"path": "data/math.jsonl",
                             "fields": {"prompt": "question", "ground_truth": "answer.value"}}}}
    ]})");
  doc["output_dir"] = out;
  doc["services"] = services;
  return doc.dump(2);
}

std::string WriteCascade(const std::string& name, const Json& services) {
  const fs::path path = Workspace() / (name + ".json");
  WriteFile(path, CascadeJson((Workspace() / name).string(), services));
  return path.string();
}

Json Embedded() { return Json{{"embedded", true}, {"threads", 1}}; }

std::string OnlyJobId(const std::string& store) {
  auto list = testing::RunCommand({kOrchestrator, "list", "--store", store});
  INFO(list.err);
  REQUIRE(list.exit_code == 0);
  std::vector<std::string> lines = absl::StrSplit(list.out, '\n', absl::SkipEmpty());
  REQUIRE(lines.size() == 1);
  return std::vector<std::string>(absl::StrSplit(lines[0], ' '))[0];
}

std::vector<StepRecord> Steps(const std::string& store, const std::string& job) {
  auto opened = JobStore::Open(store);
  REQUIRE(opened.ok());
  auto steps = (*opened)->Steps(job);
  REQUIRE(steps.ok());
  return *steps;
}

std::string FinalWeightsSha(const std::string& out) {
  const fs::path manifest = fs::path(out) / "checkpoints" / "01-00004-math" / "manifest.json";
  REQUIRE(fs::exists(manifest));
  Json parsed = Json::parse(ReadFile(manifest));
  const std::string sha = parsed["sha256"]["model.safetensors"].get<std::string>();
  REQUIRE(sha.size() == 64);
  return sha;
}

TEST_CASE("a cascade killed mid-stage resumes to the same final weights as an uninterrupted run") {
  const std::string straight = WriteCascade("straight", Embedded());
  auto run = testing::RunCommand({kOrchestrator, "run", straight}, "", absl::Minutes(5));
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  const std::string straight_out = (Workspace() / "straight").string();
  const std::string straight_job = OnlyJobId(straight_out + "/jobs.db");
  const std::vector<StepRecord> straight_steps = Steps(straight_out + "/jobs.db", straight_job);
  REQUIRE(straight_steps.size() == 7);
  CHECK(fs::exists(fs::path(straight_out) / "report.html"));
  // The first trained step of each stage starts from fresh optimizer state,
  // as a separately launched run would (a step whose groups were all
  // filtered out trains nothing).
  std::set<int> stages_trained;
  for (const StepRecord& row : straight_steps) {
    INFO("stage " << row.stage_index << " step " << row.step);
    if (row.extra.contains("skipped_train")) continue;
    CHECK(row.extra.contains("optimizer_reset") == stages_trained.insert(row.stage_index).second);
  }
  CHECK(stages_trained.count(0) == 1);

  const std::string killed = WriteCascade("killed", Embedded());
  const std::string killed_out = (Workspace() / "killed").string();
  {
    testing::Subprocess orchestrator({kOrchestrator, "run", killed});
    // Mid-stage: after the second of the math stage's four steps.
    REQUIRE(orchestrator.WaitForStderr("[stage 2/2 math] step 2/4 ", absl::Minutes(3)).has_value());
    orchestrator.Signal(SIGKILL);
    REQUIRE(orchestrator.Wait(absl::Seconds(30)).has_value());
  }
  const std::string job = OnlyJobId(killed_out + "/jobs.db");
  auto status = testing::RunCommand({kOrchestrator, "status", job, "--store", killed_out + "/jobs.db"});
  CHECK(status.out.find("running") != std::string::npos);  // as the kill left it
  auto resumed = testing::RunCommand({kOrchestrator, "resume", job, "--store", killed_out + "/jobs.db"}, "",
                                     absl::Minutes(5));
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.out.find("succeeded") != std::string::npos);

  // Every step exactly once, with the uninterrupted run's results.
  const std::vector<StepRecord> steps = Steps(killed_out + "/jobs.db", job);
  REQUIRE(steps.size() == straight_steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    INFO("step row " << i);
    CHECK(steps[i].stage_index == straight_steps[i].stage_index);
    CHECK(steps[i].step == straight_steps[i].step);
    CHECK(steps[i].policy_version == straight_steps[i].policy_version);
    CHECK(steps[i].reward_mean == straight_steps[i].reward_mean);
    CHECK(steps[i].loss == straight_steps[i].loss);
  }
  CHECK(FinalWeightsSha(killed_out) == FinalWeightsSha(straight_out));
}

TEST_CASE("two jobs in a row on one remote learner each start from their own model") {
  const std::string model = (Workspace() / "model").string();
  testing::Subprocess rollout({kRollout, "serve", "--model", model, "--address", "127.0.0.1:0",
                               "--metrics_port", "-1", "--threads", "1"});
  testing::Subprocess learner({kLearner, "serve", "--model", model, "--address", "127.0.0.1:0",
                               "--metrics-port", "-1", "--threads", "1"});
  auto rollout_log = rollout.WaitForStderr("listening on port", absl::Seconds(60));
  auto learner_log = learner.WaitForStderr("listening on port", absl::Seconds(60));
  REQUIRE(rollout_log.has_value());
  REQUIRE(learner_log.has_value());
  Json services = Embedded();  // the verifier stays embedded
  services["rollout"] = {absl::StrCat("127.0.0.1:", testing::ParseListeningPort(*rollout_log))};
  services["learner"] = absl::StrCat("127.0.0.1:", testing::ParseListeningPort(*learner_log));

  std::vector<std::vector<StepRecord>> jobs;
  for (const std::string name : {"remote-first", "remote-second"}) {
    auto run = testing::RunCommand({kOrchestrator, "run", WriteCascade(name, services)}, "", absl::Minutes(5));
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    const std::string out = (Workspace() / name).string();
    jobs.push_back(Steps(out + "/jobs.db", OnlyJobId(out + "/jobs.db")));
    REQUIRE(jobs.back().size() == 7);
  }
  // The learner ends the first job trained; the second job loads its own
  // model as a new version and so repeats the first job's steps exactly.
  CHECK(jobs[1][0].policy_version > jobs[0].back().policy_version);
  for (size_t i = 0; i < jobs[0].size(); ++i) {
    INFO("step row " << i);
    CHECK(jobs[1][i].loss == jobs[0][i].loss);
    CHECK(jobs[1][i].reward_mean == jobs[0][i].reward_mean);
  }
  CHECK(jobs[0].back().policy_version >= 3);  // the first job trained the learner (3 SFT steps at least)
  CHECK_THAT(learner.Stderr(), Catch::Contains("optimizer scope"));
}

TEST_CASE("a verifier replica killed mid-step: the step completes on the other replica") {
  testing::Subprocess a({kVerifier, "serve", "--address", "127.0.0.1:0", "--metrics_port", "-1",
                         "--backends", "math"});
  testing::Subprocess b({kVerifier, "serve", "--address", "127.0.0.1:0", "--metrics_port", "-1",
                         "--backends", "math"});
  auto a_log = a.WaitForStderr("listening on port", absl::Seconds(30));
  auto b_log = b.WaitForStderr("listening on port", absl::Seconds(30));
  REQUIRE(a_log.has_value());
  REQUIRE(b_log.has_value());
  const std::string a_address = absl::StrCat("127.0.0.1:", testing::ParseListeningPort(*a_log));
  const std::string b_address = absl::StrCat("127.0.0.1:", testing::ParseListeningPort(*b_log));
  Json services = Embedded();
  services["verifier"] = {a_address, b_address};
  services["unavailable_timeout_s"] = 30;
  const std::string path = WriteCascade("failover", services);
  testing::Subprocess orchestrator({kOrchestrator, "run", path});
  REQUIRE(orchestrator.WaitForStderr("[stage 2/2 math] step 1/4 ", absl::Minutes(3)).has_value());
  // Mid-step: replica A is frozen, so step 2's verify call to it (its shard
  // of the items) hangs in flight and the step cannot finish...
  a.Signal(SIGSTOP);
  absl::SleepFor(absl::Seconds(4));
  CHECK(orchestrator.Stderr().find("[stage 2/2 math] step 2/4 ") == std::string::npos);
  // ...until A dies under it: the call fails and its shard moves to B.
  a.Signal(SIGKILL);
  const auto exit_code = orchestrator.Wait(absl::Minutes(3));
  INFO(orchestrator.Stderr());
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code == 0);
  CHECK(orchestrator.Stderr().find("verifier replica " + a_address + " failed, trying another") !=
        std::string::npos);
  const std::string out = (Workspace() / "failover").string();
  const std::vector<StepRecord> steps = Steps(out + "/jobs.db", OnlyJobId(out + "/jobs.db"));
  CHECK(steps.size() == 7);
}

TEST_CASE("one address naming two verifier replicas: a step's calls reach both") {
  std::vector<std::unique_ptr<testing::Subprocess>> replicas;
  std::vector<int> grpc_ports, metrics_ports;
  for (int i = 0; i < 2; ++i) {
    replicas.push_back(std::make_unique<testing::Subprocess>(std::vector<std::string>{
        kVerifier, "serve", "--address", "127.0.0.1:0", "--metrics_port", "0", "--backends", "math"}));
    auto log = replicas.back()->WaitForStderr("listening on port", absl::Seconds(30));
    REQUIRE(log.has_value());
    grpc_ports.push_back(testing::ParseListeningPort(*log));
    metrics_ports.push_back(testing::ParseMetricsPort(*log));
    REQUIRE(metrics_ports.back() > 0);
  }
  // One target resolving to both replicas, as "dns:///" does for a headless
  // Kubernetes Service; 16 items per step go out as 4 calls of 4.
  Json services = Embedded();
  services["verifier"] = absl::StrCat("ipv4:127.0.0.1:", grpc_ports[0], ",127.0.0.1:", grpc_ports[1]);
  services["items_per_call"] = 4;
  const std::string path = WriteCascade("spread", services);
  auto run = testing::RunCommand({kOrchestrator, "run", path}, "", absl::Minutes(5));
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  const std::string out = (Workspace() / "spread").string();
  CHECK(Steps(out + "/jobs.db", OnlyJobId(out + "/jobs.db")).size() == 7);
  // 4 math steps of at least 4 calls each, plus evaluations, over two replicas.
  double total = 0;
  for (int port : metrics_ports) {
    const double calls = testing::MetricValue(testing::HttpGetMetrics(port),
                                              "cascade_verifier_requests_total{backend=\"math\"}");
    INFO("replica metrics port " << port);
    CHECK(calls >= 4);
    total += calls;
  }
  CHECK(total >= 16);
}

TEST_CASE("a job with every verifier gone fails with a clear error instead of hanging") {
  Json services = Embedded();
  services["verifier"] = {"127.0.0.1:1"};
  services["unavailable_timeout_s"] = 2;
  const std::string path = WriteCascade("unreachable", services);
  auto run = testing::RunCommand({kOrchestrator, "run", path}, "", absl::Minutes(3));
  INFO(run.out << run.err);
  CHECK(run.exit_code == 1);
  CHECK(run.err.find("verifier: no replica answered") != std::string::npos);
  const std::string out = (Workspace() / "unreachable").string();
  auto status = testing::RunCommand({kOrchestrator, "status", OnlyJobId(out + "/jobs.db"), "--store",
                                     out + "/jobs.db"});
  CHECK(status.out.find("failed") != std::string::npos);
}

TEST_CASE("a server runs submitted jobs, and status, watch, cancel and list follow them over gRPC") {
  const std::string store = (Workspace() / "server" / "jobs.db").string();
  fs::create_directories(Workspace() / "server");
  testing::Subprocess server({kOrchestrator, "serve", "--address", "127.0.0.1:0", "--store", store,
                              "--metrics_port", "-1"});
  auto log = server.WaitForStderr("listening on port", absl::Seconds(30));
  REQUIRE(log.has_value());
  const std::string address = absl::StrCat("127.0.0.1:", testing::ParseListeningPort(*log));
  // Relative paths in a submitted file resolve on the server: give absolute ones.
  Json doc = Json::parse(CascadeJson((Workspace() / "served").string(), Embedded()));
  doc["model"] = (Workspace() / "model").string();
  doc["stages"][0]["datasets"]["train"] = (Workspace() / "data/sft.jsonl").string();
  for (const char* split : {"train", "eval"}) {
    doc["stages"][1]["datasets"][split]["path"] = (Workspace() / "data/math.jsonl").string();
  }
  WriteFile(Workspace() / "served.json", doc.dump());
  auto submitted = testing::RunCommand(
      {kOrchestrator, "submit", (Workspace() / "served.json").string(), "--server", address});
  INFO(submitted.err);
  REQUIRE(submitted.exit_code == 0);
  const std::string job = std::string(absl::StripAsciiWhitespace(submitted.out));
  REQUIRE(job.rfind("job-", 0) == 0);
  auto watched = testing::RunCommand({kOrchestrator, "watch", job, "--server", address}, "", absl::Minutes(5));
  INFO(watched.out << watched.err);
  CHECK(watched.exit_code == 0);
  CHECK(watched.out.find("succeeded") != std::string::npos);
  auto status = testing::RunCommand({kOrchestrator, "status", job, "--server", address});
  CHECK(status.out.find(job + " succeeded stage 1 (math) step 4/4") != std::string::npos);
  auto list = testing::RunCommand({kOrchestrator, "list", "--server", address});
  CHECK(list.out.find(job) != std::string::npos);
  // Cancel stops a running job at a step boundary; resume finishes it.
  doc["output_dir"] = (Workspace() / "served-cancelled").string();
  WriteFile(Workspace() / "served2.json", doc.dump());
  auto second = testing::RunCommand(
      {kOrchestrator, "submit", (Workspace() / "served2.json").string(), "--server", address});
  REQUIRE(second.exit_code == 0);
  const std::string job2 = std::string(absl::StripAsciiWhitespace(second.out));
  REQUIRE(server.WaitForStderr("[stage 1/2 warmup] step 2/3 ", absl::Minutes(3)).has_value());
  auto cancel = testing::RunCommand({kOrchestrator, "cancel", job2, "--server", address});
  CHECK(cancel.exit_code == 0);
  std::string state;
  for (int i = 0; i < 120 && state.find(" cancelled ") == std::string::npos; ++i) {
    absl::SleepFor(absl::Milliseconds(500));
    state = testing::RunCommand({kOrchestrator, "status", job2, "--server", address}).out;
  }
  INFO(state);
  REQUIRE(state.find(job2 + " cancelled") != std::string::npos);
  auto resume = testing::RunCommand({kOrchestrator, "resume", job2, "--server", address});
  CHECK(resume.exit_code == 0);
  auto finished = testing::RunCommand({kOrchestrator, "watch", job2, "--server", address}, "", absl::Minutes(5));
  INFO(finished.out << finished.err);
  CHECK(finished.exit_code == 0);
  {
    auto opened = JobStore::Open(store);
    REQUIRE(opened.ok());
    auto steps = (*opened)->Steps(job2);
    REQUIRE(steps.ok());
    CHECK(steps->size() == 7);
  }
  // A bad document is refused at submission with its JSON path.
  WriteFile(Workspace() / "bad.json", R"({"model": "x", "output_dir": "y", "services": {"embedded": true},
                                          "stages": [{"name": "s", "kind": "grpo", "steps": 1}]})");
  auto bad = testing::RunCommand({kOrchestrator, "submit", (Workspace() / "bad.json").string(), "--server",
                                  address});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("bad.json: model") != std::string::npos);
  server.Signal(SIGTERM);
  CHECK(server.Wait(absl::Seconds(30)) == 0);
}

TEST_CASE("the CLI keeps the exit-code contract and names the JSON path of a bad file") {
  CHECK(testing::RunCommand({kOrchestrator, "--help"}).exit_code == 0);
  CHECK(testing::RunCommand({kOrchestrator, "frobnicate"}).exit_code == 2);
  CHECK(testing::RunCommand({kOrchestrator, "run"}).exit_code == 2);
  CHECK(testing::RunCommand({kOrchestrator, "status", "job-x"}).exit_code == 2);
  Json doc = Json::parse(CascadeJson("out", Embedded()));
  doc["stages"][1]["reward"] = "maths";
  WriteFile(Workspace() / "typo.json", doc.dump());
  auto typo = testing::RunCommand({kOrchestrator, "validate", (Workspace() / "typo.json").string()});
  CHECK(typo.exit_code == 1);
  CHECK(typo.err.find("typo.json: stages[1].reward.type: unknown value \"maths\"") != std::string::npos);
  auto ok = testing::RunCommand({kOrchestrator, "validate", WriteCascade("valid", Embedded())});
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  // validate reads every dataset row: a bad row is named by file and line.
  WriteFile(Workspace() / "data/bad-math.jsonl",
            "{\"question\": \"1+1?\", \"answer\": {\"value\": \"2\"}}\n{\"question\": 7}\n");
  Json bad_rows = Json::parse(CascadeJson("out", Embedded()));
  bad_rows["stages"][1]["datasets"]["train"]["path"] = "data/bad-math.jsonl";
  WriteFile(Workspace() / "bad-rows.json", bad_rows.dump());
  auto rows = testing::RunCommand({kOrchestrator, "validate", (Workspace() / "bad-rows.json").string()});
  CHECK(rows.exit_code == 1);
  CHECK(rows.err.find("bad-math.jsonl: line 2: question: expected a non-empty string") != std::string::npos);
  auto missing = testing::RunCommand({kOrchestrator, "status", "job-nope", "--store",
                                      (Workspace() / "nope.db").string()});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("job \"job-nope\" not found") != std::string::npos);
}

}  // namespace
}  // namespace cascade
