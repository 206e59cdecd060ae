#include "services/orchestrator/job_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

namespace cascade::orchestrator {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "job_store_test.XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

std::unique_ptr<JobStore> OpenOrDie(const std::string& path) {
  auto store = JobStore::Open(path);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return *std::move(store);
}

std::string CreateJobOrDie(JobStore& store, const std::string& name = "demo") {
  JobRecord job;
  job.name = name;
  job.config_text = R"({"name": "demo"})";
  job.source = "/tmp/cascade.json";
  job.output_dir = "/tmp/out";
  auto id = store.CreateJob(job);
  INFO(id.status().ToString());
  REQUIRE(id.ok());
  return *id;
}

StepRecord MakeStep(int stage_index, int64_t step) {
  StepRecord s;
  s.stage_index = stage_index;
  s.step = step;
  s.policy_version = 100 * stage_index + step + 1;
  s.reward_mean = 0.25 + 0.01 * static_cast<double>(step);
  s.reward_std = 0.125;
  s.filtered_fraction = 0.5;
  s.response_tokens_mean = 321.5;
  s.truncation_rate = 0.0625;
  s.loss = -0.75;
  s.entropy = 1.5;
  s.logprob_mismatch = 0.001;
  s.generate_s = 4.0;
  s.verify_s = 1.0;
  s.train_s = 2.0;
  s.sync_s = 0.5;
  s.total_s = 8.0;
  s.extra = Json{{"refill_rounds", 2}, {"lr", 1e-6}};
  s.created_at = 1700000000.0 + static_cast<double>(step);
  return s;
}

CheckpointRecord MakeCheckpoint(int stage_index, int64_t steps_done) {
  CheckpointRecord cp;
  cp.stage_index = stage_index;
  cp.steps_done = steps_done;
  cp.policy_version = 100 * stage_index + steps_done;
  cp.path = "/tmp/out/ckpt-" + std::to_string(stage_index) + "-" + std::to_string(steps_done);
  cp.weights_sha256 = std::string(64, 'a');
  cp.created_at = 1700000500.0;
  return cp;
}

EvalRecord MakeEval(int after, int64_t at_step, int domain) {
  EvalRecord e;
  e.after_stage_index = after;
  e.at_step = at_step;
  e.domain_stage_index = domain;
  e.domain = "domain" + std::to_string(domain);
  e.reward_mean = 0.1 * (after + 1) + 0.01 * domain;
  e.samples = 64;
  e.created_at = 1700000600.0;
  return e;
}

std::vector<std::pair<int, int64_t>> StepKeys(JobStore& store, const std::string& job_id) {
  auto steps = store.Steps(job_id);
  REQUIRE(steps.ok());
  std::vector<std::pair<int, int64_t>> keys;
  for (const StepRecord& s : *steps) keys.emplace_back(s.stage_index, s.step);
  return keys;
}

TEST_CASE("a job round-trips with a generated id of the documented shape") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store, "cascade <math>");
  CHECK(std::regex_match(id, std::regex(R"(job-\d{8}-\d{6}-[0-9a-f]{4})")));

  auto job = store->GetJob(id);
  REQUIRE(job.ok());
  CHECK(job->job_id == id);
  CHECK(job->name == "cascade <math>");
  CHECK(job->config_text == R"({"name": "demo"})");
  CHECK(job->source == "/tmp/cascade.json");
  CHECK(job->output_dir == "/tmp/out");
  CHECK(job->state == JobState::kQueued);
  CHECK(job->error.empty());
  CHECK(job->created_at > 1.6e9);
  CHECK(job->updated_at >= job->created_at);

  REQUIRE(store->SetJobState(id, JobState::kFailed, "learner: out of memory").ok());
  job = store->GetJob(id);
  REQUIRE(job.ok());
  CHECK(job->state == JobState::kFailed);
  CHECK(job->error == "learner: out of memory");
}

TEST_CASE("a caller-chosen job id is kept and a duplicate is rejected") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  JobRecord job;
  job.job_id = "job-fixed";
  auto id = store->CreateJob(job);
  REQUIRE(id.ok());
  CHECK(*id == "job-fixed");
  auto again = store->CreateJob(job);
  CHECK(absl::IsAlreadyExists(again.status()));
}

TEST_CASE("generated job ids are unique across many jobs created in the same second") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.insert(CreateJobOrDie(*store));
  CHECK(ids.size() == 200);
  auto jobs = store->ListJobs();
  REQUIRE(jobs.ok());
  CHECK(jobs->size() == 200);
}

TEST_CASE("jobs are listed newest first") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  JobRecord older;
  older.job_id = "older";
  older.created_at = 1000.0;
  JobRecord newer;
  newer.job_id = "newer";
  newer.created_at = 2000.0;
  REQUIRE(store->CreateJob(older).ok());
  REQUIRE(store->CreateJob(newer).ok());
  auto jobs = store->ListJobs();
  REQUIRE(jobs.ok());
  REQUIRE(jobs->size() == 2);
  CHECK((*jobs)[0].job_id == "newer");
  CHECK((*jobs)[1].job_id == "older");
}

TEST_CASE("job states round-trip through their names and unknown names are rejected") {
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled}) {
    auto parsed = ParseJobState(JobStateName(state));
    REQUIRE(parsed.ok());
    CHECK(*parsed == state);
  }
  auto bad = ParseJobState("done");
  CHECK(absl::IsInvalidArgument(bad.status()));
  CHECK(std::string(bad.status().message()).find("\"done\"") != std::string::npos);
}

TEST_CASE("an unknown job is NOT_FOUND with its id and the database path") {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  auto store = OpenOrDie(path);
  auto job = store->GetJob("x");
  CHECK(absl::IsNotFound(job.status()));
  CHECK(job.status().message() == "job \"x\" not found in " + path);
  CHECK(absl::IsNotFound(store->SetJobState("x", JobState::kRunning)));
  CHECK(absl::IsNotFound(store->RecordStep("x", MakeStep(0, 0))));
  CHECK(absl::IsNotFound(store->PutStage("x", StageRecord{})));
  CHECK(absl::IsNotFound(store->Steps("x").status()));
  CHECK(absl::IsNotFound(store->AddEvent("x", "info", "hello")));
}

TEST_CASE("stages round-trip and PutStage replaces the row of the same index") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  StageRecord math;
  math.stage_index = 1;
  math.name = "math-rl";
  math.domain = "math";
  math.kind = "grpo";
  math.total_steps = 40;
  StageRecord sft;
  sft.stage_index = 0;
  sft.name = "warm-start";
  sft.domain = "chat";
  sft.kind = "sft";
  sft.total_steps = 10;
  sft.start_version = 0;
  sft.end_version = 10;
  sft.state = "done";
  REQUIRE(store->PutStage(id, math).ok());
  REQUIRE(store->PutStage(id, sft).ok());
  math.state = "running";
  math.start_version = 10;
  REQUIRE(store->PutStage(id, math).ok());

  auto stages = store->Stages(id);
  REQUIRE(stages.ok());
  REQUIRE(stages->size() == 2);
  const StageRecord& a = (*stages)[0];
  CHECK(a.stage_index == 0);
  CHECK(a.name == "warm-start");
  CHECK(a.domain == "chat");
  CHECK(a.kind == "sft");
  CHECK(a.total_steps == 10);
  CHECK(a.start_version == 0);
  CHECK(a.end_version == 10);
  CHECK(a.state == "done");
  const StageRecord& b = (*stages)[1];
  CHECK(b.stage_index == 1);
  CHECK(b.name == "math-rl");
  CHECK(b.state == "running");
  CHECK(b.start_version == 10);
  CHECK(b.end_version == -1);
}

TEST_CASE("steps round-trip every field including the extra JSON, ordered by stage then step") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  REQUIRE(store->RecordStep(id, MakeStep(1, 0)).ok());
  REQUIRE(store->RecordStep(id, MakeStep(0, 1)).ok());
  REQUIRE(store->RecordStep(id, MakeStep(0, 0)).ok());

  CHECK(StepKeys(*store, id) == std::vector<std::pair<int, int64_t>>{{0, 0}, {0, 1}, {1, 0}});
  auto steps = store->Steps(id);
  REQUIRE(steps.ok());
  const StepRecord want = MakeStep(0, 1);
  const StepRecord& got = (*steps)[1];
  CHECK(got.policy_version == want.policy_version);
  CHECK(got.reward_mean == want.reward_mean);
  CHECK(got.reward_std == want.reward_std);
  CHECK(got.filtered_fraction == want.filtered_fraction);
  CHECK(got.response_tokens_mean == want.response_tokens_mean);
  CHECK(got.truncation_rate == want.truncation_rate);
  CHECK(got.loss == want.loss);
  CHECK(got.entropy == want.entropy);
  CHECK(got.logprob_mismatch == want.logprob_mismatch);
  CHECK(got.generate_s == want.generate_s);
  CHECK(got.verify_s == want.verify_s);
  CHECK(got.train_s == want.train_s);
  CHECK(got.sync_s == want.sync_s);
  CHECK(got.total_s == want.total_s);
  CHECK(got.extra == want.extra);
  CHECK(got.extra["refill_rounds"] == 2);
  CHECK(got.created_at == want.created_at);
}

TEST_CASE("recording the same step twice is an error and keeps the first row") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  REQUIRE(store->RecordStep(id, MakeStep(0, 0)).ok());
  StepRecord dup = MakeStep(0, 0);
  dup.reward_mean = 0.99;
  absl::Status status = store->RecordStep(id, dup, MakeCheckpoint(0, 1));
  CHECK(absl::IsAlreadyExists(status));
  CHECK(std::string(status.message()).find("recording step 0 of stage 0") != std::string::npos);
  auto steps = store->Steps(id);
  REQUIRE(steps.ok());
  REQUIRE(steps->size() == 1);
  CHECK((*steps)[0].reward_mean == MakeStep(0, 0).reward_mean);
  // The checkpoint of the failed transaction was not written either.
  auto latest = store->LatestCheckpoint(id);
  REQUIRE(latest.ok());
  CHECK(!latest->has_value());
}

TEST_CASE("a step and its checkpoint are written together or not at all") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);

  REQUIRE(store->RecordStep(id, MakeStep(0, 0), MakeCheckpoint(0, 1)).ok());
  auto latest = store->LatestCheckpoint(id);
  REQUIRE(latest.ok());
  REQUIRE(latest->has_value());
  CHECK((*latest)->steps_done == 1);
  CHECK((*latest)->path == MakeCheckpoint(0, 1).path);
  CHECK((*latest)->weights_sha256 == std::string(64, 'a'));
  CHECK((*latest)->policy_version == 1);
  CHECK((*latest)->created_at == 1700000500.0);

  // The step insert succeeds, then the checkpoint violates the schema
  // (negative steps_done): the whole transaction must roll back.
  absl::Status status = store->RecordStep(id, MakeStep(0, 1), MakeCheckpoint(0, -1));
  CHECK(!status.ok());
  CHECK(std::string(status.message()).find("recording checkpoint") != std::string::npos);
  CHECK(StepKeys(*store, id) == std::vector<std::pair<int, int64_t>>{{0, 0}});
  latest = store->LatestCheckpoint(id);
  REQUIRE(latest.ok());
  CHECK((*latest)->steps_done == 1);
}

TEST_CASE("the latest checkpoint is the highest stage, then the most steps") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  auto none = store->LatestCheckpoint(id);
  REQUIRE(none.ok());
  CHECK(!none->has_value());
  REQUIRE(store->RecordCheckpoint(id, MakeCheckpoint(0, 20)).ok());
  REQUIRE(store->RecordCheckpoint(id, MakeCheckpoint(1, 5)).ok());
  REQUIRE(store->RecordCheckpoint(id, MakeCheckpoint(1, 3)).ok());
  auto latest = store->LatestCheckpoint(id);
  REQUIRE(latest.ok());
  REQUIRE(latest->has_value());
  CHECK((*latest)->stage_index == 1);
  CHECK((*latest)->steps_done == 5);
}

TEST_CASE("evaluations round-trip and a repeated point replaces the earlier row") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  REQUIRE(store->AddEval(id, MakeEval(1, 10, 1)).ok());
  REQUIRE(store->AddEval(id, MakeEval(0, -1, 0)).ok());
  EvalRecord redo = MakeEval(0, -1, 0);
  redo.reward_mean = 0.75;
  REQUIRE(store->AddEval(id, redo).ok());

  auto evals = store->Evals(id);
  REQUIRE(evals.ok());
  REQUIRE(evals->size() == 2);
  const EvalRecord& first = (*evals)[0];
  CHECK(first.after_stage_index == 0);
  CHECK(first.at_step == -1);
  CHECK(first.domain_stage_index == 0);
  CHECK(first.domain == "domain0");
  CHECK(first.reward_mean == 0.75);
  CHECK(first.samples == 64);
  CHECK(first.created_at == 1700000600.0);
  CHECK((*evals)[1].after_stage_index == 1);
  CHECK((*evals)[1].at_step == 10);
  CHECK((*evals)[1].reward_mean == MakeEval(1, 10, 1).reward_mean);
}

TEST_CASE("events are returned oldest first and can be tailed by sequence") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  std::string other = CreateJobOrDie(*store, "other");
  REQUIRE(store->AddEvent(id, "info", "stage 0 started").ok());
  REQUIRE(store->AddEvent(other, "info", "not mine").ok());
  REQUIRE(store->AddEvent(id, "warning", "verifier slow").ok());
  REQUIRE(store->AddEvent(id, "error", "learner died").ok());

  auto events = store->Events(id);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 3);
  CHECK((*events)[0].level == "info");
  CHECK((*events)[0].message == "stage 0 started");
  CHECK((*events)[1].level == "warning");
  CHECK((*events)[2].message == "learner died");
  CHECK((*events)[0].sequence < (*events)[1].sequence);
  CHECK((*events)[0].time > 1.6e9);

  auto tail = store->Events(id, (*events)[1].sequence);
  REQUIRE(tail.ok());
  REQUIRE(tail->size() == 1);
  CHECK((*tail)[0].message == "learner died");
}

TEST_CASE("retired prompts are kept per stage without duplicates") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  REQUIRE(store->RetirePrompts(id, 0, 10, {"p3", "p1"}).ok());
  REQUIRE(store->RetirePrompts(id, 0, 20, {"p1", "p2"}).ok());
  REQUIRE(store->RetirePrompts(id, 1, 5, {"q1"}).ok());
  auto stage0 = store->RetiredPrompts(id, 0);
  REQUIRE(stage0.ok());
  CHECK(*stage0 == std::vector<std::string>{"p1", "p2", "p3"});
  auto stage1 = store->RetiredPrompts(id, 1);
  REQUIRE(stage1.ok());
  CHECK(*stage1 == std::vector<std::string>{"q1"});
}

TEST_CASE("rolling back to a checkpoint removes exactly the rows after it") {
  TempDir dir;
  auto store = OpenOrDie(dir.File("jobs.db"));
  std::string id = CreateJobOrDie(*store);
  std::string bystander = CreateJobOrDie(*store, "bystander");

  // Stage 0: steps 0..9, checkpoints after 5 and 10 steps. Stage 1: steps 0..6,
  // checkpoints after 4 and 7 steps. The crash point is stage 1, 4 steps.
  for (int64_t s = 0; s < 10; ++s) {
    std::optional<CheckpointRecord> cp;
    if (s == 4 || s == 9) cp = MakeCheckpoint(0, s + 1);
    REQUIRE(store->RecordStep(id, MakeStep(0, s), cp).ok());
  }
  for (int64_t s = 0; s < 7; ++s) {
    std::optional<CheckpointRecord> cp;
    if (s == 3 || s == 6) cp = MakeCheckpoint(1, s + 1);
    REQUIRE(store->RecordStep(id, MakeStep(1, s), cp).ok());
  }
  REQUIRE(store->RecordStep(bystander, MakeStep(1, 6)).ok());
  REQUIRE(store->RecordCheckpoint(bystander, MakeCheckpoint(2, 1)).ok());
  for (auto [after, at] : std::vector<std::pair<int, int64_t>>{
           {0, -1}, {0, 10}, {1, -1}, {1, 4}, {1, 5}, {1, 7}, {2, -1}}) {
    REQUIRE(store->AddEval(id, MakeEval(after, at, 0)).ok());
  }
  REQUIRE(store->AddEval(bystander, MakeEval(2, -1, 0)).ok());
  REQUIRE(store->RetirePrompts(id, 0, 10, {"a"}).ok());
  REQUIRE(store->RetirePrompts(id, 1, 4, {"b"}).ok());
  REQUIRE(store->RetirePrompts(id, 1, 5, {"c"}).ok());
  REQUIRE(store->RetirePrompts(id, 2, 0, {"d"}).ok());
  REQUIRE(store->RetirePrompts(bystander, 1, 5, {"e"}).ok());

  auto removed = store->RollBackTo(id, MakeCheckpoint(1, 4));
  REQUIRE(removed.ok());
  // Stage 1 steps 4, 5, 6 are gone; steps 0..3 made the checkpoint.
  CHECK(*removed == 3);

  std::vector<std::pair<int, int64_t>> want_steps;
  for (int64_t s = 0; s < 10; ++s) want_steps.emplace_back(0, s);
  for (int64_t s = 0; s < 4; ++s) want_steps.emplace_back(1, s);
  CHECK(StepKeys(*store, id) == want_steps);

  auto evals = store->Evals(id);
  REQUIRE(evals.ok());
  std::vector<std::pair<int, int64_t>> eval_keys;
  for (const EvalRecord& e : *evals) eval_keys.emplace_back(e.after_stage_index, e.at_step);
  CHECK(eval_keys == std::vector<std::pair<int, int64_t>>{{0, -1}, {0, 10}, {1, -1}, {1, 4}});

  auto retired0 = store->RetiredPrompts(id, 0);
  auto retired1 = store->RetiredPrompts(id, 1);
  auto retired2 = store->RetiredPrompts(id, 2);
  REQUIRE((retired0.ok() && retired1.ok() && retired2.ok()));
  CHECK(*retired0 == std::vector<std::string>{"a"});
  CHECK(*retired1 == std::vector<std::string>{"b"});
  CHECK(retired2->empty());

  auto latest = store->LatestCheckpoint(id);
  REQUIRE(latest.ok());
  REQUIRE(latest->has_value());
  CHECK((*latest)->stage_index == 1);
  CHECK((*latest)->steps_done == 4);

  // The other job is untouched.
  CHECK(StepKeys(*store, bystander) == std::vector<std::pair<int, int64_t>>{{1, 6}});
  auto other_latest = store->LatestCheckpoint(bystander);
  REQUIRE(other_latest.ok());
  CHECK((*other_latest)->stage_index == 2);
  auto other_evals = store->Evals(bystander);
  REQUIRE(other_evals.ok());
  CHECK(other_evals->size() == 1);
  auto other_retired = store->RetiredPrompts(bystander, 1);
  REQUIRE(other_retired.ok());
  CHECK(*other_retired == std::vector<std::string>{"e"});

  // The walker redoes step 4 of stage 1: the row can be written again.
  CHECK(store->RecordStep(id, MakeStep(1, 4)).ok());
}

TEST_CASE("two stores on the same file see each other's writes") {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  auto writer = OpenOrDie(path);
  auto reader = OpenOrDie(path);
  std::string id = CreateJobOrDie(*writer);
  REQUIRE(writer->RecordStep(id, MakeStep(0, 0)).ok());
  REQUIRE(writer->SetJobState(id, JobState::kRunning).ok());

  auto job = reader->GetJob(id);
  REQUIRE(job.ok());
  CHECK(job->state == JobState::kRunning);
  CHECK(StepKeys(*reader, id) == std::vector<std::pair<int, int64_t>>{{0, 0}});

  // And the other way round: `orchestrator cancel` writes, the job reads.
  REQUIRE(reader->SetJobState(id, JobState::kCancelled).ok());
  job = writer->GetJob(id);
  REQUIRE(job.ok());
  CHECK(job->state == JobState::kCancelled);
}

TEST_CASE("two stores writing the same file at once both succeed") {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  auto a = OpenOrDie(path);
  auto b = OpenOrDie(path);
  std::string id_a = CreateJobOrDie(*a, "a");
  std::string id_b = CreateJobOrDie(*b, "b");
  constexpr int kSteps = 40;
  std::atomic<int> failures{0};
  auto writer = [&failures](JobStore* store, std::string id) {
    for (int s = 0; s < kSteps; ++s) {
      if (!store->RecordStep(id, MakeStep(0, s), MakeCheckpoint(0, s + 1)).ok()) ++failures;
    }
  };
  std::thread ta(writer, a.get(), id_a);
  std::thread tb(writer, b.get(), id_b);
  ta.join();
  tb.join();
  CHECK(failures.load() == 0);
  CHECK(StepKeys(*b, id_a).size() == kSteps);
  CHECK(StepKeys(*a, id_b).size() == kSteps);
}

TEST_CASE("reopening the database file keeps every record") {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  std::string id;
  {
    auto store = OpenOrDie(path);
    id = CreateJobOrDie(*store);
    REQUIRE(store->RecordStep(id, MakeStep(0, 0), MakeCheckpoint(0, 1)).ok());
    REQUIRE(store->AddEval(id, MakeEval(0, -1, 0)).ok());
    REQUIRE(store->AddEvent(id, "info", "started").ok());
  }
  auto store = OpenOrDie(path);
  auto job = store->GetJob(id);
  REQUIRE(job.ok());
  CHECK(job->name == "demo");
  CHECK(StepKeys(*store, id).size() == 1);
  auto latest = store->LatestCheckpoint(id);
  REQUIRE(latest.ok());
  CHECK(latest->has_value());
  auto evals = store->Evals(id);
  REQUIRE(evals.ok());
  CHECK(evals->size() == 1);
  auto events = store->Events(id);
  REQUIRE(events.ok());
  CHECK(events->size() == 1);
}

TEST_CASE("the database runs in WAL mode and records its schema version") {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  auto store = OpenOrDie(path);
  // Inspect the file with a separate raw connection, as another process would.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  auto single_text = [db](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  };
  CHECK(single_text("PRAGMA journal_mode") == "wal");
  CHECK(single_text("SELECT version FROM schema_version") == "1");
  sqlite3_close_v2(db);
}

TEST_CASE("a database from a newer schema is refused with a clear error") {
  TempDir dir;
  const std::string path = dir.File("jobs.db");
  { OpenOrDie(path); }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  sqlite3_close_v2(db);
  auto store = JobStore::Open(path);
  CHECK(absl::IsFailedPrecondition(store.status()));
  CHECK(std::string(store.status().message()).find("schema version 99") != std::string::npos);
}

TEST_CASE("a file that is not a database gives an error naming the path") {
  TempDir dir;
  const std::string path = dir.File("not-a-db.txt");
  {
    std::ofstream out(path);
    out << "this is a plain text file, not an SQLite database\n";
    for (int i = 0; i < 100; ++i) out << "filler line " << i << "\n";
  }
  auto store = JobStore::Open(path);
  REQUIRE(!store.ok());
  INFO(store.status().ToString());
  CHECK(absl::IsDataLoss(store.status()));
  const std::string message(store.status().message());
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("file is not a database") != std::string::npos);
}

TEST_CASE("a database in a missing directory gives an error naming the path") {
  TempDir dir;
  const std::string path = dir.File("missing/jobs.db");
  auto store = JobStore::Open(path);
  REQUIRE(!store.ok());
  CHECK(std::string(store.status().message()).find(path) != std::string::npos);
}

}  // namespace
}  // namespace cascade::orchestrator
