// One Prometheus registry and at most one HTTP exposer per process.
//
// Components register their families on MetricsRegistry() at construction;
// main() calls StartMetricsExposer(--metrics_port) once. Port 0 picks a free
// port (tests); a negative port disables the exposer.
//
// Why one exposer: civetweb's shutdown takes ~2 s after serving a request
// and two exposers fight over thread-local state (DESIGN.md §5).
#ifndef CASCADE_COMMON_METRICS_H_
#define CASCADE_COMMON_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cascade {

// The process-wide registry.
std::shared_ptr<prometheus::Registry> MetricsRegistry();

// Starts the /metrics HTTP endpoint on `port` (0 = any free port) and
// returns the bound port. FAILED_PRECONDITION when already started.
absl::StatusOr<int> StartMetricsExposer(int port, const std::string& bind_address = "0.0.0.0");

// Adds a collectable that is read at scrape time (e.g. gauges computed from
// a component's own atomics). Served by the exposer, started or not yet.
void RegisterCollectable(std::shared_ptr<prometheus::Collectable> collectable);

// Renders the registry and the extra collectables in the Prometheus text format (tests, `--dump_metrics`).
std::string RenderMetricsText();

// Buckets for latencies from 100 µs to ~100 s, 4 per decade.
prometheus::Histogram::BucketBoundaries LatencyBuckets();

}  // namespace cascade

#endif  // CASCADE_COMMON_METRICS_H_
