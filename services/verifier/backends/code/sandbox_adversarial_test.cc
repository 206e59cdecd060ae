// Hostile programs against the code backend. Each case checks the verdict,
// that the backend still answers afterwards, and that nothing of the run is
// left on the host: no process of a sandbox uid, no file in the work root, no
// run cgroup.
//
// Runs only inside sandbox_safety_net (CTest does that), so that a sandbox bug
// fails the test instead of taking the machine down.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "services/verifier/backends/code/code_backend.h"

namespace cascade::verifier {
namespace {

constexpr int kUidBase = 63000;  // apart from other tests running at the same time

void RequireSafetyNet() {
  if (std::getenv("CASCADE_SAFETY_NET") == nullptr) {
    FAIL("run this binary through sandbox_safety_net (ctest does): hostile programs need "
         "an outer PID namespace and pids/memory cgroup");
  }
}

CodeBackend& Backend() {
  static std::unique_ptr<CodeBackend> backend = [] {
    RequireSafetyNet();
    CodeBackendOptions options;
    options.sandbox.uid_base = kUidBase;
    options.compile_time_s = 4;
    options.compile_memory_mb = 1024;
    auto created = NewCodeBackend(options);
    if (!created.ok()) FAIL("code backend unavailable: " << created.status().message());
    WARN((*created)->capabilities().ToString() << " under "
                                               << std::getenv("CASCADE_SAFETY_NET_LIMITS"));
    return std::move(created).value();
  }();
  return *backend;
}

absl::StatusOr<CheckResult> Run(const std::string& language, const std::string& code,
                                const std::string& expected = "ok\n",
                                Json limits = {{"time_s", 1}, {"memory_mb", 256}}) {
  Json item = {{"response", code},
               {"language", language},
               {"tests", {{{"input", ""}, {"output", expected}}}},
               {"limits", limits}};
  CancelToken cancel(absl::Now() + absl::Minutes(2));
  return Backend().Check(item, JsonPath("adversarial"), cancel);
}

std::string Verdict(const absl::StatusOr<CheckResult>& result) {
  if (!result.ok()) return std::string(result.status().message());
  UNSCOPED_INFO("details: " << result->details.dump().substr(0, 600));
  if (result->verdict == "correct") return "accepted";
  return result->details["first_failure"]["verdict"].get<std::string>();
}

// Processes running as any sandbox uid, as "pid:uid" strings.
std::vector<std::string> SandboxProcesses() {
  std::vector<std::string> found;
  const int last_uid = kUidBase + Backend().sandbox().max_concurrency();
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Uid:", 0) != 0) continue;
      int uid = std::atoi(line.c_str() + 4);
      if (uid >= kUidBase && uid < last_uid) found.push_back(pid + ":" + std::to_string(uid));
      break;
    }
  }
  return found;
}

// Everything a run could leave behind, after giving the kernel a moment.
void CheckNothingLeft() {
  std::vector<std::string> processes;
  for (int i = 0; i < 50; ++i) {
    processes = SandboxProcesses();
    if (processes.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(processes.empty());
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(Backend().sandbox().work_root())) {
    files.push_back(entry.path());
  }
  CHECK(files.empty());
  for (const std::string& dir : Backend().sandbox().cgroup_dirs()) {
    std::vector<std::string> runs;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.is_directory()) runs.push_back(entry.path());
    }
    CHECK(runs.empty());
  }
  // And the backend still answers.
  CHECK(Verdict(Run("python", "print('ok')")) == "accepted");
}

TEST_CASE("adversarial: a fork bomb is contained and leaves nothing") {
  std::string verdict = Verdict(Run("python",
                                    "import os\nwhile True:\n  try:\n    os.fork()\n"
                                    "  except OSError:\n    pass\n"));
  CHECK((verdict == "time_limit" || verdict == "runtime_error" || verdict == "memory_limit"));
  std::string c_verdict =
      Verdict(Run("cpp", "#include <unistd.h>\nint main(){ for(;;) fork(); }"));
  CHECK((c_verdict == "time_limit" || c_verdict == "runtime_error"));
  CheckNothingLeft();
}

TEST_CASE("adversarial: a memory bomb gets memory_limit") {
  // A generous time limit: on a loaded machine the limit must be met by memory.
  Json limits = {{"time_s", 5}, {"memory_mb", 256}};
  CHECK(Verdict(Run("python", "a = []\nwhile True:\n  a.append(' ' * (1 << 24))\n", "ok\n",
                    limits)) == "memory_limit");
  CHECK(Verdict(Run("cpp", "#include <cstring>\n#include <cstdlib>\nint main(){ for(;;){ "
                           "char* p = (char*)malloc(1<<24); if(!p) return 3; "
                           "memset(p, 1, 1<<24);} }", "ok\n", limits)) == "memory_limit");
  CheckNothingLeft();
}

TEST_CASE("adversarial: an infinite loop and a sleep both get time_limit") {
  CHECK(Verdict(Run("python", "while True: pass")) == "time_limit");
  auto slept = Run("python", "import time\ntime.sleep(60)");
  CHECK(Verdict(slept) == "time_limit");
  REQUIRE(slept.ok());
  CHECK(slept->details["first_failure"]["wall_s"].get<double>() < 10);
  CheckNothingLeft();
}

TEST_CASE("adversarial: 100 MB of output is cut at the limit") {
  auto result = Run("python", "import sys\nsys.stdout.write('x' * (100 << 20))",
                    "ok\n", {{"time_s", 5}, {"output_kb", 1024}});
  CHECK(Verdict(result) == "output_limit");
  CheckNothingLeft();
}

TEST_CASE("adversarial: writes outside the work dir fail and /tmp writes vanish") {
  const std::string marker = "cascade-adversarial-" + std::to_string(getpid());
  std::string code =
      "import os\nbad = 0\n"
      "for p in ['/etc/" + marker + "', '/usr/" + marker + "', '" +
      std::filesystem::current_path().string() + "/" + marker + "', '/var/tmp/" + marker +
      "', '/root/" + marker + "']:\n"
      "  try:\n    open(p, 'w').write('x'); bad += 1\n  except OSError:\n    pass\n"
      "open('/tmp/" + marker + "', 'w').write('x')\nopen('/dev/shm/" + marker + "', 'w').write('x')\n"
      "print('ok' if bad == 0 else 'escaped')\n";
  CHECK(Verdict(Run("python", code)) == "accepted");
  for (const char* dir : {"/etc/", "/usr/", "/var/tmp/", "/root/", "/tmp/", "/dev/shm/"}) {
    CHECK_FALSE(std::filesystem::exists(std::string(dir) + marker));
  }
  CHECK_FALSE(std::filesystem::exists(std::filesystem::current_path() / marker));
  CheckNothingLeft();
}

TEST_CASE("adversarial: secrets of the host stay unreadable") {
  CHECK(Verdict(Run("python",
                    "try:\n  open('/etc/shadow').read(); print('read')\n"
                    "except OSError:\n  print('ok')\n")) == "accepted");
  CheckNothingLeft();
}

TEST_CASE("adversarial: network connections fail, even to the host's loopback") {
  // A listener on the host's loopback that the program must not reach.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  REQUIRE(listen(listener, 4) == 0);
  int port = ntohs(address.sin_port);
  std::string code =
      "import socket\nreached = 0\n"
      "for host, port in [('127.0.0.1', " + std::to_string(port) + "), ('1.1.1.1', 53), "
      "('8.8.8.8', 443)]:\n"
      "  try:\n    socket.create_connection((host, port), timeout=0.5); reached += 1\n"
      "  except OSError:\n    pass\n"
      "print('ok' if reached == 0 else 'connected')\n";
  CHECK(Verdict(Run("python", code, "ok\n", {{"time_s", 3}})) == "accepted");
  // Nothing arrived at the listener.
  timeval none{0, 0};
  fd_set ready;
  FD_ZERO(&ready);
  FD_SET(listener, &ready);
  CHECK(select(listener + 1, &ready, nullptr, nullptr, &none) == 0);
  close(listener);
  CheckNothingLeft();
}

TEST_CASE("adversarial: killing the parent or everyone reaches nothing outside") {
  for (const char* code : {"import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('ok')",
                           "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('ok')",
                           "import os, signal\nos.kill(1, signal.SIGKILL)\nprint('ok')"}) {
    CAPTURE(code);
    std::string verdict = Verdict(Run("python", code));
    CHECK((verdict == "accepted" || verdict == "runtime_error"));
  }
  CheckNothingLeft();
}

TEST_CASE("adversarial: a daemon that double-forks and calls setsid dies with the run") {
  std::string code =
      "import os, time\n"
      "if os.fork() == 0:\n  os.setsid()\n  if os.fork() == 0:\n    time.sleep(60)\n"
      "  os._exit(0)\n"
      "time.sleep(0.2)\nprint('ok')\n";
  CHECK(Verdict(Run("python", code)) == "accepted");
  CheckNothingLeft();
}

TEST_CASE("adversarial: a compile-time bomb ends as compile_error") {
  auto result = Run("cpp",
                    "constexpr long spin() { long s = 0; for (long i = 0; i < (1L << 40); ++i) "
                    "s += i ^ (s >> 3); return s; }\n"
                    "static_assert(spin() != 42);\nint main() {}\n");
  CHECK(Verdict(result) == "compile_error");
  CheckNothingLeft();
}

TEST_CASE("adversarial: a segfault and a stack overflow are runtime errors") {
  auto segv = Run("cpp", "int main(){ volatile int* p = nullptr; return *p; }");
  CHECK(Verdict(segv) == "runtime_error");
  auto stack = Run("cpp", "int f(volatile int n){ volatile char pad[4096]; pad[0]=n; "
                          "return f(n + 1) + pad[0]; }\nint main(){ return f(0); }");
  CHECK(Verdict(stack) == "runtime_error");
  auto python = Run("python", "import sys\nsys.setrecursionlimit(10**9)\n"
                              "def f(n): return f(n + 1) + 1\nf(0)\n");
  // Python 3.11 keeps Python frames on the heap: unbounded recursion ends on
  // whichever limit it meets first.
  std::string python_verdict = Verdict(python);
  CHECK((python_verdict == "runtime_error" || python_verdict == "memory_limit" ||
         python_verdict == "time_limit"));
  CheckNothingLeft();
}

TEST_CASE("adversarial: forbidden system calls are blocked") {
  for (const char* code : {
           "import ctypes\nctypes.CDLL(None).syscall(101, 16, 1, 0, 0)\nprint('ok')",   // ptrace
           "import ctypes\nctypes.CDLL(None).unshare(0x10000000)\nprint('ok')",         // userns
           "import ctypes\nctypes.CDLL(None).mount(b'none', b'/tmp', b'tmpfs', 0, None)\n",
       }) {
    CAPTURE(code);
    CHECK(Verdict(Run("python", code)) == "blocked");
  }
  CheckNothingLeft();
}

}  // namespace
}  // namespace cascade::verifier
