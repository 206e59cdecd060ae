// Design notes.
//
// 1. Process creation. The child is made with clone(CLONE_VM | CLONE_VFORK |
//    namespace flags): it borrows the caller's address space (no page-table
//    copy: fork() of this process costs ~2 ms on our VMs, this ~0.15 ms) and
//    the calling thread sleeps until the child execs or exits. The child
//    therefore only makes raw system calls on data the parent prepared: no
//    malloc, no locks, and no glibc set*id() wrappers (those signal every
//    thread of the *parent* process to change their ids too).
// 2. The program is PID 1 of its PID namespace. When it exits the kernel kills
//    every other process in the namespace, so a daemon that double-forks and
//    calls setsid() dies with it; a wall-clock timeout kills PID 1 alone.
//    (PID 1 ignores signals it sends itself without a handler; fatal faults
//    such as SIGSEGV and the kernel's SIGKILL still end it.)
// 3. Network. CLONE_NEWNET costs ~0.6 ms per run (and namespace teardown runs
//    in a kernel work queue). As root we create one empty network namespace
//    at start-up and every run setns()es into it: no interfaces, loopback
//    down, so nothing can connect anywhere. Unprivileged (user-namespace)
//    runs cannot join it and get CLONE_NEWNET.
// 4. File system. A private mount namespace; "/" recursively read-only and
//    nosuid; a size-limited tmpfs on /tmp (the working directory) and
//    /dev/shm; the code directory bind-mounted at /tmp/code; a fresh /proc for
//    the PID namespace. All of it vanishes with the namespace.
// 5. Identity. As root every concurrent slot runs as its own uid (uid_base +
//    slot), so RLIMIT_NPROC and kill() cannot reach another run. Unprivileged,
//    a user namespace maps "nobody" to our uid; exec drops the capabilities.
// 6. Limits. Cgroups (v2 preferred, v1 otherwise) give memory (with OOM
//    events and peak usage) and pids limits; rlimits give CPU, file size,
//    open files, core 0, and stand in for memory/pids when no cgroup is
//    writable. Seccomp kills the process on dangerous system calls.
#include "services/verifier/backends/code/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace cascade::verifier {
namespace {

constexpr int kNamespaceFlags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
constexpr size_t kChildStackBytes = 256 << 10;

// ---------------------------------------------------------------------------
// Small file helpers (parent side only).

absl::Status WriteText(const std::string& path, absl::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": ", strerror(errno)));
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return absl::InternalError(absl::StrCat(path, ": write \"", text, "\": ", strerror(err)));
  }
  return absl::OkStatus();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Value of "key N" in a flat-keyed cgroup file (memory.events, oom_control).
int64_t ReadKeyed(const std::string& path, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(ReadText(path), '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t value = 0;
    if (parts.size() == 2 && parts[0] == key && absl::SimpleAtoi(parts[1], &value)) return value;
  }
  return 0;
}

int64_t ReadInt(const std::string& path) {
  int64_t value = 0;
  (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadText(path)), &value);
  return value;
}

// rmdir of a cgroup fails with EBUSY for a moment after its last process was
// reaped; retry briefly.
void RemoveCgroupDir(const std::string& dir) {
  for (int i = 0; i < 200; ++i) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// ---------------------------------------------------------------------------
// Seccomp: built once with libseccomp, exported as raw BPF so that the child
// only needs prctl() (libseccomp allocates, which a vfork child must not).

absl::StatusOr<std::vector<sock_filter>> BuildSeccompProgram() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  struct Releaser {
    scmp_filter_ctx ctx;
    ~Releaser() { seccomp_release(ctx); }
  } releaser{ctx};
  // Killed on sight: debugging other processes, changing mounts, namespaces
  // or the kernel, kernel keyrings, BPF, perf, raw I/O ports, clock changes.
  static const char* const kKilled[] = {
      "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
      "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
      "fsmount", "fspick", "mount_setattr", "unshare", "setns", "kexec_load",
      "kexec_file_load", "bpf", "reboot", "swapon", "swapoff", "init_module",
      "finit_module", "delete_module", "keyctl", "add_key", "request_key",
      "perf_event_open", "acct", "settimeofday", "clock_settime", "clock_adjtime",
      "adjtimex", "iopl", "ioperm", "syslog", "vhangup", "quotactl",
      "quotactl_fd", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at",
      "userfaultfd", "fanotify_init", "nfsservctl", "personality",
      "pidfd_getfd", "kcmp", "sethostname", "setdomainname",
  };
  for (const char* name : kKilled) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, nr, 0) != 0) {
      return absl::InternalError(absl::StrCat("seccomp rule for ", name));
    }
  }
  // clone() may not create namespaces; clone3 passes its flags in memory that
  // BPF cannot inspect, so it reports ENOSYS and libc falls back to clone().
  for (int flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
                   CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP}) {
    if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, static_cast<scmp_datum_t>(flag),
                                 static_cast<scmp_datum_t>(flag))) != 0) {
      return absl::InternalError("seccomp rule for clone");
    }
  }
  int clone3 = seccomp_syscall_resolve_name("clone3");
  if (clone3 != __NR_SCMP_ERROR) {
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 0) != 0) {
      return absl::InternalError("seccomp rule for clone3");
    }
  }
  // TIOCSTI would let a program type into a terminal it inherited.
  if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(ioctl), 1,
                       SCMP_A1(SCMP_CMP_EQ, TIOCSTI)) != 0) {
    return absl::InternalError("seccomp rule for ioctl");
  }

  int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", strerror(errno)));
  int rc = seccomp_export_bpf(ctx, fd);
  off_t size = lseek(fd, 0, SEEK_END);
  std::vector<sock_filter> program;
  if (rc == 0 && size > 0 && size % sizeof(sock_filter) == 0) {
    program.resize(size / sizeof(sock_filter));
    if (pread(fd, program.data(), size, 0) != size) program.clear();
  }
  close(fd);
  if (program.empty()) return absl::InternalError("seccomp_export_bpf failed");
  return program;
}

// ---------------------------------------------------------------------------
// Child side. Everything here runs in the vfork child on memory the parent
// prepared; see note 1.

enum ChildStage : int {
  kStageNone = 0,
  kStageUserNs,
  kStageNetNs,
  kStageMountPrivate,
  kStageMountReadOnly,
  kStageMountTmp,
  kStageMountCode,
  kStageMountShm,
  kStageMountProc,
  kStageChdir,
  kStageCgroup,
  kStageRlimit,
  kStageFds,
  kStageCredentials,
  kStageSeccomp,
  kStageExec,
};

const char* StageName(int stage) {
  switch (stage) {
    case kStageUserNs: return "user namespace id maps";
    case kStageNetNs: return "joining the empty network namespace";
    case kStageMountPrivate: return "making mounts private";
    case kStageMountReadOnly: return "remounting / read-only";
    case kStageMountTmp: return "mounting tmpfs on /tmp";
    case kStageMountCode: return "bind-mounting the code directory";
    case kStageMountShm: return "mounting tmpfs on /dev/shm";
    case kStageMountProc: return "mounting /proc";
    case kStageChdir: return "chdir /tmp";
    case kStageCgroup: return "joining the run's cgroups";
    case kStageRlimit: return "setting rlimits";
    case kStageFds: return "setting up stdio";
    case kStageCredentials: return "dropping to the run's uid";
    case kStageSeccomp: return "loading the seccomp filter";
    case kStageExec: return "exec";
    default: return "unknown";
  }
}

struct ChildLimit {
  int resource;
  rlimit limit;
};

struct ChildArgs {
  // What to do.
  bool user_namespace = false;  // write id maps (we are in a new userns)
  int netns_fd = -1;            // setns() into it when >= 0
  bool mounts = false;          // set up the file-system view
  bool proc = false;            // mount a fresh /proc
  bool code_writable = false;
  const char* code_dir = nullptr;  // host code directory, or null
  const char* tmpfs_options = nullptr;
  const char* shm_options = nullptr;
  const char* setgroups_path = "/proc/self/setgroups";
  const char* uid_map = nullptr;  // "65534 <uid> 1"
  const char* gid_map = nullptr;
  int cgroup_fds[2] = {-1, -1};   // cgroup.procs files to write "0" into
  ChildLimit limits[8];
  int num_limits = 0;
  bool set_ids = false;          // root mode: setresuid/gid to run_uid
  int run_uid = 65534;
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  const sock_fprog* seccomp = nullptr;
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  // Written by the child when it fails (the parent reads them after vfork).
  volatile int failed_stage = kStageNone;
  volatile int failed_errno = 0;
};

// write() of a whole short string to a file; for /proc and cgroup files.
bool ChildWriteFile(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t len = strlen(text);
  bool ok = write(fd, text, len) == static_cast<ssize_t>(len);
  close(fd);
  return ok;
}

bool SetMountAttr(const char* path, unsigned flags, uint64_t set, uint64_t clear) {
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = set;
  attr.attr_clr = clear;
  return syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof attr) == 0;
}

[[noreturn]] void ChildFail(ChildArgs* args, int stage) {
  args->failed_errno = errno;
  args->failed_stage = stage;
  _exit(127);
}

int ChildMain(void* opaque) {
  ChildArgs* args = static_cast<ChildArgs*>(opaque);
  // Signal handlers of the parent must never run here (they would run on the
  // parent's memory); reset every disposition, including SIG_IGN, which exec
  // would otherwise keep.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < _NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);  // fails harmlessly for libc-reserved signals
  }

  if (args->user_namespace) {
    if (!ChildWriteFile(args->setgroups_path, "deny") ||
        !ChildWriteFile("/proc/self/uid_map", args->uid_map) ||
        !ChildWriteFile("/proc/self/gid_map", args->gid_map)) {
      ChildFail(args, kStageUserNs);
    }
  }
  if (args->netns_fd >= 0 && setns(args->netns_fd, CLONE_NEWNET) != 0) {
    ChildFail(args, kStageNetNs);
  }
  if (args->mounts) {
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      ChildFail(args, kStageMountPrivate);
    }
    // A detached copy of the code directory, taken before /tmp is covered (a
    // bind from an fd opened by the parent fails: that mount belongs to the
    // parent's namespace).
    int code_tree = -1;
    if (args->code_dir != nullptr) {
      code_tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, args->code_dir,
                                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
      if (code_tree < 0) ChildFail(args, kStageMountCode);
    }
    if (!SetMountAttr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)) {
      ChildFail(args, kStageMountReadOnly);
    }
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, args->tmpfs_options) != 0) {
      ChildFail(args, kStageMountTmp);
    }
    if (code_tree >= 0) {
      if (mkdir(kCodeDirInside, 0755) != 0 ||
          syscall(SYS_move_mount, code_tree, "", AT_FDCWD, kCodeDirInside,
                  MOVE_MOUNT_F_EMPTY_PATH) != 0 ||
          !SetMountAttr(kCodeDirInside, 0,
                        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                            (args->code_writable ? 0 : MOUNT_ATTR_RDONLY),
                        args->code_writable ? MOUNT_ATTR_RDONLY : 0)) {
        ChildFail(args, kStageMountCode);
      }
    }
    if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, args->shm_options) != 0 &&
        errno != ENOENT) {
      ChildFail(args, kStageMountShm);
    }
    if (args->proc &&
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      ChildFail(args, kStageMountProc);
    }
    if (chdir("/tmp") != 0) ChildFail(args, kStageChdir);
  }
  for (int fd : args->cgroup_fds) {
    if (fd >= 0 && write(fd, "0", 1) != 1) ChildFail(args, kStageCgroup);
  }
  for (int i = 0; i < args->num_limits; ++i) {
    if (setrlimit(static_cast<__rlimit_resource>(args->limits[i].resource),
                  &args->limits[i].limit) != 0) {
      ChildFail(args, kStageRlimit);
    }
  }
  if (dup2(args->stdin_fd, 0) < 0 || dup2(args->stdout_fd, 1) < 0 ||
      dup2(args->stderr_fd, 2) < 0 || syscall(SYS_close_range, 3, ~0U, 0) != 0) {
    ChildFail(args, kStageFds);
  }
  // A session of its own, so that without a PID namespace a process-group kill
  // still reaches the descendants.
  setsid();
  if (args->set_ids) {
    // Raw system calls: the glibc wrappers would change every thread of the
    // parent too (note 1).
    if (syscall(SYS_setgroups, 0, nullptr) != 0 ||
        syscall(SYS_setresgid, args->run_uid, args->run_uid, args->run_uid) != 0 ||
        syscall(SYS_setresuid, args->run_uid, args->run_uid, args->run_uid) != 0) {
      ChildFail(args, kStageCredentials);
    }
  }
  // After the id change, which clears it: die with the calling thread.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(args, kStageSeccomp);
  if (args->seccomp != nullptr &&
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, args->seccomp) != 0) {
    ChildFail(args, kStageSeccomp);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(args->path, args->argv, args->envp);
  ChildFail(args, kStageExec);
}

// Starts ChildMain in a vfork-style child with `flags`; returns its pid (and
// pidfd) once it has exec'd or failed.
struct Spawned {
  pid_t pid = -1;
  int pidfd = -1;
};

absl::StatusOr<Spawned> SpawnChild(ChildArgs* args, int flags) {
  void* stack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return absl::InternalError("mmap of the child stack failed");
  // Block every signal so no handler runs in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int pidfd = -1;
  pid_t pid = clone(ChildMain, static_cast<char*>(stack) + kChildStackBytes,
                    flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, args, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  munmap(stack, kChildStackBytes);
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("clone: ", strerror(clone_errno)));
  }
  return Spawned{pid, pidfd};
}

// Probes whether clone accepts `flags` (the child exits at once).
bool CloneWorks(int flags) {
  ChildArgs args;
  struct Trivial {
    static int Run(void*) { _exit(0); }
  };
  void* stack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return false;
  pid_t pid = clone(&Trivial::Run, static_cast<char*>(stack) + kChildStackBytes,
                    flags | CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  munmap(stack, kChildStackBytes);
  if (pid < 0) return false;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Creates an empty network namespace and returns an fd that keeps it alive.
// The helper child shares our fd table (CLONE_FILES) so the fd it opens is ours.
int MakeEmptyNetns() {
  struct Opener {
    static int Run(void* out) {
      *static_cast<int*>(out) = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      _exit(0);
    }
  };
  int fd = -1;
  void* stack = mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  pid_t pid = clone(&Opener::Run, static_cast<char*>(stack) + kChildStackBytes,
                    CLONE_NEWNET | CLONE_FILES | CLONE_VM | CLONE_VFORK | SIGCHLD, &fd);
  munmap(stack, kChildStackBytes);
  if (pid < 0) return -1;
  waitpid(pid, nullptr, 0);
  return fd;
}

// ---------------------------------------------------------------------------
// Cgroups.

struct CgroupLayout {
  int version = 0;
  // v1: one base directory per controller; v2: one base for both.
  std::string memory_base;
  std::string pids_base;
  std::vector<std::string> created;  // base dirs to remove at shutdown, deepest last
};

struct MountEntry {
  std::string mountpoint;
  std::string fstype;
  std::string super_options;
};

std::vector<MountEntry> ReadMounts() {
  std::vector<MountEntry> mounts;
  for (absl::string_view line : absl::StrSplit(ReadText("/proc/self/mountinfo"), '\n')) {
    // id parent maj:min root mountpoint options [optional...] - fstype source super
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4) continue;
    mounts.push_back({fields[4], *(dash + 1), *(dash + 3)});
  }
  return mounts;
}

// Our own cgroup path per hierarchy ("memory" -> "/a/b", "" -> v2 path).
std::map<std::string, std::string> ReadOwnCgroups() {
  std::map<std::string, std::string> own;
  for (absl::string_view line : absl::StrSplit(ReadText("/proc/self/cgroup"), '\n')) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    if (parts[1].empty()) {
      own[""] = parts[2];
      continue;
    }
    for (absl::string_view controller : absl::StrSplit(parts[1], ',')) {
      own[std::string(controller)] = parts[2];
    }
  }
  return own;
}

bool MakeDir(const std::string& dir) {
  return mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST;
}

// cgroup v2: runs need a parent with memory and pids in subtree_control. The
// "no internal processes" rule forbids that in a cgroup that holds processes,
// so if our own cgroup does, we first move this process into a leaf beside the
// runs (start-up only).
bool SetUpCgroupV2(const std::string& mountpoint, const std::string& own_path,
                   const std::string& name, CgroupLayout* layout) {
  std::string own = mountpoint + (own_path == "/" ? "" : own_path);
  std::string controllers = ReadText(own + "/cgroup.controllers");
  if (controllers.find("memory") == std::string::npos ||
      controllers.find("pids") == std::string::npos) {
    return false;
  }
  if (!WriteText(own + "/cgroup.subtree_control", "+memory +pids").ok()) {
    std::string leaf = absl::StrCat(own, "/cascade-verifier-", getpid());
    if (!MakeDir(leaf) ||
        !WriteText(leaf + "/cgroup.procs", absl::StrCat(getpid())).ok() ||
        !WriteText(own + "/cgroup.subtree_control", "+memory +pids").ok()) {
      rmdir(leaf.c_str());
      return false;
    }
    // Left in place while we live in it; the kernel removes nothing for us.
  }
  std::string base = absl::StrCat(own, "/", name);
  if (!MakeDir(base)) return false;
  if (!WriteText(base + "/cgroup.subtree_control", "+memory +pids").ok()) {
    rmdir(base.c_str());
    return false;
  }
  layout->version = 2;
  layout->memory_base = layout->pids_base = base;
  layout->created.push_back(base);
  return true;
}

void SetUpCgroupV1(const std::vector<MountEntry>& mounts,
                   const std::map<std::string, std::string>& own, const std::string& name,
                   CgroupLayout* layout) {
  for (const char* controller : {"memory", "pids"}) {
    for (const MountEntry& m : mounts) {
      if (m.fstype != "cgroup") continue;
      std::vector<std::string> opts = absl::StrSplit(m.super_options, ',');
      if (std::find(opts.begin(), opts.end(), controller) == opts.end()) continue;
      auto it = own.find(controller);
      std::string path = it == own.end() || it->second == "/" ? "" : it->second;
      std::string base = absl::StrCat(m.mountpoint, path, "/", name);
      // Our own path may not exist in this mount namespace (a container sees
      // its cgroup at the root); fall back to the mount's root.
      if (!MakeDir(base)) {
        base = absl::StrCat(m.mountpoint, "/", name);
        if (!MakeDir(base)) break;
      }
      layout->created.push_back(base);
      (std::string(controller) == "memory" ? layout->memory_base : layout->pids_base) = base;
      break;
    }
  }
  if (!layout->memory_base.empty() || !layout->pids_base.empty()) layout->version = 1;
}

// The cgroups of one run.
struct RunCgroups {
  std::string memory_dir;
  std::string pids_dir;
  int procs_fds[2] = {-1, -1};
  void CloseFds() {
    for (int& fd : procs_fds) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }
};

}  // namespace

// ---------------------------------------------------------------------------

bool SandboxCapabilities::FullyContained() const {
  return pid_namespace && mount_namespace && net_namespace && seccomp &&
         (running_as_root || user_namespace);
}

std::string SandboxCapabilities::ToString() const {
  std::vector<std::string> on;
  on.push_back(running_as_root ? "root+setuid(per-slot uid)"
                               : (user_namespace ? "userns(nobody)" : "same-uid"));
  if (pid_namespace) on.push_back("pidns");
  if (mount_namespace) on.push_back(proc_remount ? "mntns(ro,/proc)" : "mntns(ro)");
  if (net_namespace) on.push_back(shared_empty_netns ? "netns(shared-empty)" : "netns");
  if (seccomp) on.push_back("seccomp");
  if (cgroup_version > 0) {
    std::vector<std::string> controllers;
    if (cgroup_memory) controllers.push_back("memory");
    if (cgroup_pids) controllers.push_back("pids");
    on.push_back(absl::StrCat("cgroup-v", cgroup_version, "(",
                              absl::StrJoin(controllers, ","), ")"));
  } else {
    on.push_back("rlimits-only(no writable cgroup)");
  }
  std::string text = absl::StrCat("sandbox: ", absl::StrJoin(on, " "));
  if (!missing.empty()) absl::StrAppend(&text, "; MISSING: ", absl::StrJoin(missing, ", "));
  return text;
}

class Sandbox::Impl {
 public:
  SandboxOptions options;
  SandboxCapabilities caps;
  std::vector<sock_filter> seccomp_program;
  sock_fprog seccomp_fprog{};
  int netns_fd = -1;
  int clone_flags = 0;
  CgroupLayout cgroups;
  std::string work_root;
  bool owns_work_root = false;
  std::string tmpfs_options;
  std::string shm_options;
  std::string uid_map, gid_map;

  mutable std::mutex mu;
  mutable std::condition_variable slot_freed;
  mutable std::vector<bool> slot_busy;  // guarded by mu
  mutable std::atomic<uint64_t> next_id{0};

  ~Impl() {
    if (netns_fd >= 0) close(netns_fd);
    for (auto it = cgroups.created.rbegin(); it != cgroups.created.rend(); ++it) {
      RemoveCgroupDir(*it);
    }
    if (owns_work_root) {
      std::error_code ec;
      std::filesystem::remove_all(work_root, ec);
    }
  }

  int AcquireSlot() const {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      for (size_t i = 0; i < slot_busy.size(); ++i) {
        if (!slot_busy[i]) {
          slot_busy[i] = true;
          return static_cast<int>(i);
        }
      }
      slot_freed.wait(lock);
    }
  }
  void ReleaseSlot(int slot) const {
    {
      std::lock_guard<std::mutex> lock(mu);
      slot_busy[slot] = false;
    }
    slot_freed.notify_one();
  }

  absl::StatusOr<RunCgroups> MakeRunCgroups(uint64_t id, const RunSpec& spec) const {
    RunCgroups run;
    if (cgroups.version == 0) return run;
    std::string name = absl::StrCat("/run-", id);
    auto cleanup_on_error = [&](absl::Status status) {
      run.CloseFds();
      if (!run.memory_dir.empty()) RemoveCgroupDir(run.memory_dir);
      if (!run.pids_dir.empty() && run.pids_dir != run.memory_dir) RemoveCgroupDir(run.pids_dir);
      return status;
    };
    if (!cgroups.memory_base.empty()) {
      run.memory_dir = cgroups.memory_base + name;
      if (mkdir(run.memory_dir.c_str(), 0755) != 0) {
        run.memory_dir.clear();
        return cleanup_on_error(absl::InternalError(
            absl::StrCat("mkdir ", cgroups.memory_base, name, ": ", strerror(errno))));
      }
      std::string bytes = absl::StrCat(spec.memory_bytes);
      absl::Status st = cgroups.version == 2
                            ? WriteText(run.memory_dir + "/memory.max", bytes)
                            : WriteText(run.memory_dir + "/memory.limit_in_bytes", bytes);
      if (!st.ok()) return cleanup_on_error(st);
      // No swapping around the limit (files may be absent without swap accounting).
      if (cgroups.version == 2) {
        (void)WriteText(run.memory_dir + "/memory.swap.max", "0");
      } else {
        (void)WriteText(run.memory_dir + "/memory.memsw.limit_in_bytes", bytes);
      }
    }
    if (!cgroups.pids_base.empty()) {
      if (cgroups.version == 2) {
        run.pids_dir = run.memory_dir;
      } else {
        run.pids_dir = cgroups.pids_base + name;
        if (mkdir(run.pids_dir.c_str(), 0755) != 0) {
          run.pids_dir.clear();
          return cleanup_on_error(absl::InternalError(
              absl::StrCat("mkdir ", cgroups.pids_base, name, ": ", strerror(errno))));
        }
      }
      absl::Status st = WriteText(run.pids_dir + "/pids.max", absl::StrCat(spec.max_processes));
      if (!st.ok()) return cleanup_on_error(st);
    }
    auto open_procs = [&](const std::string& dir, int* fd) -> absl::Status {
      *fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
      if (*fd >= 0) return absl::OkStatus();
      return absl::InternalError(absl::StrCat("open ", dir, "/cgroup.procs: ", strerror(errno)));
    };
    if (!run.memory_dir.empty()) {
      absl::Status st = open_procs(run.memory_dir, &run.procs_fds[0]);
      if (!st.ok()) return cleanup_on_error(st);
    }
    if (!run.pids_dir.empty() && run.pids_dir != run.memory_dir) {
      absl::Status st = open_procs(run.pids_dir, &run.procs_fds[1]);
      if (!st.ok()) return cleanup_on_error(st);
    }
    return run;
  }

  void FinishRunCgroups(RunCgroups* run, RunResult* result) const {
    run->CloseFds();
    if (!run->memory_dir.empty()) {
      if (cgroups.version == 2) {
        result->peak_memory_bytes = ReadInt(run->memory_dir + "/memory.peak");
        result->oom_killed = ReadKeyed(run->memory_dir + "/memory.events", "oom_kill") > 0;
      } else {
        result->peak_memory_bytes = ReadInt(run->memory_dir + "/memory.max_usage_in_bytes");
        result->oom_killed = ReadKeyed(run->memory_dir + "/memory.oom_control", "oom_kill") > 0;
      }
      RemoveCgroupDir(run->memory_dir);
    }
    if (!run->pids_dir.empty() && run->pids_dir != run->memory_dir) RemoveCgroupDir(run->pids_dir);
  }

  absl::StatusOr<RunResult> Run(const RunSpec& spec, const CancelToken* cancel) const;
};

namespace {

// Reads what is available on `fd` into `out` (keeping at most `keep` bytes);
// returns false at EOF. `total` counts every byte read.
bool Drain(int fd, std::string* out, int64_t keep, int64_t* total) {
  char buffer[65536];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      *total += n;
      if (static_cast<int64_t>(out->size()) < keep) {
        out->append(buffer, std::min<int64_t>(n, keep - out->size()));
      }
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN;  // other errors: treat as closed
  }
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

}  // namespace

absl::StatusOr<RunResult> Sandbox::Impl::Run(const RunSpec& spec,
                                             const CancelToken* cancel) const {
  if (spec.argv.empty()) return absl::InvalidArgumentError("RunSpec.argv is empty");
  if (cancel != nullptr) RETURN_IF_ERROR(cancel->Check());
  const uint64_t id = next_id.fetch_add(1);
  const int slot = AcquireSlot();
  struct SlotGuard {
    const Impl* impl;
    int slot;
    ~SlotGuard() { impl->ReleaseSlot(slot); }
  } slot_guard{this, slot};
  const int run_uid = options.uid_base + slot;

  // 1. Everything the child needs, prepared here (note 1).
  std::vector<char*> argv, envp;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  ChildArgs args;
  args.user_namespace = caps.user_namespace && !caps.running_as_root;
  args.uid_map = uid_map.c_str();
  args.gid_map = gid_map.c_str();
  args.netns_fd = caps.shared_empty_netns ? netns_fd : -1;
  args.mounts = caps.mount_namespace;
  args.proc = caps.proc_remount;
  args.tmpfs_options = tmpfs_options.c_str();
  args.shm_options = shm_options.c_str();
  args.set_ids = caps.running_as_root;
  args.run_uid = run_uid;
  args.seccomp = caps.seccomp ? &seccomp_fprog : nullptr;
  args.path = argv[0];
  args.argv = argv.data();
  args.envp = envp.data();

  auto add_limit = [&](int resource, uint64_t soft, uint64_t hard) {
    args.limits[args.num_limits++] = {resource, {soft, hard}};
  };
  const uint64_t cpu_soft = static_cast<uint64_t>(std::ceil(spec.cpu_time_s));
  add_limit(RLIMIT_CPU, cpu_soft, cpu_soft + 1);
  add_limit(RLIMIT_FSIZE, spec.file_bytes, spec.file_bytes);
  add_limit(RLIMIT_NOFILE, spec.max_open_files, spec.max_open_files);
  add_limit(RLIMIT_CORE, 0, 0);
  // Half the memory limit: deep recursion is common in contest code, and a
  // stack that stops below the cgroup limit overflows with a clean SIGSEGV
  // instead of thrashing against the limit.
  const uint64_t stack = std::min<uint64_t>(spec.memory_bytes / 2, 1ULL << 30);
  add_limit(RLIMIT_STACK, stack, stack);
  if (caps.running_as_root || caps.user_namespace) {
    // Per uid: as root each slot has its own uid; in a user namespace the
    // count is kept per namespace. Same-uid degraded mode would count us.
    add_limit(RLIMIT_NPROC, spec.max_processes, spec.max_processes);
  }
  if (!caps.cgroup_memory) {
    // No memory cgroup: the address-space limit stands in (it over-counts
    // reserved but untouched memory, which judges accept).
    add_limit(RLIMIT_AS, spec.memory_bytes, spec.memory_bytes);
  }

  // 2. Descriptors: stdin from a sealed-size memfd (no writer thread needed),
  //    stdout/stderr through pipes we drain.
  int stdin_fd = memfd_create("stdin", MFD_CLOEXEC);
  if (stdin_fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", strerror(errno)));
  struct FdCloser {
    std::vector<int*> fds;
    ~FdCloser() {
      for (int* fd : fds) CloseFd(fd);
    }
  } closer;
  closer.fds.push_back(&stdin_fd);
  if (!spec.stdin_data.empty() &&
      pwrite(stdin_fd, spec.stdin_data.data(), spec.stdin_data.size(), 0) !=
          static_cast<ssize_t>(spec.stdin_data.size())) {
    return absl::InternalError(absl::StrCat("writing stdin: ", strerror(errno)));
  }
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  closer.fds.insert(closer.fds.end(), {&out_pipe[0], &out_pipe[1], &err_pipe[0], &err_pipe[1]});
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  fcntl(out_pipe[0], F_SETPIPE_SZ, 1 << 20);  // fewer wake-ups for big outputs
  fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
  fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  args.stdin_fd = stdin_fd;
  args.stdout_fd = out_pipe[1];
  args.stderr_fd = err_pipe[1];

  if (!spec.code_dir.empty() && caps.mount_namespace) {
    if (spec.code_dir_writable && caps.running_as_root &&
        chown(spec.code_dir.c_str(), run_uid, run_uid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", spec.code_dir, ": ", strerror(errno)));
    }
    args.code_dir = spec.code_dir.c_str();
    args.code_writable = spec.code_dir_writable;
  }

  ASSIGN_OR_RETURN(RunCgroups run_cgroups, MakeRunCgroups(id, spec));
  args.cgroup_fds[0] = run_cgroups.procs_fds[0];
  args.cgroup_fds[1] = run_cgroups.procs_fds[1];

  // 3. Start it.
  RunResult result;
  const absl::Time start = absl::Now();
  absl::StatusOr<Spawned> spawned = SpawnChild(&args, clone_flags);
  CloseFd(&out_pipe[1]);
  CloseFd(&err_pipe[1]);
  CloseFd(&stdin_fd);
  if (!spawned.ok()) {
    FinishRunCgroups(&run_cgroups, &result);
    return spawned.status();
  }
  const pid_t pid = spawned->pid;
  int pidfd = spawned->pidfd;
  closer.fds.push_back(&pidfd);
  if (args.failed_stage != kStageNone) {
    int status = 0;
    waitpid(pid, &status, 0);
    FinishRunCgroups(&run_cgroups, &result);
    return absl::InternalError(absl::StrCat("sandbox set-up failed while ",
                                            StageName(args.failed_stage), ": ",
                                            strerror(args.failed_errno)));
  }

  // 4. Collect output until the process exits, killing it at the wall-clock
  //    limit, at the output caps, or on cancellation.
  absl::Time wall_deadline = start + absl::Seconds(spec.wall_time_s);
  const bool deadline_binds = cancel != nullptr && cancel->deadline() < wall_deadline;
  if (deadline_binds) wall_deadline = cancel->deadline();
  bool exited = false, out_open = true, err_open = true, killed = false;
  int64_t out_total = 0, err_total = 0;
  absl::Time exit_grace = absl::InfiniteFuture();
  auto kill_run = [&]() {
    if (killed) return;
    killed = true;
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    if (!caps.pid_namespace) kill(-pid, SIGKILL);  // the session it leads
  };
  while (!exited || out_open || err_open) {
    absl::Time now = absl::Now();
    if (!exited && now >= wall_deadline && !killed) {
      if (deadline_binds) {
        result.cancelled = true;
      } else {
        result.wall_timeout = true;
      }
      kill_run();
    }
    if (!exited && cancel != nullptr && !killed && cancel->Expired()) {
      result.cancelled = true;
      kill_run();
    }
    // Once the process is gone, its pipes close at once (its namespace died
    // with it); a descendant outside a PID namespace may hold them: give up
    // after a moment.
    if (exited && now >= exit_grace) break;
    absl::Duration wait = std::min(wall_deadline - now, absl::Milliseconds(100));
    if (killed || exited) wait = absl::Milliseconds(20);
    pollfd fds[3];
    int nfds = 0;
    int out_index = -1, err_index = -1, pid_index = -1;
    if (out_open) {
      out_index = nfds;
      fds[nfds++] = {out_pipe[0], POLLIN, 0};
    }
    if (err_open) {
      err_index = nfds;
      fds[nfds++] = {err_pipe[0], POLLIN, 0};
    }
    if (!exited) {
      pid_index = nfds;
      fds[nfds++] = {pidfd, POLLIN, 0};
    }
    int timeout_ms = static_cast<int>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(wait) + 1));
    int ready = poll(fds, nfds, timeout_ms);
    if (ready < 0 && errno != EINTR) break;
    if (out_index >= 0 && fds[out_index].revents != 0) {
      out_open = Drain(out_pipe[0], &result.stdout_data, spec.stdout_bytes + 1, &out_total);
    }
    if (err_index >= 0 && fds[err_index].revents != 0) {
      err_open = Drain(err_pipe[0], &result.stderr_data, spec.stderr_bytes, &err_total);
    }
    if (out_total > spec.stdout_bytes || err_total > spec.stderr_bytes) {
      if (!result.output_exceeded) result.output_exceeded = true;
      kill_run();
    }
    if (pid_index >= 0 && fds[pid_index].revents != 0) {
      exited = true;
      exit_grace = absl::Now() + absl::Seconds(1);
    }
  }
  result.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  if (static_cast<int64_t>(result.stdout_data.size()) > spec.stdout_bytes) {
    result.stdout_data.resize(spec.stdout_bytes);
  }

  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  result.cpu_s = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
                 usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  result.cpu_timeout = result.cpu_s > spec.cpu_time_s || result.term_signal == SIGXCPU;
  FinishRunCgroups(&run_cgroups, &result);
  if (result.peak_memory_bytes == 0) result.peak_memory_bytes = usage.ru_maxrss * 1024LL;
  return result;
}

// ---------------------------------------------------------------------------

Sandbox::Sandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sandbox::~Sandbox() = default;

const SandboxCapabilities& Sandbox::capabilities() const { return impl_->caps; }
const std::string& Sandbox::work_root() const { return impl_->work_root; }
int Sandbox::max_concurrency() const { return static_cast<int>(impl_->slot_busy.size()); }
int Sandbox::uid_base() const { return impl_->options.uid_base; }
std::vector<std::string> Sandbox::cgroup_dirs() const { return impl_->cgroups.created; }

absl::StatusOr<std::string> Sandbox::MakeCodeDir() const {
  std::string dir = absl::StrCat(impl_->work_root, "/code-", impl_->next_id.fetch_add(1));
  if (mkdir(dir.c_str(), 0755) != 0) {
    return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", strerror(errno)));
  }
  return dir;
}

void Sandbox::RemoveCodeDir(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

absl::StatusOr<RunResult> Sandbox::Run(const RunSpec& spec, const CancelToken* cancel) const {
  return impl_->Run(spec, cancel);
}

absl::StatusOr<std::unique_ptr<Sandbox>> Sandbox::Create(SandboxOptions options) {
  auto impl = std::make_unique<Impl>();
  SandboxCapabilities& caps = impl->caps;
  int concurrency = options.max_concurrency > 0
                        ? options.max_concurrency
                        : std::max(1u, std::thread::hardware_concurrency());
  impl->slot_busy.assign(concurrency, false);
  impl->options = options;
  caps.running_as_root = geteuid() == 0;
  // Unique per Sandbox, so two sandboxes in one process (tests, benchmarks)
  // never share a work root or cgroup. The random part keeps processes apart
  // whose pids coincide: every process started in its own PID namespace is
  // pid 1, while /tmp and the cgroup tree are shared.
  static std::atomic<int> instances{0};
  const std::string name = absl::StrCat("cascade-sandbox-", getpid(), "-", instances++, "-",
                                        absl::Hex(std::random_device{}(), absl::kZeroPad8));

  // Seccomp.
  absl::StatusOr<std::vector<sock_filter>> program = BuildSeccompProgram();
  if (program.ok()) {
    impl->seccomp_program = std::move(*program);
    impl->seccomp_fprog.len = static_cast<unsigned short>(impl->seccomp_program.size());
    impl->seccomp_fprog.filter = impl->seccomp_program.data();
    caps.seccomp = true;
  } else {
    caps.missing.push_back(absl::StrCat("seccomp (", program.status().message(), ")"));
  }

  // Namespaces.
  int flags = 0;
  if (!caps.running_as_root) {
    if (CloneWorks(CLONE_NEWUSER)) {
      caps.user_namespace = true;
      flags |= CLONE_NEWUSER;
      impl->uid_map = absl::StrCat("65534 ", geteuid(), " 1");
      impl->gid_map = absl::StrCat("65534 ", getegid(), " 1");
    } else {
      caps.missing.push_back("unprivileged user (not root and no user namespaces)");
    }
  }
  if (CloneWorks(flags | kNamespaceFlags)) {
    flags |= kNamespaceFlags;
    caps.pid_namespace = caps.mount_namespace = true;
    caps.proc_remount = true;
  } else {
    for (auto [flag, name] : {std::pair<int, const char*>{CLONE_NEWPID, "pid namespace"},
                              {CLONE_NEWNS, "mount namespace"},
                              {CLONE_NEWIPC, "ipc namespace"},
                              {CLONE_NEWUTS, "uts namespace"}}) {
      if (CloneWorks(flags | flag)) {
        flags |= flag;
        if (flag == CLONE_NEWPID) caps.pid_namespace = true;
        if (flag == CLONE_NEWNS) caps.mount_namespace = true;
      } else {
        caps.missing.push_back(name);
      }
    }
    caps.proc_remount = caps.pid_namespace && caps.mount_namespace;
  }
  if (caps.running_as_root) {
    impl->netns_fd = MakeEmptyNetns();
    if (impl->netns_fd >= 0) {
      caps.net_namespace = caps.shared_empty_netns = true;
    }
  }
  if (!caps.net_namespace) {
    if (CloneWorks(flags | CLONE_NEWNET)) {
      flags |= CLONE_NEWNET;
      caps.net_namespace = true;
    } else {
      caps.missing.push_back("network namespace");
    }
  }
  impl->clone_flags = flags;

  // Cgroups: v2 where it has the controllers, else v1 where writable.
  if (options.use_cgroups) {
    std::vector<MountEntry> mounts = ReadMounts();
    std::map<std::string, std::string> own = ReadOwnCgroups();
    for (const MountEntry& m : mounts) {
      if (m.fstype == "cgroup2" &&
          SetUpCgroupV2(m.mountpoint, own.count("") ? own[""] : "/", name, &impl->cgroups)) {
        break;
      }
    }
    if (impl->cgroups.version == 0) SetUpCgroupV1(mounts, own, name, &impl->cgroups);
  }
  caps.cgroup_version = impl->cgroups.version;
  caps.cgroup_memory = !impl->cgroups.memory_base.empty();
  caps.cgroup_pids = !impl->cgroups.pids_base.empty();
  if (!caps.cgroup_memory) caps.missing.push_back("memory cgroup (using RLIMIT_AS)");
  if (!caps.cgroup_pids) caps.missing.push_back("pids cgroup (using RLIMIT_NPROC)");

  // Work root.
  if (options.work_root.empty()) {
    impl->work_root = absl::StrCat("/tmp/", name);
    impl->owns_work_root = true;
  } else {
    impl->work_root = options.work_root;
  }
  if (mkdir(impl->work_root.c_str(), 0711) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir ", impl->work_root, ": ", strerror(errno)));
  }
  chmod(impl->work_root.c_str(), 0711);
  impl->tmpfs_options = absl::StrCat("size=", options.tmpfs_bytes, ",nr_inodes=4096,mode=1777");
  impl->shm_options = absl::StrCat("size=", options.tmpfs_bytes, ",nr_inodes=1024,mode=1777");

  // End to end: /bin/true through the whole set-up. A kernel that refuses a
  // fresh /proc (some container runtimes mask parts of it) keeps the rest.
  RunSpec probe;
  probe.argv = {"/bin/true"};
  probe.wall_time_s = 10;
  absl::StatusOr<RunResult> result = impl->Run(probe, nullptr);
  if (!result.ok() && caps.proc_remount &&
      absl::StrContains(result.status().message(), "mounting /proc")) {
    caps.proc_remount = false;
    caps.missing.push_back("fresh /proc (host /proc stays visible, read-only)");
    result = impl->Run(probe, nullptr);
  }
  if (!result.ok() || !result->exited || result->exit_code != 0) {
    std::string why = result.ok() ? absl::StrCat("/bin/true exited with ", result->exit_code,
                                                 " signal ", result->term_signal)
                                  : std::string(result.status().message());
    return absl::FailedPreconditionError(
        absl::StrCat("the sandbox cannot run programs on this host: ", why, " (",
                     caps.ToString(), ")"));
  }
  if (!caps.FullyContained() && !options.allow_degraded) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to run untrusted code without full containment: ", caps.ToString(),
        ". Grant the missing protections (root or user namespaces, seccomp) or set "
        "allow_degraded to run anyway."));
  }
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

}  // namespace cascade::verifier
