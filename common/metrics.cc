#include "common/metrics.h"

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace cascade {
namespace {

absl::Mutex g_exposer_mu;
prometheus::Exposer* g_exposer ABSL_GUARDED_BY(g_exposer_mu) = nullptr;
// Kept alive here: the exposer holds only weak references.
std::vector<std::shared_ptr<prometheus::Collectable>>* g_collectables
    ABSL_GUARDED_BY(g_exposer_mu) = new std::vector<std::shared_ptr<prometheus::Collectable>>();

}  // namespace

std::shared_ptr<prometheus::Registry> MetricsRegistry() {
  static auto* registry = new std::shared_ptr<prometheus::Registry>(
      std::make_shared<prometheus::Registry>());
  return *registry;
}

absl::StatusOr<int> StartMetricsExposer(int port, const std::string& bind_address) {
  absl::MutexLock lock(&g_exposer_mu);
  if (g_exposer != nullptr) {
    return absl::FailedPreconditionError("the metrics exposer is already running");
  }
  try {
    // Leaked on purpose: it must outlive every thread that updates metrics,
    // and its destructor blocks ~2 s.
    g_exposer = new prometheus::Exposer(absl::StrCat(bind_address, ":", port));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", bind_address, ":", port, ": ", e.what()));
  }
  g_exposer->RegisterCollectable(MetricsRegistry());
  for (const auto& collectable : *g_collectables) g_exposer->RegisterCollectable(collectable);
  std::vector<int> ports = g_exposer->GetListeningPorts();
  if (ports.empty()) return absl::InternalError("metrics exposer reports no listening port");
  return ports.front();
}

void RegisterCollectable(std::shared_ptr<prometheus::Collectable> collectable) {
  absl::MutexLock lock(&g_exposer_mu);
  g_collectables->push_back(collectable);
  if (g_exposer != nullptr) g_exposer->RegisterCollectable(collectable);
}

std::string RenderMetricsText() {
  std::vector<prometheus::MetricFamily> families = MetricsRegistry()->Collect();
  {
    absl::MutexLock lock(&g_exposer_mu);
    for (const auto& collectable : *g_collectables) {
      for (auto& family : collectable->Collect()) families.push_back(std::move(family));
    }
  }
  prometheus::TextSerializer serializer;
  return serializer.Serialize(families);
}

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int exponent = -16; exponent <= 8; ++exponent) {
    buckets.push_back(std::pow(10.0, exponent / 4.0));
  }
  return buckets;
}

}  // namespace cascade
