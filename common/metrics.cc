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
  std::vector<int> ports = g_exposer->GetListeningPorts();
  if (ports.empty()) return absl::InternalError("metrics exposer reports no listening port");
  return ports.front();
}

std::string RenderMetricsText() {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(MetricsRegistry()->Collect());
}

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int exponent = -16; exponent <= 8; ++exponent) {
    buckets.push_back(std::pow(10.0, exponent / 4.0));
  }
  return buckets;
}

}  // namespace cascade
