// The fields of the folded state that a snapshot keeps, written once. The
// snapshot codec (snapshot.cpp) walks these lists both ways: encoding copies
// each member of the state into the schema's object-API struct, decoding
// copies it back. A field added to SystemState and to StateSnapshot is added
// here, and then it round-trips; Snapshot.EveryFieldOfTheSchemaIsListed
// (tests/state) fails until the list names every field of the schema's
// tables.
//
// Each entry names the schema's field, the state's member and the object
// API's member:
//   v("watchdog_pid", &WatchdogInfo::watchdog_pid, &fb::WatchdogSummaryT::watchdog_pid);
//
// Four fields are more than a copy and are written by hand in snapshot.cpp:
// `covered` and `gauges` (maps here, vectors of tables there), and
// `last_error` / `last_crash` (optionals here, absent tables there); the
// `watchdog` table is always written. kByHand names them.
#pragma once

#include <array>
#include <string_view>

#include "blackbox/state.h"

namespace blackbox::snapshot_fields {

struct ErrorSummaryFields {
  template <class V>
  static void Visit(V&& v) {
    v("time_ns", &ErrorInfo::time_ns, &fb::ErrorSummaryT::time_ns);
    v("context", &ErrorInfo::context, &fb::ErrorSummaryT::context);
    v("exception_type", &ErrorInfo::exception_type, &fb::ErrorSummaryT::exception_type);
    v("message", &ErrorInfo::message, &fb::ErrorSummaryT::message);
  }
};

struct CrashSummaryFields {
  template <class V>
  static void Visit(V&& v) {
    v("time_ns", &CrashInfo::time_ns, &fb::CrashSummaryT::time_ns);
    v("stream", &CrashInfo::stream, &fb::CrashSummaryT::stream);
    v("origin", &CrashInfo::origin, &fb::CrashSummaryT::origin);
    v("signal", &CrashInfo::signal, &fb::CrashSummaryT::signal);
    v("crashed_pid", &CrashInfo::crashed_pid, &fb::CrashSummaryT::crashed_pid);
    v("exit_code", &CrashInfo::exit_code, &fb::CrashSummaryT::exit_code);
    v("exception_type", &CrashInfo::exception_type, &fb::CrashSummaryT::exception_type);
    v("exception_message", &CrashInfo::exception_message, &fb::CrashSummaryT::exception_message);
    v("first_frame", &CrashInfo::first_frame, &fb::CrashSummaryT::first_frame);
  }
};

struct WatchdogSummaryFields {
  template <class V>
  static void Visit(V&& v) {
    using W = WatchdogInfo;
    using T = fb::WatchdogSummaryT;
    v("watchdog_pid", &W::watchdog_pid, &T::watchdog_pid);
    v("child_pid", &W::child_pid, &T::child_pid);
    v("phase", &W::phase, &T::phase);
    v("started_ns", &W::started_ns, &T::started_ns);
    v("child_started_ns", &W::child_started_ns, &T::child_started_ns);
    v("restart_count", &W::restart_count, &T::restart_count);
    v("total_restarts", &W::total_restarts, &T::total_restarts);
    v("last_exit_code", &W::last_exit_code, &T::last_exit_code);
    v("last_exit_signal", &W::last_exit_signal, &T::last_exit_signal);
    v("last_restart_reason", &W::last_restart_reason, &T::last_restart_reason);
    v("has_last_exit", &W::has_last_exit, &T::has_last_exit);
    v("child_rss_bytes", &W::child_rss_bytes, &T::child_rss_bytes);
    v("child_cpu_percent", &W::child_cpu_percent, &T::child_cpu_percent);
    v("status_text", &W::status_text, &T::status_text);
    v("last_heartbeat_ns", &W::last_heartbeat_ns, &T::last_heartbeat_ns);
    v("metrics_address", &W::metrics_address, &T::metrics_address);
    v("forecast_seconds", &W::forecast_seconds, &T::forecast_seconds);
    v("forecast_message", &W::forecast_message, &T::forecast_message);
  }
};

// The plain fields of StateSnapshot.
struct StateSnapshotFields {
  template <class V>
  static void Visit(V&& v) {
    using S = SystemState;
    using T = fb::StateSnapshotT;
    v("timestamp_ns", &S::timestamp_ns, &T::timestamp_ns);
    v("status", &S::status, &T::status);
    v("pid", &S::pid, &T::pid);
    v("run_started_ns", &S::run_started_ns, &T::run_started_ns);
    v("memory_usage_mb", &S::memory_usage_mb, &T::memory_usage_mb);
    v("cpu_usage", &S::cpu_usage, &T::cpu_usage);
    v("memory_percent", &S::memory_percent, &T::memory_percent);
    v("disk_percent", &S::disk_percent, &T::disk_percent);
    v("threads", &S::threads, &T::threads);
    v("open_fds", &S::open_fds, &T::open_fds);
    v("restart_count", &S::restart_count, &T::restart_count);
    v("max_restarts", &S::max_restarts, &T::max_restarts);
    v("recovery_attempts", &S::recovery_attempts, &T::recovery_attempts);
    v("max_recovery_attempts", &S::max_recovery_attempts, &T::max_recovery_attempts);
    v("event_count", &S::event_count, &T::event_count);
    v("error_count", &S::error_count, &T::error_count);
    v("crash_count", &S::crash_count, &T::crash_count);
    v("health_warnings", &S::health_warnings, &T::health_warnings);
  }
};

// StateSnapshot's fields that snapshot.cpp writes by hand.
inline constexpr std::array<std::string_view, 6> kByHand = {"covered",    "gauges",     "forecasts",
                                                            "last_error", "last_crash", "watchdog"};

// The two directions of the codec: every listed member from the state to
// the object API's struct, and back.
template <class Fields, class State, class Table>
void ToTable(const State& state, Table& table) {
  Fields::Visit([&](std::string_view, auto state_member, auto table_member) {
    table.*table_member = state.*state_member;
  });
}

template <class Fields, class State, class Table>
void FromTable(const Table& table, State& state) {
  Fields::Visit([&](std::string_view, auto state_member, auto table_member) {
    state.*state_member = table.*table_member;
  });
}

}  // namespace blackbox::snapshot_fields
