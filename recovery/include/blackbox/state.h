// The folded state of a journal, and the fold that produces it.
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
#include "blackbox/journal.h"
#include "blackbox/status.h"

namespace blackbox {

struct ErrorInfo {
  int64_t time_ns = 0;
  std::string context;
  std::string exception_type;
  std::string message;
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
};

// The seed's system state (same fields and meaning), plus what the journal adds.
struct SystemState {
  // Stream -> highest seq folded into this state.
  std::map<std::string, uint64_t, std::less<>> covered;

  int64_t timestamp_ns = 0;  // time of the newest event folded
  fb::Phase status = fb::Phase::Initializing;
  int pid = 0;                  // pid of the current (or last) run
  int64_t run_started_ns = 0;   // start of the current (or last) run
  double memory_usage_mb = 0;   // RSS, MB
  double cpu_usage = 0;         // percent of one core
  double memory_percent = 0;    // system memory in use
  double disk_percent = 0;      // journal's filesystem
  int threads = 0;
  int open_fds = 0;
  std::optional<ErrorInfo> last_error;
  int restart_count = 0;
  int max_restarts = 5;
  int recovery_attempts = 0;  // consecutive failed recoveries
  int max_recovery_attempts = 3;
  std::map<std::string, double, std::less<>> gauges;  // active_connections, active_positions, …

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

  friend bool operator==(const SystemState&, const SystemState&);
};

bool operator==(const ErrorInfo&, const ErrorInfo&);
bool operator==(const CrashInfo&, const CrashInfo&);
bool operator==(const WatchdogInfo&, const WatchdogInfo&);

// The fold. Pure and deterministic: no clock, no I/O, no globals. Folding the
// same events in the same order always gives the same state.
// `stream` and `seq` identify the event in the journal (they update `covered`).
void Fold(SystemState& state, const fb::Event& event, std::string_view stream, uint64_t seq);

// Snapshot encoding (the StateSnapshot table of schemas/events.fbs).
std::string EncodeSnapshot(const SystemState& state);
Result<SystemState> DecodeSnapshot(std::span<const uint8_t> bytes);

// The seed's system_state.json object (keys: timestamp, status, uptime,
// memory_usage, cpu_usage, active_connections, active_positions, last_error,
// restart_count, max_restarts, recovery_attempts, max_recovery_attempts),
// followed by "gauges" and further extras. Pretty-printed with `indent`
// spaces (-1: one line).
std::string SystemStateJson(const SystemState& state, int indent = 2);

// Writes SystemStateJson to `path` atomically: a temp file in the same
// directory, fsync, rename, fsync of the directory. Mode 0600.
Status WriteStateFileAtomically(const std::string& path, const SystemState& state);

struct LoadStateOptions {
  // Time travel: fold only events with time_ns <= until_ns (0 = everything).
  int64_t until_ns = 0;
  // Only these streams (empty = all streams of the root).
  std::vector<std::string> streams;
  BadRecordFn on_bad;
};

// Folds a journal root: the newest usable snapshot, then the events after it
// in merged (time, stream, seq) order. Used by the tool and the watchdog.
Result<SystemState> LoadState(std::string_view root, const LoadStateOptions& options = {});

}  // namespace blackbox
