// Per-run overhead of the sandbox: the same program run bare (posix_spawn with
// stdin from a memfd and stdout through a pipe, as the sandbox does) and
// through Sandbox::Run, measured in the same process and run.
//
//   BM_Bare/python      /usr/bin/python3 prog.py < input
//   BM_Sandbox/python   the same inside the sandbox
//   BM_Bare/cpp         a compiled C++17 binary < input
//   BM_Sandbox/cpp      the same inside the sandbox
//
// Overhead per run = Sandbox - Bare of the same language. Each iteration is
// one complete run (start, feed stdin, collect stdout, reap).
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "services/verifier/backends/code/sandbox.h"

extern char** environ;

namespace cascade::verifier {
namespace {

constexpr char kInput[] = "1 2 3 4 5\n";
constexpr char kPython[] = "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n";
constexpr char kCpp[] =
    "#include <cstdio>\nint main(){long s=0,x;while(std::scanf(\"%ld\",&x)==1)s+=x;"
    "std::printf(\"%ld\\n\",s);}\n";

struct Fixture {
  std::unique_ptr<Sandbox> sandbox;
  std::string code_dir;
  bool ok = false;

  Fixture() {
    SandboxOptions options;
    options.max_concurrency = 1;
    // CASCADE_BENCH_NO_CGROUPS=1 measures what the per-run cgroups cost.
    options.use_cgroups = std::getenv("CASCADE_BENCH_NO_CGROUPS") == nullptr;
    options.allow_degraded = !options.use_cgroups;
    auto created = Sandbox::Create(options);
    if (!created.ok()) {
      std::fprintf(stderr, "sandbox unavailable: %s\n", std::string(created.status().message()).c_str());
      return;
    }
    sandbox = std::move(created).value();
    std::fprintf(stderr, "%s\n", sandbox->capabilities().ToString().c_str());
    code_dir = *sandbox->MakeCodeDir();
    std::ofstream(code_dir + "/main.py") << kPython;
    std::ofstream(code_dir + "/main.cpp") << kCpp;
    RunSpec compile;
    compile.argv = {"/usr/bin/g++", "-std=c++17", "-O2", "-o", "/tmp/code/main",
                    "/tmp/code/main.cpp"};
    compile.env = {"PATH=/usr/bin:/bin"};
    compile.code_dir = code_dir;
    compile.code_dir_writable = true;
    compile.cpu_time_s = 60;
    compile.wall_time_s = 120;
    compile.memory_bytes = 2LL << 30;
    auto result = sandbox->Run(compile);
    ok = result.ok() && result->exited && result->exit_code == 0;
    if (!ok) std::fprintf(stderr, "compiling the benchmark program failed\n");
  }
  ~Fixture() {
    if (sandbox) sandbox->RemoveCodeDir(code_dir);
  }
};

Fixture& Shared() {
  static Fixture fixture;
  return fixture;
}

// One bare run; returns the bytes read from stdout.
size_t BareRun(const std::vector<std::string>& argv) {
  int in = memfd_create("stdin", MFD_CLOEXEC);
  (void)!pwrite(in, kInput, sizeof kInput - 1, 0);
  int out[2];
  (void)!pipe2(out, O_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in);
  close(out[1]);
  char buffer[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(out[0], buffer, sizeof buffer)) > 0) total += n;
  close(out[0]);
  waitpid(pid, nullptr, 0);
  return total;
}

std::vector<std::string> HostCommand(bool python) {
  Fixture& f = Shared();
  if (python) return {"/usr/bin/python3", f.code_dir + "/main.py"};
  return {f.code_dir + "/main"};
}

std::vector<std::string> SandboxCommand(bool python) {
  if (python) return {"/usr/bin/python3", "/tmp/code/main.py"};
  return {"/tmp/code/main"};
}

void BM_Bare(benchmark::State& state) {
  if (!Shared().ok) return state.SkipWithError("no sandbox");
  const bool python = state.range(0) == 0;
  std::vector<std::string> command = HostCommand(python);
  for (auto _ : state) {
    if (BareRun(command) == 0) return state.SkipWithError("no output");
  }
  state.SetLabel(python ? "python" : "cpp");
  state.counters["runs_per_s"] =
      benchmark::Counter(state.iterations(), benchmark::Counter::kIsRate);
}

void BM_Sandbox(benchmark::State& state) {
  if (!Shared().ok) return state.SkipWithError("no sandbox");
  const bool python = state.range(0) == 0;
  RunSpec spec;
  spec.argv = SandboxCommand(python);
  spec.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  spec.stdin_data = kInput;
  spec.code_dir = Shared().code_dir;
  for (auto _ : state) {
    auto result = Shared().sandbox->Run(spec);
    if (!result.ok() || result->stdout_data != "15\n") return state.SkipWithError("run failed");
  }
  state.SetLabel(python ? "python" : "cpp");
  state.counters["runs_per_s"] =
      benchmark::Counter(state.iterations(), benchmark::Counter::kIsRate);
}

// Arg 0 = python, 1 = cpp. Real time: the work happens in child processes.
BENCHMARK(BM_Bare)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Sandbox)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace cascade::verifier

BENCHMARK_MAIN();
