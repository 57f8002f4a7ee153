#include "health_forecast.h"

namespace blackbox {
namespace {

ForecastOptions Options(int64_t horizon_ns, const char* resource) {
  ForecastOptions o;
  o.horizon_ns = horizon_ns;
  o.resource = resource;
  return o;
}

}  // namespace

HealthForecasts::HealthForecasts(int64_t horizon_ns, uint64_t memory_limit_bytes)
    : memory_limit_bytes_(memory_limit_bytes),
      memory_(Options(horizon_ns, "rss")),
      disk_(Options(horizon_ns, "disk")) {}

std::vector<ResourceForecast> HealthForecasts::Observe(int64_t t_ns, const HealthSample& sample) {
  std::vector<ResourceForecast> out;
  // A sample whose figure could not be read (0) is left out rather than
  // taken for a drop to nothing.
  if (sample.rss_bytes > 0 && (memory_limit_bytes_ > 0 || sample.memory_available_bytes > 0)) {
    memory_.set_limit(static_cast<double>(memory_limit_bytes_ > 0
                                              ? memory_limit_bytes_
                                              : sample.rss_bytes + sample.memory_available_bytes));
    if (auto e = memory_.Observe(t_ns, static_cast<double>(sample.rss_bytes))) {
      out.push_back({"rss", std::move(*e)});
    }
  }
  if (sample.disk_capacity_bytes > 0) {
    disk_.set_limit(static_cast<double>(sample.disk_capacity_bytes));
    if (auto e = disk_.Observe(t_ns, static_cast<double>(sample.disk_used_bytes))) {
      out.push_back({"disk", std::move(*e)});
    }
  }
  return out;
}

}  // namespace blackbox
