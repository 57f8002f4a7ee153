#include "restart_policy.h"

#include <algorithm>

namespace blackbox::watchdog {

RestartDecision RestartPolicy::Decide(int64_t now_ns) {
  if (options_.window_ns > 0) {
    while (!restarts_.empty() && now_ns - restarts_.front() >= options_.window_ns) {
      restarts_.pop_front();
    }
  }
  RestartDecision decision;
  decision.attempt = static_cast<int>(restarts_.size()) + 1;
  if (decision.attempt > options_.max_restarts) return decision;
  decision.allowed = true;
  decision.delay_ns = options_.delay_ns;
  if (options_.backoff) {
    // Doubling from the base delay, capped; computed without overflow.
    for (int i = 1; i < decision.attempt && decision.delay_ns < options_.backoff_max_ns; ++i) {
      decision.delay_ns *= 2;
    }
    if (options_.backoff_max_ns > 0) {
      decision.delay_ns =
          std::min(decision.delay_ns, std::max(options_.backoff_max_ns, options_.delay_ns));
    }
  }
  restarts_.push_back(now_ns);
  return decision;
}

}  // namespace blackbox::watchdog
