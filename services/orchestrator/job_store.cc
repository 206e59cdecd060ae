#include "services/orchestrator/job_store.h"

#include <sqlite3.h>

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace cascade::orchestrator {
namespace {

// Bump when the schema changes and add a step to kMigrations that takes a
// database from version i to i + 1. Version 1 is created from scratch.
constexpr int kSchemaVersion = 1;

// A writer that finds the database locked waits this long before failing;
// `orchestrator status` readers never block writers in WAL mode, but two
// writers (a job and `orchestrator cancel`) can meet.
constexpr int kBusyTimeoutMs = 5000;

// Creates schema version 1. No foreign keys: every table carries job_id and
// the store itself checks that the job exists, which keeps later migrations
// (table rebuilds) free of cascading-constraint surprises.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE jobs (
  job_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  config_text TEXT NOT NULL,
  source TEXT NOT NULL,
  output_dir TEXT NOT NULL,
  state TEXT NOT NULL,
  error TEXT NOT NULL,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
CREATE TABLE stages (
  job_id TEXT NOT NULL,
  stage_index INTEGER NOT NULL CHECK (stage_index >= 0),
  name TEXT NOT NULL,
  domain TEXT NOT NULL,
  kind TEXT NOT NULL,
  total_steps INTEGER NOT NULL,
  start_version INTEGER NOT NULL,
  end_version INTEGER NOT NULL,
  state TEXT NOT NULL,
  PRIMARY KEY (job_id, stage_index)
);
CREATE TABLE steps (
  job_id TEXT NOT NULL,
  stage_index INTEGER NOT NULL CHECK (stage_index >= 0),
  step INTEGER NOT NULL CHECK (step >= 0),
  policy_version INTEGER NOT NULL,
  reward_mean REAL NOT NULL,
  reward_std REAL NOT NULL,
  filtered_fraction REAL NOT NULL,
  response_tokens_mean REAL NOT NULL,
  truncation_rate REAL NOT NULL,
  loss REAL NOT NULL,
  entropy REAL NOT NULL,
  logprob_mismatch REAL NOT NULL,
  generate_s REAL NOT NULL,
  verify_s REAL NOT NULL,
  train_s REAL NOT NULL,
  sync_s REAL NOT NULL,
  total_s REAL NOT NULL,
  extra TEXT NOT NULL,
  created_at REAL NOT NULL,
  PRIMARY KEY (job_id, stage_index, step)
);
CREATE TABLE checkpoints (
  job_id TEXT NOT NULL,
  stage_index INTEGER NOT NULL CHECK (stage_index >= 0),
  steps_done INTEGER NOT NULL CHECK (steps_done >= 0),
  policy_version INTEGER NOT NULL,
  path TEXT NOT NULL,
  weights_sha256 TEXT NOT NULL,
  created_at REAL NOT NULL,
  PRIMARY KEY (job_id, stage_index, steps_done)
);
CREATE TABLE evals (
  job_id TEXT NOT NULL,
  after_stage_index INTEGER NOT NULL,
  at_step INTEGER NOT NULL,
  domain_stage_index INTEGER NOT NULL,
  domain TEXT NOT NULL,
  reward_mean REAL NOT NULL,
  samples INTEGER NOT NULL,
  created_at REAL NOT NULL,
  PRIMARY KEY (job_id, after_stage_index, at_step, domain_stage_index)
);
CREATE TABLE events (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  time REAL NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_job ON events (job_id, sequence);
CREATE TABLE retired_prompts (
  job_id TEXT NOT NULL,
  stage_index INTEGER NOT NULL,
  steps_done INTEGER NOT NULL,
  prompt_id TEXT NOT NULL,
  PRIMARY KEY (job_id, stage_index, prompt_id)
);
)sql";

// kMigrations[i] takes the schema from version i + 1 to i + 2. Empty while
// only version 1 exists.
constexpr const char* kMigrations[] = {nullptr};

double NowUnixSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

// Maps an SQLite result code onto the closest canonical code, so callers can
// retry UNAVAILABLE (locked past the busy timeout) and report DATA_LOSS.
absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CONSTRAINT:
      return absl::StatusCode::kAlreadyExists;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return absl::StatusCode::kDataLoss;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_FULL:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status SqliteError(sqlite3* db, int rc, const std::string& path,
                         absl::string_view operation) {
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return absl::Status(CodeFor(rc),
                      absl::StrCat("job store ", path, ": ", operation, ": ", message));
}

// One prepared statement; parameters are bound by 1-based index, never
// spliced into the SQL text.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, absl::string_view operation)
      : db_(db), path_(path), operation_(operation) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status Prepare(absl::string_view sql) {
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) return Error(rc);
    return absl::OkStatus();
  }

  // Binding only fails on a wrong index or out of memory; the first failure
  // is kept and reported by Step so call sites stay readable.
  Statement& Bind(int index, const std::string& value) {
    Check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
    return *this;
  }
  Statement& Bind(int index, int64_t value) {
    Check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value) {
    Check(sqlite3_bind_double(stmt_, index, value));
    return *this;
  }

  // True when a row is ready, false when the statement is done.
  absl::StatusOr<bool> Step() {
    if (!bind_status_.ok()) return bind_status_;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(rc);
  }

  // Runs a statement that returns no rows.
  absl::Status Run() {
    ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return absl::OkStatus();
  }

  // Makes the statement ready to run again with new bindings.
  absl::Status Reset() {
    int rc = sqlite3_reset(stmt_);
    if (rc != SQLITE_OK) return Error(rc);
    return absl::OkStatus();
  }

  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return "";
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  double Real(int column) const { return sqlite3_column_double(stmt_, column); }

  absl::Status Error(int rc) const { return SqliteError(db_, rc, path_, operation_); }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(rc);
  }

  sqlite3* db_;
  const std::string& path_;
  std::string operation_;
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status bind_status_;
};

// Rolls back an open transaction unless Commit succeeded, so every early
// return leaves the database as it was.
class Transaction {
 public:
  Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) {}
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // IMMEDIATE takes the write lock up front: a deferred transaction that
  // reads first and writes later can fail with SQLITE_BUSY without waiting
  // for the busy timeout when another connection wrote in between.
  absl::Status Begin(absl::string_view operation) {
    operation_ = std::string(operation);
    int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, path_, absl::StrCat("beginning ", operation_));
    open_ = true;
    return absl::OkStatus();
  }
  absl::Status Commit() {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
      return SqliteError(db_, rc, path_, absl::StrCat("committing ", operation_));
    open_ = false;
    return absl::OkStatus();
  }

 private:
  sqlite3* db_;
  const std::string& path_;
  std::string operation_;
  bool open_ = false;
};

// "job-YYYYMMDD-HHMMSS-xxxx": sortable by creation time, readable in `ls`,
// and the random suffix keeps two submits in the same second apart.
std::string NewJobId() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> hex(0, 0xffff);
  return absl::StrCat("job-", absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()),
                      "-", absl::StrFormat("%04x", hex(rng)));
}

constexpr const char* kStepColumns =
    "stage_index, step, policy_version, reward_mean, reward_std, filtered_fraction, "
    "response_tokens_mean, truncation_rate, loss, entropy, logprob_mismatch, generate_s, "
    "verify_s, train_s, sync_s, total_s, extra, created_at";

constexpr const char* kCheckpointColumns =
    "stage_index, steps_done, policy_version, path, weights_sha256, created_at";

absl::Status InsertCheckpoint(sqlite3* db, const std::string& path, const std::string& job_id,
                              const CheckpointRecord& cp) {
  // A checkpoint written again at the same point (the periodic one that
  // coincides with the stage end) replaces the row instead of failing.
  Statement stmt(db, path, "recording checkpoint");
  RETURN_IF_ERROR(stmt.Prepare(absl::StrCat("INSERT OR REPLACE INTO checkpoints (job_id, ",
                                            kCheckpointColumns, ") VALUES (?,?,?,?,?,?,?)")));
  stmt.Bind(1, job_id)
      .Bind(2, cp.stage_index)
      .Bind(3, cp.steps_done)
      .Bind(4, cp.policy_version)
      .Bind(5, cp.path)
      .Bind(6, cp.weights_sha256)
      .Bind(7, cp.created_at != 0.0 ? cp.created_at : NowUnixSeconds());
  return stmt.Run();
}

CheckpointRecord ReadCheckpoint(const Statement& stmt) {
  CheckpointRecord cp;
  cp.stage_index = static_cast<int>(stmt.Int(0));
  cp.steps_done = stmt.Int(1);
  cp.policy_version = stmt.Int(2);
  cp.path = stmt.Text(3);
  cp.weights_sha256 = stmt.Text(4);
  cp.created_at = stmt.Real(5);
  return cp;
}

absl::StatusOr<JobRecord> ReadJob(const Statement& stmt) {
  JobRecord job;
  job.job_id = stmt.Text(0);
  job.name = stmt.Text(1);
  job.config_text = stmt.Text(2);
  job.source = stmt.Text(3);
  job.output_dir = stmt.Text(4);
  ASSIGN_OR_RETURN(job.state, ParseJobState(stmt.Text(5)));
  job.error = stmt.Text(6);
  job.created_at = stmt.Real(7);
  job.updated_at = stmt.Real(8);
  return job;
}

constexpr const char* kJobColumns =
    "job_id, name, config_text, source, output_dir, state, error, created_at, updated_at";

}  // namespace

std::string JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

absl::StatusOr<JobState> ParseJobState(const std::string& name) {
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled}) {
    if (JobStateName(state) == name) return state;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown job state \"", name,
                   "\" (expected one of: queued, running, succeeded, failed, cancelled)"));
}

JobStore::JobStore(sqlite3* db, std::string path) : path_(std::move(path)), db_(db) {}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close_v2(db_);
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(raw, rc, path, "opening (does its directory exist?)");
    sqlite3_close_v2(raw);
    return status;
  }
  // From here the store owns the handle and closes it on every error path.
  std::unique_ptr<JobStore> store(new JobStore(raw, path));
  absl::MutexLock lock(&store->mu_);
  sqlite3* db = store->db_;
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);

  // journal_mode is the first statement that reads the file, so a file that
  // is not a database fails here with "file is not a database".
  {
    Statement wal(db, path, "enabling WAL mode");
    RETURN_IF_ERROR(wal.Prepare("PRAGMA journal_mode=WAL"));
    ASSIGN_OR_RETURN(bool row, wal.Step());
    std::string mode = row ? wal.Text(0) : "";
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("job store ", path, ": cannot use WAL mode (got journal mode \"", mode,
                       "\"); put the database on a local file system"));
    }
  }
  // FULL: a committed checkpoint row survives power loss, so resume never
  // trusts a row whose write was lost. One fsync per step is cheap next to
  // a training step.
  RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));

  Transaction txn(db, path);
  RETURN_IF_ERROR(txn.Begin("schema setup"));
  RETURN_IF_ERROR(
      store->Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  int version = 0;
  {
    Statement stmt(db, path, "reading schema version");
    RETURN_IF_ERROR(stmt.Prepare("SELECT MAX(version) FROM schema_version"));
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (row) version = static_cast<int>(stmt.Int(0));
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job store ", path, ": schema version ", version, " is newer than this build knows (",
        kSchemaVersion, "); use a newer orchestrator"));
  }
  if (version == 0) {
    RETURN_IF_ERROR(store->Exec(kSchemaV1));
    version = 1;
  }
  for (; version < kSchemaVersion; ++version) {
    RETURN_IF_ERROR(store->Exec(kMigrations[version - 1]));
  }
  RETURN_IF_ERROR(store->Exec("DELETE FROM schema_version"));
  {
    Statement stmt(db, path, "writing schema version");
    RETURN_IF_ERROR(stmt.Prepare("INSERT INTO schema_version (version) VALUES (?)"));
    stmt.Bind(1, version);
    RETURN_IF_ERROR(stmt.Run());
  }
  RETURN_IF_ERROR(txn.Commit());
  return store;
}

absl::Status JobStore::Exec(const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string text = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  std::string head = sql.substr(0, sql.find_first_of("(\n"));
  return absl::Status(CodeFor(rc),
                      absl::StrCat("job store ", path_, ": executing \"", head, "\": ", text));
}

absl::Status JobStore::RequireJob(const std::string& job_id) {
  Statement stmt(db_, path_, "looking up job");
  RETURN_IF_ERROR(stmt.Prepare("SELECT 1 FROM jobs WHERE job_id = ?"));
  stmt.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found in ", path_));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> JobStore::CreateJob(const JobRecord& job) {
  absl::MutexLock lock(&mu_);
  const double now = NowUnixSeconds();
  // A generated id collides only when two jobs are created in the same
  // second with the same 16-bit suffix; draw again then. A caller-chosen id
  // that exists is the caller's error.
  const int attempts = job.job_id.empty() ? 8 : 1;
  absl::Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    std::string id = job.job_id.empty() ? NewJobId() : job.job_id;
    Statement stmt(db_, path_, absl::StrCat("creating job \"", id, "\""));
    RETURN_IF_ERROR(stmt.Prepare(
        absl::StrCat("INSERT INTO jobs (", kJobColumns, ") VALUES (?,?,?,?,?,?,?,?,?)")));
    stmt.Bind(1, id)
        .Bind(2, job.name)
        .Bind(3, job.config_text)
        .Bind(4, job.source)
        .Bind(5, job.output_dir)
        .Bind(6, JobStateName(job.state))
        .Bind(7, job.error)
        .Bind(8, job.created_at != 0.0 ? job.created_at : now)
        .Bind(9, job.updated_at != 0.0 ? job.updated_at : now);
    last = stmt.Run();
    if (last.ok()) return id;
    if (!absl::IsAlreadyExists(last)) return last;
  }
  return last;
}

absl::StatusOr<JobRecord> JobStore::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, path_, "reading job");
  RETURN_IF_ERROR(
      stmt.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE job_id = ?")));
  stmt.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found in ", path_));
  return ReadJob(stmt);
}

absl::StatusOr<std::vector<JobRecord>> JobStore::ListJobs() {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, path_, "listing jobs");
  // rowid breaks ties between jobs created within one clock tick.
  RETURN_IF_ERROR(stmt.Prepare(
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs ORDER BY created_at DESC, rowid DESC")));
  std::vector<JobRecord> jobs;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(JobRecord job, ReadJob(stmt));
    jobs.push_back(std::move(job));
  }
  return jobs;
}

absl::Status JobStore::SetJobState(const std::string& job_id, JobState state,
                                   const std::string& error) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, path_, "setting job state");
  RETURN_IF_ERROR(
      stmt.Prepare("UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE job_id = ?"));
  stmt.Bind(1, JobStateName(state)).Bind(2, error).Bind(3, NowUnixSeconds()).Bind(4, job_id);
  RETURN_IF_ERROR(stmt.Run());
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found in ", path_));
  }
  return absl::OkStatus();
}

absl::Status JobStore::PutStage(const std::string& job_id, const StageRecord& stage) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "writing stage");
  RETURN_IF_ERROR(stmt.Prepare(
      "INSERT OR REPLACE INTO stages (job_id, stage_index, name, domain, kind, total_steps, "
      "start_version, end_version, state) VALUES (?,?,?,?,?,?,?,?,?)"));
  stmt.Bind(1, job_id)
      .Bind(2, stage.stage_index)
      .Bind(3, stage.name)
      .Bind(4, stage.domain)
      .Bind(5, stage.kind)
      .Bind(6, stage.total_steps)
      .Bind(7, stage.start_version)
      .Bind(8, stage.end_version)
      .Bind(9, stage.state);
  return stmt.Run();
}

absl::StatusOr<std::vector<StageRecord>> JobStore::Stages(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "reading stages");
  RETURN_IF_ERROR(stmt.Prepare(
      "SELECT stage_index, name, domain, kind, total_steps, start_version, end_version, state "
      "FROM stages WHERE job_id = ? ORDER BY stage_index"));
  stmt.Bind(1, job_id);
  std::vector<StageRecord> stages;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    StageRecord stage;
    stage.stage_index = static_cast<int>(stmt.Int(0));
    stage.name = stmt.Text(1);
    stage.domain = stmt.Text(2);
    stage.kind = stmt.Text(3);
    stage.total_steps = stmt.Int(4);
    stage.start_version = stmt.Int(5);
    stage.end_version = stmt.Int(6);
    stage.state = stmt.Text(7);
    stages.push_back(std::move(stage));
  }
  return stages;
}

absl::Status JobStore::RecordStep(const std::string& job_id, const StepRecord& step,
                                  const std::optional<CheckpointRecord>& checkpoint) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_, path_);
  RETURN_IF_ERROR(txn.Begin("recording step"));
  RETURN_IF_ERROR(RequireJob(job_id));
  {
    // Plain INSERT: a step recorded twice means the walker redid work that
    // RollBackTo did not clear, which must surface rather than be papered over.
    Statement stmt(db_, path_,
                   absl::StrCat("recording step ", step.step, " of stage ", step.stage_index));
    RETURN_IF_ERROR(stmt.Prepare(absl::StrCat("INSERT INTO steps (job_id, ", kStepColumns,
                                              ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")));
    stmt.Bind(1, job_id)
        .Bind(2, step.stage_index)
        .Bind(3, step.step)
        .Bind(4, step.policy_version)
        .Bind(5, step.reward_mean)
        .Bind(6, step.reward_std)
        .Bind(7, step.filtered_fraction)
        .Bind(8, step.response_tokens_mean)
        .Bind(9, step.truncation_rate)
        .Bind(10, step.loss)
        .Bind(11, step.entropy)
        .Bind(12, step.logprob_mismatch)
        .Bind(13, step.generate_s)
        .Bind(14, step.verify_s)
        .Bind(15, step.train_s)
        .Bind(16, step.sync_s)
        .Bind(17, step.total_s)
        .Bind(18, step.extra.dump())
        .Bind(19, step.created_at != 0.0 ? step.created_at : NowUnixSeconds());
    RETURN_IF_ERROR(stmt.Run());
  }
  if (checkpoint.has_value()) {
    RETURN_IF_ERROR(InsertCheckpoint(db_, path_, job_id, *checkpoint));
  }
  return txn.Commit();
}

absl::Status JobStore::RecordCheckpoint(const std::string& job_id,
                                        const CheckpointRecord& checkpoint) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  return InsertCheckpoint(db_, path_, job_id, checkpoint);
}

absl::StatusOr<std::vector<StepRecord>> JobStore::Steps(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "reading steps");
  RETURN_IF_ERROR(stmt.Prepare(absl::StrCat("SELECT ", kStepColumns,
                                            " FROM steps WHERE job_id = ? "
                                            "ORDER BY stage_index, step")));
  stmt.Bind(1, job_id);
  std::vector<StepRecord> steps;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    StepRecord s;
    s.stage_index = static_cast<int>(stmt.Int(0));
    s.step = stmt.Int(1);
    s.policy_version = stmt.Int(2);
    s.reward_mean = stmt.Real(3);
    s.reward_std = stmt.Real(4);
    s.filtered_fraction = stmt.Real(5);
    s.response_tokens_mean = stmt.Real(6);
    s.truncation_rate = stmt.Real(7);
    s.loss = stmt.Real(8);
    s.entropy = stmt.Real(9);
    s.logprob_mismatch = stmt.Real(10);
    s.generate_s = stmt.Real(11);
    s.verify_s = stmt.Real(12);
    s.train_s = stmt.Real(13);
    s.sync_s = stmt.Real(14);
    s.total_s = stmt.Real(15);
    absl::StatusOr<Json> extra =
        ParseJson(stmt.Text(16), absl::StrCat(path_, ": steps[job ", job_id, ", stage ",
                                              s.stage_index, ", step ", s.step, "].extra"));
    if (!extra.ok()) return absl::DataLossError(extra.status().message());
    s.extra = *std::move(extra);
    s.created_at = stmt.Real(17);
    steps.push_back(std::move(s));
  }
  return steps;
}

absl::StatusOr<std::optional<CheckpointRecord>> JobStore::LatestCheckpoint(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "reading latest checkpoint");
  RETURN_IF_ERROR(stmt.Prepare(absl::StrCat(
      "SELECT ", kCheckpointColumns,
      " FROM checkpoints WHERE job_id = ? ORDER BY stage_index DESC, steps_done DESC LIMIT 1")));
  stmt.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<CheckpointRecord>();
  return std::optional<CheckpointRecord>(ReadCheckpoint(stmt));
}

absl::StatusOr<int64_t> JobStore::RollBackTo(const std::string& job_id,
                                             const CheckpointRecord& checkpoint) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_, path_);
  RETURN_IF_ERROR(txn.Begin("rolling back"));
  RETURN_IF_ERROR(RequireJob(job_id));
  // Each statement binds (job_id, stage_index, steps_done) as ?1, ?2, ?3.
  // Step k (0-based) of a stage is the (k+1)-th, so a checkpoint after n
  // steps keeps steps 0..n-1; evaluations and retirements are stamped with
  // the number of steps done, so those at exactly n belong to the checkpoint.
  struct Deletion {
    const char* what;
    const char* sql;
  };
  const Deletion deletions[] = {
      {"deleting steps",
       "DELETE FROM steps WHERE job_id = ?1 AND "
       "(stage_index > ?2 OR (stage_index = ?2 AND step >= ?3))"},
      {"deleting evaluations",
       "DELETE FROM evals WHERE job_id = ?1 AND "
       "(after_stage_index > ?2 OR (after_stage_index = ?2 AND at_step > ?3))"},
      {"deleting retired prompts",
       "DELETE FROM retired_prompts WHERE job_id = ?1 AND "
       "(stage_index > ?2 OR (stage_index = ?2 AND steps_done > ?3))"},
      {"deleting checkpoints",
       "DELETE FROM checkpoints WHERE job_id = ?1 AND "
       "(stage_index > ?2 OR (stage_index = ?2 AND steps_done > ?3))"},
  };
  int64_t steps_removed = 0;
  for (const Deletion& deletion : deletions) {
    Statement stmt(db_, path_, deletion.what);
    RETURN_IF_ERROR(stmt.Prepare(deletion.sql));
    stmt.Bind(1, job_id).Bind(2, checkpoint.stage_index).Bind(3, checkpoint.steps_done);
    RETURN_IF_ERROR(stmt.Run());
    if (&deletion == &deletions[0]) steps_removed = sqlite3_changes(db_);
  }
  RETURN_IF_ERROR(txn.Commit());
  return steps_removed;
}

absl::Status JobStore::AddEval(const std::string& job_id, const EvalRecord& eval) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  // REPLACE: an evaluation interrupted after its row was written and redone
  // on resume overwrites the earlier result for the same point.
  Statement stmt(db_, path_, "recording evaluation");
  RETURN_IF_ERROR(stmt.Prepare(
      "INSERT OR REPLACE INTO evals (job_id, after_stage_index, at_step, domain_stage_index, "
      "domain, reward_mean, samples, created_at) VALUES (?,?,?,?,?,?,?,?)"));
  stmt.Bind(1, job_id)
      .Bind(2, eval.after_stage_index)
      .Bind(3, eval.at_step)
      .Bind(4, eval.domain_stage_index)
      .Bind(5, eval.domain)
      .Bind(6, eval.reward_mean)
      .Bind(7, eval.samples)
      .Bind(8, eval.created_at != 0.0 ? eval.created_at : NowUnixSeconds());
  return stmt.Run();
}

absl::StatusOr<std::vector<EvalRecord>> JobStore::Evals(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "reading evaluations");
  RETURN_IF_ERROR(stmt.Prepare(
      "SELECT after_stage_index, at_step, domain_stage_index, domain, reward_mean, samples, "
      "created_at FROM evals WHERE job_id = ? "
      "ORDER BY after_stage_index, at_step, domain_stage_index"));
  stmt.Bind(1, job_id);
  std::vector<EvalRecord> evals;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    EvalRecord e;
    e.after_stage_index = static_cast<int>(stmt.Int(0));
    e.at_step = stmt.Int(1);
    e.domain_stage_index = static_cast<int>(stmt.Int(2));
    e.domain = stmt.Text(3);
    e.reward_mean = stmt.Real(4);
    e.samples = stmt.Int(5);
    e.created_at = stmt.Real(6);
    evals.push_back(std::move(e));
  }
  return evals;
}

absl::Status JobStore::AddEvent(const std::string& job_id, const std::string& level,
                                const std::string& message) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "recording event");
  RETURN_IF_ERROR(
      stmt.Prepare("INSERT INTO events (job_id, time, level, message) VALUES (?,?,?,?)"));
  stmt.Bind(1, job_id).Bind(2, NowUnixSeconds()).Bind(3, level).Bind(4, message);
  return stmt.Run();
}

absl::StatusOr<std::vector<EventRecord>> JobStore::Events(const std::string& job_id,
                                                          int64_t after) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "reading events");
  RETURN_IF_ERROR(stmt.Prepare(
      "SELECT sequence, time, level, message FROM events WHERE job_id = ? AND sequence > ? "
      "ORDER BY sequence"));
  stmt.Bind(1, job_id).Bind(2, after);
  std::vector<EventRecord> events;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    EventRecord e;
    e.sequence = stmt.Int(0);
    e.time = stmt.Real(1);
    e.level = stmt.Text(2);
    e.message = stmt.Text(3);
    events.push_back(std::move(e));
  }
  return events;
}

absl::Status JobStore::RetirePrompts(const std::string& job_id, int stage_index, int64_t steps_done,
                                     const std::vector<std::string>& prompt_ids) {
  absl::MutexLock lock(&mu_);
  Transaction txn(db_, path_);
  RETURN_IF_ERROR(txn.Begin("retiring prompts"));
  RETURN_IF_ERROR(RequireJob(job_id));
  // IGNORE: a prompt retired once stays retired at its first point, so a
  // rollback past that point is what brings it back.
  Statement stmt(db_, path_, "retiring prompts");
  RETURN_IF_ERROR(stmt.Prepare(
      "INSERT OR IGNORE INTO retired_prompts (job_id, stage_index, steps_done, prompt_id) "
      "VALUES (?,?,?,?)"));
  for (const std::string& prompt_id : prompt_ids) {
    stmt.Bind(1, job_id).Bind(2, stage_index).Bind(3, steps_done).Bind(4, prompt_id);
    RETURN_IF_ERROR(stmt.Run());
    RETURN_IF_ERROR(stmt.Reset());
  }
  return txn.Commit();
}

absl::StatusOr<std::vector<std::string>> JobStore::RetiredPrompts(const std::string& job_id,
                                                                  int stage_index) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(RequireJob(job_id));
  Statement stmt(db_, path_, "reading retired prompts");
  RETURN_IF_ERROR(
      stmt.Prepare("SELECT prompt_id FROM retired_prompts WHERE job_id = ? AND stage_index = ? "
                   "ORDER BY prompt_id"));
  stmt.Bind(1, job_id).Bind(2, stage_index);
  std::vector<std::string> ids;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ids.push_back(stmt.Text(0));
  }
  return ids;
}

}  // namespace cascade::orchestrator
