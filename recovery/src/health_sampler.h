// Resource figures of this process from /proc and statvfs.
#pragma once

#include <cstdint>
#include <string>

namespace blackbox {

struct HealthSample {
  uint64_t rss_bytes = 0;
  double cpu_percent = 0;     // this process, percent of one core
  double memory_percent = 0;  // system memory in use (MemTotal - MemAvailable)
  double disk_percent = 0;    // used / (used + available) of `disk_path`'s filesystem
  int threads = 0;
  int open_fds = 0;
  // What the forecasts are made of (health_forecast.h), in bytes.
  uint64_t memory_available_bytes = 0;  // the system's MemAvailable
  uint64_t disk_used_bytes = 0;         // of `disk_path`'s filesystem
  uint64_t disk_capacity_bytes = 0;     // used + available to this user
};

// Not thread-safe: each consumer owns its sampler, because CPU % is a rate
// between two calls of the same sampler.
class HealthSampler {
 public:
  // The CPU baseline is taken here, so the first Sample() reports the CPU
  // used since construction, not 0.
  explicit HealthSampler(std::string disk_path);
  HealthSample Sample();

 private:
  std::string disk_path_;
  int64_t last_cpu_ns_ = 0;
  int64_t last_mono_ns_ = 0;
  double last_cpu_percent_ = 0;
};

}  // namespace blackbox
