// Counting health samples over the memory and CPU limits: the pure part of
// Supervisor::OnHealth. A sample over a limit is a warning; --limit-cycles
// samples in a row over it stop the child (memory is judged first). Unit-
// tested in tests/watchdog/limit_tracker_test.cpp.
#pragma once

#include <optional>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::watchdog {

class LimitTracker {
 public:
  struct Limits {
    double max_memory_mb = 0;
    double max_cpu_percent = 0;
    int cycles = 1;  // consecutive samples over a limit before the stop
  };
  // One sample over a limit: journaled as a Limit event.
  struct Breach {
    fb::LimitKind kind = fb::LimitKind::Memory;
    double value = 0;
    double limit = 0;
    int consecutive = 0;
    bool stop = false;  // the last breach of its sample when true
  };

  explicit LimitTracker(Limits limits) : limits_(limits) {}

  // Whether a sample is over a limit (the Health event's over_threshold).
  bool Over(double rss_mb, std::optional<double> cpu_percent) const {
    return OverMemory(rss_mb) || OverCpu(cpu_percent);
  }
  // Counts one sample of the current child (CPU is unknown on its first).
  std::vector<Breach> OnSample(double rss_mb, std::optional<double> cpu_percent);
  // A new child: the counts start again.
  void Reset() { over_memory_ = over_cpu_ = 0; }

 private:
  bool OverMemory(double rss_mb) const { return rss_mb > limits_.max_memory_mb; }
  bool OverCpu(std::optional<double> cpu) const { return cpu && *cpu > limits_.max_cpu_percent; }

  Limits limits_;
  int over_memory_ = 0;
  int over_cpu_ = 0;
};

}  // namespace blackbox::watchdog
