#include "limit_tracker.h"

namespace blackbox::watchdog {

std::vector<LimitTracker::Breach> LimitTracker::OnSample(double rss_mb,
                                                         std::optional<double> cpu_percent) {
  over_memory_ = OverMemory(rss_mb) ? over_memory_ + 1 : 0;
  over_cpu_ = OverCpu(cpu_percent) ? over_cpu_ + 1 : 0;
  std::vector<Breach> out;
  if (over_memory_ > 0) {
    out.push_back({fb::LimitKind::Memory, rss_mb, limits_.max_memory_mb, over_memory_,
                   over_memory_ >= limits_.cycles});
    if (out.back().stop) return out;
  }
  if (over_cpu_ > 0) {
    out.push_back({fb::LimitKind::Cpu, *cpu_percent, limits_.max_cpu_percent, over_cpu_,
                   over_cpu_ >= limits_.cycles});
  }
  return out;
}

}  // namespace blackbox::watchdog
