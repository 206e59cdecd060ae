// A contained, fast runner for untrusted programs.
//
// Every Run() starts the program as PID 1 of fresh PID, mount, IPC and UTS
// namespaces with no network, a read-only view of the host file system, a
// private tmpfs at /tmp (its working directory) and /dev/shm, an unprivileged
// user, rlimits, a seccomp filter, and (where the host offers them) its own
// memory and pids cgroups. When PID 1 exits or is killed, the kernel kills
// every other process of the run, so daemons and fork bombs cannot outlive it.
//
// Speed: the child is created with clone(CLONE_VM | CLONE_VFORK) like
// posix_spawn, so no page tables are copied; namespace and mount set-up cost
// ~0.15 ms here. A fresh network namespace costs ~0.6 ms per run, so when
// running as root every run joins one empty network namespace created at
// start-up (no interfaces, loopback down); see DESIGN notes in sandbox.cc.
//
// Thread-safety: a Sandbox is thread-safe; Run() may be called concurrently
// (up to `max_concurrency` runs proceed at once, further callers wait).
#ifndef CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_SANDBOX_H_
#define CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_SANDBOX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/deadline.h"

namespace cascade::verifier {

// Which protections the host allows; probed once by Sandbox::Create.
struct SandboxCapabilities {
  bool running_as_root = false;   // euid 0: drop to per-slot uids with setuid
  bool user_namespace = false;    // unprivileged: map the run to "nobody" in a userns
  bool pid_namespace = false;     // every descendant dies with the run
  bool mount_namespace = false;   // read-only root, private /tmp and /dev/shm
  bool net_namespace = false;     // no network interfaces
  bool shared_empty_netns = false;  // runs join one pre-made empty netns (root only)
  bool proc_remount = false;      // /proc shows only the run's processes
  bool seccomp = false;           // dangerous syscalls kill the process
  int cgroup_version = 0;         // 0: none usable, 1 or 2
  bool cgroup_memory = false;     // per-run memory limit, peak and OOM events
  bool cgroup_pids = false;       // per-run process limit
  std::vector<std::string> missing;  // protections wanted but unavailable

  // True when every protection the sandbox needs against untrusted code is
  // active (cgroups may be replaced by rlimits).
  bool FullyContained() const;
  // One line for the start-up log, e.g.
  // "sandbox: root+setuid pidns mntns netns(shared) seccomp cgroup-v1(memory,pids)".
  std::string ToString() const;
};

struct SandboxOptions {
  // Runs allowed at once; 0 = the number of CPUs.
  int max_concurrency = 0;
  // Host directory holding per-run code directories; "" = a fresh
  // /tmp/cascade-sandbox-<pid>, removed by the destructor.
  std::string work_root;
  // First uid (and gid) used for runs when running as root; slot k runs as
  // uid_base + k so concurrent runs cannot signal or count against each other.
  int uid_base = 61000;
  // Run untrusted code even when a protection (namespaces, seccomp, an
  // unprivileged user) is missing. Off: Create() fails naming what is missing.
  bool allow_degraded = false;
  // Use cgroups when available (off: rlimits only).
  bool use_cgroups = true;
  // Size of the private /tmp tmpfs of every run (also capped by the memory limit
  // through the cgroup, since tmpfs pages are charged to it).
  int64_t tmpfs_bytes = 256LL << 20;
};

// One program execution.
struct RunSpec {
  std::vector<std::string> argv;   // argv[0] is an absolute path
  std::vector<std::string> env;    // "KEY=VALUE"; nothing is inherited
  std::string stdin_data;
  // Host directory visible inside the run as kCodeDirInside; read-only unless
  // `code_dir_writable` (compilers write their output there).
  std::string code_dir;
  bool code_dir_writable = false;
  double cpu_time_s = 2.0;         // CPU seconds (rlimit plus a check on usage)
  double wall_time_s = 4.0;        // wall clock; the whole process tree is killed
  int64_t memory_bytes = 512LL << 20;
  int64_t stdout_bytes = 16LL << 20;   // more is output_limit
  int64_t stderr_bytes = 64LL << 10;   // kept; more is also output_limit
  int64_t file_bytes = 64LL << 20;     // RLIMIT_FSIZE
  int max_processes = 64;          // pids cgroup / RLIMIT_NPROC
  int max_open_files = 256;        // RLIMIT_NOFILE
};

// Where RunSpec::code_dir appears inside a run; the working directory is /tmp.
inline constexpr char kCodeDirInside[] = "/tmp/code";

struct RunResult {
  bool exited = false;       // exited normally (then exit_code is valid)
  int exit_code = 0;
  int term_signal = 0;       // the signal that ended it, 0 when it exited
  bool wall_timeout = false;     // killed at the wall-clock limit
  bool cpu_timeout = false;      // CPU time reached the limit
  bool output_exceeded = false;  // stdout or stderr passed its cap; killed
  bool oom_killed = false;       // the cgroup OOM killer fired
  bool cancelled = false;        // the caller's CancelToken expired
  double wall_s = 0;
  double cpu_s = 0;
  int64_t peak_memory_bytes = 0;  // cgroup peak, else max RSS
  std::string stdout_data;
  std::string stderr_data;
};

class Sandbox {
 public:
  // Probes the host (namespaces, seccomp, cgroups), prepares the shared
  // pieces (seccomp program, empty netns, cgroup parent, work root). Fails with
  // FAILED_PRECONDITION naming the missing protections unless
  // `allow_degraded`.
  static absl::StatusOr<std::unique_ptr<Sandbox>> Create(SandboxOptions options);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  const SandboxCapabilities& capabilities() const;
  const std::string& work_root() const;
  int max_concurrency() const;
  // First uid of the runs (as root, slot k runs as uid_base + k).
  int uid_base() const;
  // Parent cgroup directories of the runs (each run is a child "run-N").
  std::vector<std::string> cgroup_dirs() const;

  // Creates an empty code directory under the work root for one response;
  // remove it with RemoveCodeDir.
  absl::StatusOr<std::string> MakeCodeDir() const;
  void RemoveCodeDir(const std::string& dir) const;

  // Runs one program. Errors are failures of the sandbox itself (INTERNAL),
  // or CANCELLED/DEADLINE_EXCEEDED when `cancel` expired before the start;
  // whatever the program does is a RunResult.
  absl::StatusOr<RunResult> Run(const RunSpec& spec,
                                const CancelToken* cancel = nullptr) const;

  class Impl;

 private:
  explicit Sandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_BACKENDS_CODE_SANDBOX_H_
