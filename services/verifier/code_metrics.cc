#include "services/verifier/code_metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "common/metrics.h"

namespace cascade::verifier {
namespace {

// Reads the backend's atomics when Prometheus scrapes.
class CodeStatsCollectable : public prometheus::Collectable {
 public:
  explicit CodeStatsCollectable(std::shared_ptr<const CodeBackendStats> stats)
      : stats_(std::move(stats)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    return {Family("cascade_verifier_code_queue_depth", "Code items waiting for a sandbox slot",
                   prometheus::MetricType::Gauge, stats_->queue_depth.load()),
            Family("cascade_verifier_code_active_items", "Code items running in the sandbox",
                   prometheus::MetricType::Gauge, stats_->active.load()),
            Family("cascade_verifier_code_sandbox_failures_total",
                   "Runs where the sandbox itself failed (not the program)",
                   prometheus::MetricType::Counter, stats_->sandbox_failures.load()),
            Family("cascade_verifier_code_rejected_total",
                   "Code items refused because the sandbox queue was full",
                   prometheus::MetricType::Counter, stats_->rejected.load())};
  }

 private:
  static prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                         prometheus::MetricType type, int64_t value) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = type;
    prometheus::ClientMetric metric;
    if (type == prometheus::MetricType::Gauge) {
      metric.gauge.value = static_cast<double>(value);
    } else {
      metric.counter.value = static_cast<double>(value);
    }
    family.metric.push_back(std::move(metric));
    return family;
  }

  std::shared_ptr<const CodeBackendStats> stats_;
};

}  // namespace

void AttachCodeMetrics(CodeBackendOptions& options) {
  auto stats = std::make_shared<CodeBackendStats>();
  options.stats = stats;
  RegisterCollectable(std::make_shared<CodeStatsCollectable>(stats));

  auto& registry = *MetricsRegistry();
  auto* runs = &prometheus::BuildCounter()
                    .Name("cascade_verifier_code_runs_total")
                    .Help("Sandbox runs (compiles and tests), by language, phase and verdict")
                    .Register(registry);
  auto* seconds = &prometheus::BuildHistogram()
                       .Name("cascade_verifier_code_run_seconds")
                       .Help("Wall time of one sandbox run, by language and phase")
                       .Register(registry);
  options.on_run = [runs, seconds](const CodeRunEvent& event) {
    const std::string language(event.language);
    const std::string phase = event.compile ? "compile" : "test";
    runs->Add({{"language", language}, {"phase", phase}, {"verdict", std::string(event.verdict)}})
        .Increment();
    // Family::Add returns the existing child for known labels.
    seconds->Add({{"language", language}, {"phase", phase}}, LatencyBuckets())
        .Observe(event.wall_s);
  };
}

}  // namespace cascade::verifier
