// The health monitor's forecasts (blackbox/forecast.h) for its own process:
// - "rss": this process's resident memory against what the system could
//   still give it, its RSS plus the system's MemAvailable at each sample (or
//   a fixed limit, RecoveryOptions::forecast_memory_limit_bytes);
// - "disk": the bytes in use on the journal's filesystem against its
//   capacity (used + available to this user), for a journal (or anything
//   beside it) filling the disk.
// Pure: fed samples with their times, it says what to journal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "blackbox/forecast.h"
#include "health_sampler.h"

namespace blackbox {

struct ResourceForecast {
  std::string resource;  // "rss" or "disk"
  ForecastEvent event;
};

class HealthForecasts {
 public:
  // horizon_ns <= 0 disables both. memory_limit_bytes 0: RSS + MemAvailable.
  HealthForecasts(int64_t horizon_ns, uint64_t memory_limit_bytes);

  // One health sample taken at `t_ns` (any clock that only moves forward).
  // Returns the warnings and clears to journal, memory first.
  std::vector<ResourceForecast> Observe(int64_t t_ns, const HealthSample& sample);

 private:
  uint64_t memory_limit_bytes_;
  Forecaster memory_;
  Forecaster disk_;
};

}  // namespace blackbox
