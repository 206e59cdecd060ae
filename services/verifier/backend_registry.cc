#include "services/verifier/backend_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "services/reward_model/reward_model_client.h"
#include "services/verifier/code_metrics.h"
#include "services/verifier/backends/code/code_backend.h"
#include "services/verifier/backends/ifeval/ifeval_backend.h"
#include "services/verifier/backends/math/math_backend.h"
#include "services/verifier/backends/swe/swe_backend.h"

namespace cascade::verifier {

std::vector<std::string> KnownBackendNames() { return {"math", "if", "code", "swe"}; }

absl::StatusOr<std::vector<std::unique_ptr<Backend>>> BuildBackends(
    const std::vector<std::string>& names, const BackendConfig& config) {
  std::vector<std::unique_ptr<Backend>> backends;
  for (const std::string& name : names) {
    if (name == "math") {
      backends.push_back(NewMathBackend());
    } else if (name == "if") {
      backends.push_back(NewIfEvalBackend());
    } else if (name == "swe") {
      SweBackendOptions options;
      if (!config.judge_address.empty()) {
        options.judge = reward_model::GrpcSemanticJudge::Connect(config.judge_address);
      }
      backends.push_back(NewSweBackend(options));
    } else if (name == "code") {
      CodeBackendOptions options;
      options.sandbox.max_concurrency = config.code_workers;
      options.sandbox.allow_degraded = config.allow_degraded_sandbox;
      AttachCodeMetrics(options);
      auto backend = NewCodeBackend(options);
      if (!backend.ok()) return backend.status();
      // Operators must see which protections are active on this host.
      CASCADE_LOG(INFO) << (*backend)->capabilities().ToString();
      backends.push_back(std::move(*backend));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown backend \"", name,
                                                     "\" (expected one of: ",
                                                     absl::StrJoin(KnownBackendNames(), ", "),
                                                     ")"));
    }
  }
  return backends;
}

}  // namespace cascade::verifier
