// Prometheus metrics of the code backend: per-run counters and histograms
// fed by its on_run hook, and gauges read from its atomics at scrape time.
//
//   cascade_verifier_code_runs_total{language,phase,verdict}
//   cascade_verifier_code_run_seconds{language,phase}
//   cascade_verifier_code_queue_depth, cascade_verifier_code_active_items
//   cascade_verifier_code_sandbox_failures_total, cascade_verifier_code_rejected_total
#ifndef CASCADE_SERVICES_VERIFIER_CODE_METRICS_H_
#define CASCADE_SERVICES_VERIFIER_CODE_METRICS_H_

#include "services/verifier/backends/code/code_backend.h"

namespace cascade::verifier {

// Points `options.stats` and `options.on_run` at the process metrics.
// Call once per code backend, before NewCodeBackend.
void AttachCodeMetrics(CodeBackendOptions& options);

}  // namespace cascade::verifier

#endif  // CASCADE_SERVICES_VERIFIER_CODE_METRICS_H_
