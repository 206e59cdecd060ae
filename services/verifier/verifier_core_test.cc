#include "services/verifier/verifier_core.h"

#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"

namespace cascade::verifier {
namespace {

// A backend with scripted behaviour, selected by the item's "mode" field,
// to drive the core's time limits and error mapping.
class ScriptedBackend : public Backend {
 public:
  absl::string_view name() const override { return "scripted"; }

  absl::StatusOr<CheckResult> Check(const Json& item, const JsonPath& path,
                                    const CancelToken& cancel) const override {
    auto mode = GetString(item, "mode", path);
    if (!mode.ok()) return mode.status();
    if (*mode == "echo") {
      return CheckResult{1.0, "correct", {{"response", item.value("response", "")}}};
    }
    if (*mode == "polls") {
      // Loops until the token expires, as a well-behaved backend does.
      while (!cancel.Expired()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return cancel.Check();
    }
    if (*mode == "ignores") {
      // Never looks at the token: the core must still return on time.
      absl::SleepFor(absl::Milliseconds(1500));
      return CheckResult{1.0, "correct", {}};
    }
    if (*mode == "throws") throw std::runtime_error("boom");
    return absl::InternalError("unknown mode");
  }
};

std::vector<std::unique_ptr<Backend>> Scripted() {
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(std::make_unique<ScriptedBackend>());
  return backends;
}

VerifyInput Item(const std::string& mode, int index) {
  return {{{"mode", mode}, {"response", "r" + std::to_string(index)}},
          JsonPath().Key("items").Index(index),
          ""};
}

TEST_CASE("results come back in request order") {
  VerifierCore core(Scripted(), {.workers_per_backend = 4});
  std::vector<VerifyInput> items;
  for (int i = 0; i < 100; ++i) items.push_back(Item("echo", i));
  auto outputs = core.VerifyBatch("scripted", std::move(items));
  REQUIRE(outputs.ok());
  REQUIRE(outputs->size() == 100);
  for (int i = 0; i < 100; ++i) {
    CHECK((*outputs)[i].details["response"] == "r" + std::to_string(i));
  }
}

TEST_CASE("an unknown backend is refused with the list of known ones") {
  VerifierCore core(Scripted(), {});
  auto outputs = core.VerifyBatch("maths", {});
  REQUIRE_FALSE(outputs.ok());
  CHECK(outputs.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(outputs.status().message() == "unknown backend \"maths\" (expected one of: scripted)");
}

TEST_CASE("items past the time limit time out while the rest of the batch is scored") {
  VerifierCore core(Scripted(), {.workers_per_backend = 2});
  std::vector<VerifyInput> items = {Item("echo", 0), Item("polls", 1), Item("ignores", 2),
                                    Item("echo", 3)};
  absl::Time start = absl::Now();
  auto outputs = core.VerifyBatch("scripted", std::move(items), absl::Milliseconds(200));
  absl::Duration elapsed = absl::Now() - start;
  REQUIRE(outputs.ok());
  CHECK((*outputs)[0].verdict == "correct");
  CHECK((*outputs)[1].verdict == "timeout");
  CHECK((*outputs)[2].verdict == "timeout");
  CHECK((*outputs)[3].verdict == "correct");
  CHECK((*outputs)[2].reward == 0.0);
  // The ignoring item sleeps 1.5 s; the batch must not wait for it.
  CHECK(elapsed < absl::Milliseconds(1200));
}

TEST_CASE("malformed items and throwing backends become verdicts, not failures") {
  VerifierCore core(Scripted(), {.workers_per_backend = 1});
  std::vector<VerifyInput> items;
  items.push_back({{{"response", "no mode"}}, JsonPath("in.jsonl: line 1"), ""});
  items.push_back(Item("throws", 1));
  items.push_back({Json::array(), JsonPath("in.jsonl: line 3"), ""});
  items.push_back({Json::object(), JsonPath("x"), "items[3].spec_json: line 1 column 2: bad"});
  auto outputs = core.VerifyBatch("scripted", std::move(items));
  REQUIRE(outputs.ok());
  CHECK((*outputs)[0].verdict == "invalid_input");
  CHECK((*outputs)[0].details["error"] == "in.jsonl: line 1: mode: required field is missing");
  CHECK((*outputs)[1].verdict == "internal_error");
  CHECK((*outputs)[1].details["error"] == "backend threw: boom");
  CHECK((*outputs)[2].verdict == "invalid_input");
  CHECK((*outputs)[2].details["error"] == "in.jsonl: line 3: expected a JSON object, got array");
  CHECK((*outputs)[3].details["error"] == "items[3].spec_json: line 1 column 2: bad");
}

TEST_CASE("a batch larger than the free queue is refused whole with RESOURCE_EXHAUSTED") {
  VerifierCore core(Scripted(), {.workers_per_backend = 1, .queue_capacity = 3});
  std::vector<VerifyInput> items;
  for (int i = 0; i < 5; ++i) items.push_back(Item("echo", i));
  auto outputs = core.VerifyBatch("scripted", std::move(items));
  REQUIRE_FALSE(outputs.ok());
  CHECK(outputs.status().code() == absl::StatusCode::kResourceExhausted);
}

TEST_CASE("items not started by the batch deadline time out without running") {
  VerifierCore core(Scripted(), {.workers_per_backend = 1});
  std::vector<VerifyInput> items = {Item("ignores", 0), Item("echo", 1)};
  auto outputs = core.VerifyBatch("scripted", std::move(items), absl::Milliseconds(300),
                                  absl::Now() + absl::Milliseconds(100));
  REQUIRE(outputs.ok());
  CHECK((*outputs)[0].verdict == "timeout");
  CHECK((*outputs)[1].verdict == "timeout");
  CHECK((*outputs)[1].details["error"] == "the request deadline passed before the item started");
}

}  // namespace
}  // namespace cascade::verifier
