// When to restart, and after how long. Pure: the caller passes the clock.
#pragma once

#include <cstdint>
#include <deque>

namespace blackbox::watchdog {

struct RestartPolicyOptions {
  int max_restarts = 10;  // restarts allowed inside the window
  int64_t window_ns = 0;  // 0 = the whole run (restarts never expire)
  int64_t delay_ns = 0;   // base delay before a restart
  bool backoff = false;   // double the delay for each restart in the window
  int64_t backoff_max_ns = 0;
};

struct RestartDecision {
  bool allowed = false;  // false: the budget is spent, give up
  int attempt = 0;       // 1 for the first restart of a window
  int64_t delay_ns = 0;
};

// Counts restarts in a sliding window. A run that stays up for the whole
// window lets every earlier restart expire, which resets the count and the
// backoff.
class RestartPolicy {
 public:
  explicit RestartPolicy(const RestartPolicyOptions& options) : options_(options) {}

  // The child has ended at `now_ns` and wants a restart. Records the restart
  // when it is allowed.
  RestartDecision Decide(int64_t now_ns);

  // Restarts inside the window as of the last Decide.
  int count() const { return static_cast<int>(restarts_.size()); }

 private:
  RestartPolicyOptions options_;
  std::deque<int64_t> restarts_;  // times of the restarts still inside the window
};

}  // namespace blackbox::watchdog
