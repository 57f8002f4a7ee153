// The folded state of a journal, and the fold that produces it. Pure: no
// I/O here (reading a journal root and writing the state file are in
// blackbox/state_io.h).
//
// State is never stored as a mutable file: it is folded from the journal's
// events. The same Fold powers the recovery manager (at startup), the
// `blackbox` tool (state, export --state, time travel) and
// `blackbox-watchdog --status`, so they can never disagree.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/status.h"

namespace blackbox {

struct ErrorInfo {
  int64_t time_ns = 0;
  std::string context;
  std::string exception_type;
  std::string message;

  friend bool operator==(const ErrorInfo&, const ErrorInfo&) = default;
};

struct CrashInfo {
  int64_t time_ns = 0;
  std::string stream;
  fb::CrashOrigin origin = fb::CrashOrigin::Signal;
  int signal = 0;
  int crashed_pid = 0;
  int exit_code = -1;
  std::string exception_type;
  std::string exception_message;
  std::string first_frame;

  friend bool operator==(const CrashInfo&, const CrashInfo&) = default;
};

// What the watchdog stream says about the supervised service.
struct WatchdogInfo {
  int watchdog_pid = 0;
  int child_pid = 0;
  fb::Phase phase = fb::Phase::Initializing;
  int64_t started_ns = 0;        // watchdog start
  int64_t child_started_ns = 0;  // current child's spawn
  int restart_count = 0;         // restarts inside the current window
  int total_restarts = 0;        // restarts over the watchdog's whole history
  bool has_last_exit = false;
  int last_exit_code = -1;
  int last_exit_signal = 0;
  fb::RestartReason last_restart_reason = fb::RestartReason::Crash;
  uint64_t child_rss_bytes = 0;
  double child_cpu_percent = 0;
  std::string status_text;  // the child's last STATUS=
  int64_t last_heartbeat_ns = 0;
  std::string metrics_address;  // where its /metrics listens; empty when off
  // The memory forecast that holds (a Forecast warning not yet cleared, of
  // the current child): seconds to the limit when it was given; 0 when none.
  double forecast_seconds = 0;
  std::string forecast_message;

  friend bool operator==(const WatchdogInfo&, const WatchdogInfo&) = default;
};

// A forecast the application's health monitor gave about its own process
// (blackbox/forecast.h) and has not cleared.
struct ForecastInfo {
  double seconds_to_limit = 0;  // when it was given
  std::string message;          // "rss 143 MB rising 40 MB/s; reaches the …"

  friend bool operator==(const ForecastInfo&, const ForecastInfo&) = default;
};

// The seed's system state (same fields and meaning), plus what the journal adds.
struct SystemState {
  // Stream -> highest seq folded into this state.
  std::map<std::string, uint64_t, std::less<>> covered;

  int64_t timestamp_ns = 0;  // time of the newest event folded
  fb::Phase status = fb::Phase::Initializing;
  int pid = 0;                 // pid of the current (or last) run
  int64_t run_started_ns = 0;  // start of the current (or last) run
  double memory_usage_mb = 0;  // RSS, MB
  double cpu_usage = 0;        // percent of one core
  double memory_percent = 0;   // system memory in use
  double disk_percent = 0;     // journal's filesystem
  int threads = 0;
  int open_fds = 0;
  std::optional<ErrorInfo> last_error;
  int restart_count = 0;
  int max_restarts = 5;
  int recovery_attempts = 0;  // consecutive failed recoveries
  int max_recovery_attempts = 3;
  std::map<std::string, double, std::less<>> gauges;  // active_connections, active_positions, …
  // The application's forecasts that hold, by resource ("rss", "disk").
  std::map<std::string, ForecastInfo, std::less<>> forecasts;

  uint64_t event_count = 0;
  uint64_t error_count = 0;
  uint64_t crash_count = 0;
  uint64_t health_warnings = 0;
  std::optional<CrashInfo> last_crash;

  WatchdogInfo watchdog;

  // Seconds from run_started_ns to timestamp_ns (0 before the first start).
  double uptime_seconds() const;
  // A gauge's value, or 0 when never set.
  double gauge(std::string_view name) const;

  // Every field: a field added is compared without a word more.
  friend bool operator==(const SystemState&, const SystemState&) = default;
};

// The fold. Pure and deterministic: no clock, no I/O, no globals. Folding the
// same events in the same order always gives the same state.
// `stream` and `seq` identify the event in the journal (they update `covered`).
//
// Rules, for every event:
//   covered[stream] = max(covered[stream], seq); event_count += 1;
//   timestamp_ns = max(timestamp_ns, event.time_ns).
// Events of the stream named kWatchdogStream update only `watchdog`, the
// counters and `last_crash` (never the app's status, gauges or errors):
//   Lifecycle, child_pid == 0   the watchdog itself: phase; Starting also sets
//                               watchdog_pid (event pid), started_ns and
//                               resets restart_count.
//   Lifecycle, child_pid != 0   the child: phase, child_pid; a spawn sets
//                               child_started_ns and clears status_text
//                               and the forecast; Running sets
//                               last_heartbeat_ns and, when reason is not
//                               empty, status_text (the child's STATUS=);
//                               exit_code >= 0 or signal > 0 records the
//                               exit (has_last_exit, last_exit_*).
//   Restart                     restart_count = attempt, total_restarts += 1,
//                               last_restart_reason, child_pid (when != 0).
//   Health                      child_rss_bytes, child_cpu_percent;
//                               over_threshold -> health_warnings += 1.
//   Crash                       as the app's Crash below.
//   Error                       error_count += 1.
//   Config "watchdog"           metrics_address = its entry of that name
//                               (empty when absent: the server is off).
//   Forecast                    forecast_seconds, forecast_message (both
//                               cleared by a cleared one, by the child's
//                               exit, and by the spawn of a new child).
// Events of any other stream (the application) update the app's fields:
//   Lifecycle   status = phase. Starting begins a run: pid = event pid,
//               run_started_ns = time; the per-run fields (health figures,
//               gauges, forecasts, recovery_attempts) are cleared;
//               Stopped and Failed clear the forecasts.
//   Error       last_error, error_count += 1, status = Error.
//   Callback    kind Recovery, !ok, while status == Recovering: the recovery
//               failed: recovery_attempts += 1, status = Error (further
//               failures of the same recovery do not count again).
//               A Lifecycle(Running) that follows Recovering is a fully
//               successful recovery: recovery_attempts = 0.
//   Restart     restart_count += 1.
//   Gauge       gauges[name] = value.
//   Forecast    forecasts[resource] = {seconds_to_limit, message}; a
//               cleared one erases forecasts[resource].
//   Health      memory_usage_mb (rss / 2^20), cpu_usage, memory_percent,
//               disk_percent, threads, open_fds; over_threshold ->
//               health_warnings += 1.
//   Config      component "recovery": entries max_restarts and
//               max_recovery_attempts (decimal integers; others ignored).
//   Crash       crash_count += 1, last_crash (status unchanged: a crash is
//               ingested by the next run); but a record of the death
//               last_crash already is (the same crashed pid, within 2 min:
//               the app's capture and the watchdog's record of one death)
//               counts no second time, and the one of the two with frames
//               or an exception is the last_crash kept.
//   LogLine, Limit: counted only.
void Fold(SystemState& state, const fb::Event& event, std::string_view stream, uint64_t seq);

// Snapshot encoding (the StateSnapshot table of schemas/events.fbs).
std::string EncodeSnapshot(const SystemState& state);
Result<SystemState> DecodeSnapshot(std::span<const uint8_t> bytes);

// The seed's status names: "initializing" (Initializing, Starting), "running",
// "error", "recovering", "stopping", "stopped", "failed" ("backoff" for the
// watchdog's Backoff).
std::string_view SeedStatusName(fb::Phase phase);

// The seed's system_state.json object (keys: timestamp, status, uptime,
// memory_usage, cpu_usage, active_connections, active_positions, last_error,
// restart_count, max_restarts, recovery_attempts, max_recovery_attempts),
// followed by "gauges" and further extras. Pretty-printed with `indent`
// spaces (-1: one line).
//   timestamp        local time of timestamp_ns, "2024-01-15T10:30:00"
//   status           SeedStatusName(status)
//   uptime           seconds (uptime_seconds())
//   memory_usage     RSS in MB;  cpu_usage: percent of one core
//   active_connections, active_positions: those gauges, as integers
//   last_error       null, or the last error's message
// Extras: "gauges", "forecasts" (resource -> {"seconds_to_limit",
// "message"}: the app's forecasts that hold), "pid", "memory_percent", "disk_percent", "threads",
// "open_fds", "error_count", "crash_count", "health_warnings", "event_count",
// "last_error_detail", "last_crash", "watchdog" (with "forecast": the memory
// forecast that holds, or null), "covered". In the extras,
// every time is RFC 3339 UTC ("2024-01-15T10:30:00.000000000Z") and every
// absent value (an empty text, no exit yet) is null; only the seed's
// "timestamp" keeps the seed's local form, for the seed's readers.
std::string SystemStateJson(const SystemState& state, int indent = 2);

}  // namespace blackbox
