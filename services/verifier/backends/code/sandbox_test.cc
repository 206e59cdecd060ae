// Functional tests of the sandbox with well-behaved programs. The hostile
// programs live in sandbox_adversarial_test.cc, which runs inside an outer
// safety net.
#include "services/verifier/backends/code/sandbox.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

namespace cascade::verifier {
namespace {

Sandbox& SharedSandbox() {
  // Destroyed at exit, which removes its work root and cgroups.
  static std::unique_ptr<Sandbox> sandbox = [] {
    absl::StatusOr<std::unique_ptr<Sandbox>> created = Sandbox::Create({});
    if (!created.ok()) {
      FAIL("sandbox unavailable on this host: " << created.status().message());
    }
    return std::move(created).value();
  }();
  return *sandbox;
}

RunSpec Python(const std::string& code, const std::string& input = "") {
  RunSpec spec;
  spec.argv = {"/usr/bin/python3", "-c", code};
  spec.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  spec.stdin_data = input;
  return spec;
}

TEST_CASE("sandbox reports which protections are active") {
  const SandboxCapabilities& caps = SharedSandbox().capabilities();
  std::string text = caps.ToString();
  CAPTURE(text);
  CHECK(text.rfind("sandbox: ", 0) == 0);
  CHECK(caps.FullyContained());
  CHECK(caps.pid_namespace);
  CHECK(caps.seccomp);
}

TEST_CASE("sandbox passes stdin to the program and returns its stdout") {
  auto result = SharedSandbox().Run(
      Python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", "1 2 3\n40\n"));
  REQUIRE(result.ok());
  CHECK(result->exited);
  CHECK(result->exit_code == 0);
  CHECK(result->stdout_data == "46\n");
  CHECK(result->wall_s > 0);
  CHECK(result->peak_memory_bytes > 0);
}

TEST_CASE("sandbox reports exit codes and stderr") {
  auto result = SharedSandbox().Run(Python("import sys\nsys.stderr.write('bad')\nsys.exit(3)"));
  REQUIRE(result.ok());
  CHECK(result->exited);
  CHECK(result->exit_code == 3);
  CHECK(result->stderr_data == "bad");
}

TEST_CASE("sandbox runs the program as pid 1 of its own namespace as an unprivileged user") {
  auto result = SharedSandbox().Run(Python(
      "import os\nprint(os.getpid(), os.getuid() != 0, len([p for p in os.listdir('/proc') "
      "if p.isdigit()]), os.getcwd())"));
  REQUIRE(result.ok());
  CHECK(result->stdout_data == "1 True 1 /tmp\n");
}

TEST_CASE("sandbox gives a writable private /tmp and a read-only rest") {
  auto result = SharedSandbox().Run(Python(
      "open('/tmp/x','w').write('hi')\nprint(open('x').read())\n"
      "try:\n  open('/usr/evil','w')\nexcept OSError as e:\n  print(e.errno)\n"));
  REQUIRE(result.ok());
  CHECK(result->stdout_data == "hi\n30\n");  // EROFS
}

TEST_CASE("sandbox shows the code directory read-only at /tmp/code") {
  auto dir = SharedSandbox().MakeCodeDir();
  REQUIRE(dir.ok());
  std::ofstream(*dir + "/main.py") << "print('from file')\n";
  RunSpec spec;
  spec.argv = {"/usr/bin/python3", "/tmp/code/main.py"};
  spec.code_dir = *dir;
  auto result = SharedSandbox().Run(spec);
  INFO(result.status().message());
  REQUIRE(result.ok());
  CHECK(result->stdout_data == "from file\n");
  SharedSandbox().RemoveCodeDir(*dir);
  CHECK_FALSE(std::filesystem::exists(*dir));
}

TEST_CASE("sandbox kills a program at the wall-clock limit") {
  RunSpec spec = Python("import time\ntime.sleep(30)");
  spec.wall_time_s = 0.5;
  auto result = SharedSandbox().Run(spec);
  REQUIRE(result.ok());
  CHECK(result->wall_timeout);
  CHECK(result->term_signal == SIGKILL);
  CHECK(result->wall_s < 3);
}

TEST_CASE("sandbox stops output at the cap") {
  RunSpec spec = Python("import sys\nwhile True: sys.stdout.write('x' * 65536)");
  spec.stdout_bytes = 1 << 20;
  auto result = SharedSandbox().Run(spec);
  REQUIRE(result.ok());
  CHECK(result->output_exceeded);
  CHECK(result->stdout_data.size() == (1u << 20));
}

TEST_CASE("sandbox refuses an empty command") {
  RunSpec spec;
  CHECK(SharedSandbox().Run(spec).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("sandbox stops before starting when the caller's deadline has passed") {
  CancelToken cancel(absl::Now() - absl::Seconds(1));
  auto result = SharedSandbox().Run(Python("print(1)"), &cancel);
  CHECK(result.status().code() == absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace cascade::verifier
