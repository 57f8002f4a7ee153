// What /metrics and `blackbox metrics` serve: counters and gauges folded from
// the journal's events, so that they survive a restart of any process.
//
// A fold of its own beside the state's (recovery/include/blackbox/state.h):
// the counters Prometheus wants (restarts by reason, deaths by signal, events
// by stream) are sums over the whole history, which the state's snapshot does
// not keep. Each stream is folded in its own order (seq); the result does not
// depend on how the streams interleave.
//
// Rules, for an event of stream S:
//   every event          events[S] += 1
// S == "watchdog":
//   Config "watchdog"    max_restarts, restart_window (seconds) from its
//                        entries
//   Lifecycle pid 0      the watchdog itself: Starting begins a watchdog run
//                        (the restart budget's count starts over, no child
//                        runs yet); Stopped/Failed: no child runs
//   Lifecycle child      Starting/Running: the child runs (Starting sets
//                        child_started_ns); Backoff/Stopped/Failed: it does
//                        not
//   Restart              restarts[reason name] += 1; its time joins the
//                        restart budget's window
//   Crash, signal > 0    watchdog_deaths[signal] += 1; last crash time
//   Health               child RSS and CPU (the last sample);
//                        over_threshold -> health_warnings += 1
// any other stream (the application):
//   Lifecycle Starting   a new run: the app's gauges are cleared
//   Error                errors += 1
//   Gauge                gauges[name] = value (at most kMaxGauges names)
//   Crash, signal > 0    app_deaths[signal] += 1; last crash time
//   Health               over_threshold -> health_warnings += 1
//   Forecast rss/disk    app_forecasts[resource] = {its time, the projected
//                        time of the limit}; a clear erases it; Lifecycle
//                        Starting/Stopped/Failed erase them all
// (The app's forecasts are shown only when given after the watchdog last saw
// its child end, child_ended_ns: a comparison of times, so the result still
// does not depend on the order the streams are folded in.)
// A death is counted once: by the watchdog when its stream exists (it sees
// every death of its child), else by the app's own crash capture.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>

#include "blackbox/event.h"

namespace blackbox::metrics {

// Label values are bounded: at most this many gauge names and streams.
inline constexpr size_t kMaxGauges = 100;
inline constexpr size_t kMaxStreams = 16;

struct MetricsState {
  std::map<std::string, uint64_t, std::less<>> events;    // by stream
  std::map<std::string, uint64_t, std::less<>> restarts;  // by reason name
  std::map<int, uint64_t> watchdog_deaths;                // by signal, as the watchdog saw them
  std::map<int, uint64_t> app_deaths;                     // by signal, the app's own capture
  int64_t last_crash_ns = 0;
  uint64_t errors = 0;
  uint64_t health_warnings = 0;
  std::map<std::string, double, std::less<>> gauges;  // the app's, current run
  uint64_t gauges_dropped = 0;                        // set_gauge names past kMaxGauges

  bool has_watchdog = false;  // the watchdog stream had an event
  bool child_running = false;
  int64_t child_started_ns = 0;
  uint64_t child_rss_bytes = 0;
  double child_cpu_percent = 0;
  // When a memory forecast holds: the wall time its projection reaches the
  // limit (0: none). Cleared by a cleared forecast and by a new child.
  int64_t memory_exhaustion_ns = 0;
  // When the watchdog last saw its child end (Backoff, Stopped, Failed).
  int64_t child_ended_ns = 0;

  // The application's own forecasts ("rss": its memory against what the
  // system can still give it; "disk": the journal's filesystem), by resource.
  struct AppForecast {
    int64_t given_ns = 0;       // the Forecast event's time
    int64_t exhaustion_ns = 0;  // the wall time its projection reaches the limit
  };
  std::map<std::string, AppForecast, std::less<>> app_forecasts;

  int max_restarts = 10;           // the watchdog's default until its Config says
  int64_t restart_window_ns = 0;   // 0 = the whole watchdog run
  std::deque<int64_t> restart_ns;  // restarts of this watchdog run (the newest few)

  // Restarts left before the watchdog gives up, as of `now_ns`.
  int RestartBudgetRemaining(int64_t now_ns) const;
  // Deaths by signal, counted once (see above).
  const std::map<int, uint64_t>& deaths() const {
    return has_watchdog ? watchdog_deaths : app_deaths;
  }
  // The app's forecast of `resource` while it holds: given in the current
  // run of the child as the watchdog sees it (or any, without a watchdog).
  const AppForecast* HoldingAppForecast(std::string_view resource) const;
};

// Pure: no clock, no I/O.
void FoldMetrics(MetricsState& state, const fb::Event& event, std::string_view stream);

}  // namespace blackbox::metrics
