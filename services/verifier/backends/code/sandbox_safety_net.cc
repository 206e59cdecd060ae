// sandbox_safety_net [--pids N] [--memory-mb M] -- COMMAND [ARGS...]
//
// Runs COMMAND (a test binary that attacks the sandbox) inside an outer net:
// a pids and memory cgroup of its own and a PID namespace whose init is
// COMMAND, so a sandbox bug fails the test instead of exhausting the machine.
// When COMMAND exits, the kernel kills whatever it left; the cgroups are then
// removed. Exit status: COMMAND's, or 1 when the net cannot be set up.
//
// Sets CASCADE_SAFETY_NET=1 (and CASCADE_SAFETY_NET_LIMITS describing the
// active limits) so the tests can refuse to run without it.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool WriteText(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// Own cgroup path in the hierarchy holding `controller` ("" = v2).
std::string OwnCgroup(const std::string& controller) {
  std::istringstream lines(ReadText("/proc/self/cgroup"));
  std::string line;
  while (std::getline(lines, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (path == "/") path = "";
    if (controller.empty() ? controllers.empty()
                           : ("," + controllers + ",").find("," + controller + ",") !=
                                 std::string::npos) {
      return path;
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  long pids = 4096;
  long memory_mb = 4096;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--pids" && i + 1 < argc) {
      pids = std::atol(argv[++i]);
    } else if (arg == "--memory-mb" && i + 1 < argc) {
      memory_mb = std::atol(argv[++i]);
    } else if (arg == "--") {
      ++i;
      break;
    } else {
      std::fprintf(stderr, "usage: %s [--pids N] [--memory-mb M] -- COMMAND [ARGS...]\n", argv[0]);
      return 2;
    }
  }
  if (i >= argc) {
    std::fprintf(stderr, "usage: %s [--pids N] [--memory-mb M] -- COMMAND [ARGS...]\n", argv[0]);
    return 2;
  }

  // 1. Cgroups: v1 pids + memory controllers, or a v2 cgroup with both.
  std::string name = "cascade-safety-net-" + std::to_string(getpid());
  std::vector<std::string> created;
  bool pids_limited = false, memory_limited = false;
  std::string v2_root = "/sys/fs/cgroup";
  if (ReadText(v2_root + "/cgroup.controllers").find("pids") != std::string::npos) {
    std::string dir = v2_root + OwnCgroup("") + "/" + name;
    if (mkdir(dir.c_str(), 0755) == 0) {
      created.push_back(dir);
      pids_limited = WriteText(dir + "/pids.max", std::to_string(pids));
      memory_limited = WriteText(dir + "/memory.max", std::to_string(memory_mb << 20));
      WriteText(dir + "/cgroup.procs", std::to_string(getpid()));
    }
  } else {
    for (const char* controller : {"pids", "memory"}) {
      std::string dir = std::string("/sys/fs/cgroup/") + controller + OwnCgroup(controller) +
                        "/" + name;
      if (mkdir(dir.c_str(), 0755) != 0) continue;
      created.push_back(dir);
      bool limited = std::string(controller) == "pids"
                         ? WriteText(dir + "/pids.max", std::to_string(pids))
                         : WriteText(dir + "/memory.limit_in_bytes", std::to_string(memory_mb << 20));
      if (limited && WriteText(dir + "/cgroup.procs", std::to_string(getpid()))) {
        (std::string(controller) == "pids" ? pids_limited : memory_limited) = true;
      }
    }
  }
  // Without a writable pids cgroup (an unprivileged container) the net is the
  // PID namespace alone; the sandbox's own per-uid RLIMIT_NPROC still bounds
  // fork bombs. Say so loudly rather than skip the tests.
  std::string limits = (pids_limited ? "pids=" + std::to_string(pids)
                                     : std::string("pids=NONE(no writable pids cgroup)")) +
                       (memory_limited ? " memory_mb=" + std::to_string(memory_mb)
                                       : " memory=NONE(no writable memory cgroup)");
  std::fprintf(stderr, "safety net: %s, own PID namespace\n", limits.c_str());

  // 2. A PID namespace whose init is the command.
  if (unshare(CLONE_NEWPID) != 0) {
    std::fprintf(stderr, "safety net: unshare(CLONE_NEWPID): %s\n", std::strerror(errno));
    for (auto it = created.rbegin(); it != created.rend(); ++it) rmdir(it->c_str());
    return 1;
  }
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setenv("CASCADE_SAFETY_NET", "1", 1);
    setenv("CASCADE_SAFETY_NET_LIMITS", limits.c_str(), 1);
    execv(argv[i], argv + i);
    std::perror("safety net: exec");
    _exit(127);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  // 3. The namespace is gone with its init; remove the cgroups (EBUSY while
  //    the last tasks are being reaped).
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    // Step out of it first: this process is a member too.
    WriteText(it->substr(0, it->rfind('/')) + "/cgroup.procs", std::to_string(getpid()));
    for (int attempt = 0; attempt < 200 && rmdir(it->c_str()) != 0 && errno == EBUSY; ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "safety net: command killed by signal %d\n", WTERMSIG(status));
  return 1;
}
