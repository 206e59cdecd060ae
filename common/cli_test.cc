#include "common/cli.h"

#include <catch2/catch.hpp>

namespace cascade {
namespace {

// argv as the OS gives it, from string literals.
struct Argv {
  explicit Argv(std::vector<std::string> args) : storage(std::move(args)) {
    for (auto& arg : storage) pointers.push_back(arg.data());
  }
  int argc() { return static_cast<int>(pointers.size()); }
  char** argv() { return pointers.data(); }
  std::vector<std::string> storage;
  std::vector<char*> pointers;
};

TEST_CASE("flags parse in both spellings and leave positionals") {
  std::string backend;
  int jobs = 1;
  bool strict = false;
  FlagSet flags("verifier eval", "test");
  flags.AddString("backend", &backend, "backend", /*required=*/true);
  flags.AddInt("jobs", &jobs, "workers");
  flags.AddBool("strict", &strict, "stop at first bad line");
  Argv args({"verifier", "eval", "--backend", "math", "--jobs=4", "--strict", "extra"});
  auto positional = flags.Parse(args.argc(), args.argv(), /*first=*/2);
  REQUIRE(positional.ok());
  CHECK(backend == "math");
  CHECK(jobs == 4);
  CHECK(strict);
  CHECK(*positional == std::vector<std::string>{"extra"});
}

TEST_CASE("a flag's - and _ are interchangeable, in any mix") {
  int metrics_port = 0, world_size = 1, group_port = 0;
  FlagSet flags("x", "test");
  flags.AddInt("metrics_port", &metrics_port, "port");
  flags.AddInt("world-size", &world_size, "ranks");
  flags.AddInt("weight-group-port", &group_port, "port");
  Argv args({"x", "--metrics-port", "9", "--world_size=4", "--weight_group-port", "7"});
  auto positional = flags.Parse(args.argc(), args.argv());
  REQUIRE(positional.ok());
  CHECK(metrics_port == 9);
  CHECK(world_size == 4);
  CHECK(group_port == 7);
  CHECK_THAT(flags.Usage(), Catch::Contains("- and _ in a flag's name are interchangeable"));
}

TEST_CASE("bad usage names the flag at fault") {
  int jobs = 1;
  std::string input;
  FlagSet flags("x", "test");
  flags.AddInt("jobs", &jobs, "workers");
  flags.AddString("input", &input, "file", /*required=*/true);

  Argv not_a_number({"x", "--jobs", "many", "--input", "a"});
  auto parsed = flags.Parse(not_a_number.argc(), not_a_number.argv());
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message() == "--jobs: expected an integer, got \"many\"");
  CHECK(flags.ExitForParseError(parsed.status()) == kExitUsage);

  Argv missing({"x"});
  parsed = flags.Parse(missing.argc(), missing.argv());
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message() == "--input is required");

  Argv unknown({"x", "--inptu", "a"});
  parsed = flags.Parse(unknown.argc(), unknown.argv());
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message() == "unknown flag --inptu");
}

TEST_CASE("--help is its own outcome and exits 0") {
  FlagSet flags("x", "test");
  Argv help({"x", "--help"});
  auto parsed = flags.Parse(help.argc(), help.argv());
  REQUIRE(IsHelpRequested(parsed.status()));
  CHECK(flags.ExitForParseError(parsed.status()) == kExitOk);
}

}  // namespace
}  // namespace cascade
