#include "services/reward_model/reward_model_client.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "services/reward_model/reward_model_client_fake.h"

namespace cascade::reward_model {
namespace {

std::shared_ptr<FakeRewardModelClient> FakeJudging(double p_yes) {
  auto fake = std::make_shared<FakeRewardModelClient>();
  fake->judge = [p_yes](const std::string&) -> absl::StatusOr<double> { return p_yes; };
  return fake;
}

TEST_CASE("the semantic judge asks the question once and returns the service's P(yes)") {
  auto fake = FakeJudging(0.3);
  GrpcSemanticJudge judge(fake);
  CancelToken cancel(absl::Now() + absl::Seconds(20));
  auto p = judge.ProbabilityYes("Is patch A the same as patch B?", cancel);
  REQUIRE(p.ok());
  CHECK(*p == 0.3);
  CHECK(fake->questions() == std::vector<std::string>{"Is patch A the same as patch B?"});
}

TEST_CASE("the judge's call deadline is the sooner of the item deadline and its cap") {
  auto fake = FakeJudging(0.5);
  GrpcSemanticJudge capped(fake, /*max_timeout=*/absl::Seconds(3));
  REQUIRE(capped.ProbabilityYes("q", CancelToken(absl::Now() + absl::Seconds(60))).ok());
  REQUIRE(capped.ProbabilityYes("q", CancelToken(absl::Now() + absl::Seconds(1))).ok());
  auto timeouts = fake->timeouts();
  REQUIRE(timeouts.size() == 2);
  CHECK(timeouts[0] == absl::Seconds(3));
  CHECK(timeouts[1] <= absl::Seconds(1));
  CHECK(timeouts[1] > absl::ZeroDuration());
}

TEST_CASE("an item already past its deadline never reaches the service") {
  auto fake = FakeJudging(0.5);
  GrpcSemanticJudge judge(fake);
  auto p = judge.ProbabilityYes("q", CancelToken(absl::Now() - absl::Seconds(1)));
  CHECK(p.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(fake->timeouts().empty());
}

TEST_CASE("service failures keep their code and say they came from the judge") {
  auto fake = std::make_shared<FakeRewardModelClient>();
  fake->judge = [](const std::string&) -> absl::StatusOr<double> {
    return absl::UnavailableError("connection refused");
  };
  GrpcSemanticJudge judge(fake);
  auto p = judge.ProbabilityYes("q", CancelToken(absl::Now() + absl::Seconds(5)));
  CHECK(p.status().code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StrContains(p.status().message(), "semantic judge (reward_model Judge)"));
}

TEST_CASE("the swe backend's semantic mode scores a similar patch with the judge's P(yes)") {
  auto fake = FakeJudging(0.625);
  verifier::SweBackendOptions options;
  options.judge = std::make_shared<GrpcSemanticJudge>(fake);
  auto backend = verifier::NewSweBackend(options);
  const std::string gold =
      "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x\n+    return x + 1\n";
  const std::string pred =
      "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x\n+    return 1 + x\n";
  Json item = {{"response", "```diff\n" + pred + "```"},
               {"format", "unidiff"},
               {"ground_truth", gold},
               {"similarity", "semantic"}};
  auto result = backend->Check(item, JsonPath("item"), CancelToken(absl::Now() + absl::Seconds(5)));
  REQUIRE(result.ok());
  CHECK(result->verdict == "similar");
  CHECK(result->reward == 0.625);
  REQUIRE(fake->questions().size() == 1);
  CHECK(absl::StrContains(fake->questions()[0], "return x + 1"));
  CHECK(absl::StrContains(fake->questions()[0], "return 1 + x"));
}

}  // namespace
}  // namespace cascade::reward_model
