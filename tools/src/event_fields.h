// The fields of each payload, written once. Both directions of the JSON
// conversion walk these lists: event_to_json.cpp reads each field from the
// journaled table, json_to_event.cpp sets it on the object API's struct. A
// field added to the schema is added here, and then it is written and read.
//
// Each entry names the JSON key (the schema's field name), the table's
// accessor and the object API's member:
//   v("context", &fb::Error::context, &fb::ErrorT::context);
// A missing key in JSON leaves the member at its schema default (the object
// API's initialiser), so a default is never restated here either.
//
// Config is the one payload with more than a field list: its entries are a
// JSON object of key → value, written and read by hand after its fields.
#pragma once

#include <cstddef>
#include <span>

#include "blackbox/event.h"

namespace blackbox::tools {

template <class Table>
struct PayloadFields;

template <>
struct PayloadFields<fb::Error> {
  template <class V>
  static void Visit(V&& v) {
    v("context", &fb::Error::context, &fb::ErrorT::context);
    v("exception_type", &fb::Error::exception_type, &fb::ErrorT::exception_type);
    v("message", &fb::Error::message, &fb::ErrorT::message);
    v("frames", &fb::Error::frames, &fb::ErrorT::frames);
    v("recovery_attempt", &fb::Error::recovery_attempt, &fb::ErrorT::recovery_attempt);
  }
};

template <>
struct PayloadFields<fb::Crash> {
  template <class V>
  static void Visit(V&& v) {
    v("origin", &fb::Crash::origin, &fb::CrashT::origin);
    v("signal", &fb::Crash::signal, &fb::CrashT::signal);
    v("signal_name", &fb::Crash::signal_name, &fb::CrashT::signal_name);
    v("fault_address", &fb::Crash::fault_address, &fb::CrashT::fault_address);
    v("frames", &fb::Crash::frames, &fb::CrashT::frames);
    v("exception_type", &fb::Crash::exception_type, &fb::CrashT::exception_type);
    v("exception_message", &fb::Crash::exception_message, &fb::CrashT::exception_message);
    v("crashed_pid", &fb::Crash::crashed_pid, &fb::CrashT::crashed_pid);
    v("exit_code", &fb::Crash::exit_code, &fb::CrashT::exit_code);
    v("core_dumped", &fb::Crash::core_dumped, &fb::CrashT::core_dumped);
    v("crash_time_ns", &fb::Crash::crash_time_ns, &fb::CrashT::crash_time_ns);
  }
};

template <>
struct PayloadFields<fb::Health> {
  template <class V>
  static void Visit(V&& v) {
    v("rss_bytes", &fb::Health::rss_bytes, &fb::HealthT::rss_bytes);
    v("cpu_percent", &fb::Health::cpu_percent, &fb::HealthT::cpu_percent);
    v("memory_percent", &fb::Health::memory_percent, &fb::HealthT::memory_percent);
    v("disk_percent", &fb::Health::disk_percent, &fb::HealthT::disk_percent);
    v("threads", &fb::Health::threads, &fb::HealthT::threads);
    v("open_fds", &fb::Health::open_fds, &fb::HealthT::open_fds);
    v("sampled_pid", &fb::Health::sampled_pid, &fb::HealthT::sampled_pid);
    v("over_threshold", &fb::Health::over_threshold, &fb::HealthT::over_threshold);
  }
};

template <>
struct PayloadFields<fb::Lifecycle> {
  template <class V>
  static void Visit(V&& v) {
    v("phase", &fb::Lifecycle::phase, &fb::LifecycleT::phase);
    v("reason", &fb::Lifecycle::reason, &fb::LifecycleT::reason);
    v("child_pid", &fb::Lifecycle::child_pid, &fb::LifecycleT::child_pid);
    v("exit_code", &fb::Lifecycle::exit_code, &fb::LifecycleT::exit_code);
    v("signal", &fb::Lifecycle::signal, &fb::LifecycleT::signal);
    v("core_dumped", &fb::Lifecycle::core_dumped, &fb::LifecycleT::core_dumped);
  }
};

template <>
struct PayloadFields<fb::Restart> {
  template <class V>
  static void Visit(V&& v) {
    v("attempt", &fb::Restart::attempt, &fb::RestartT::attempt);
    v("reason", &fb::Restart::reason, &fb::RestartT::reason);
    v("exit_code", &fb::Restart::exit_code, &fb::RestartT::exit_code);
    v("signal", &fb::Restart::signal, &fb::RestartT::signal);
    v("delay_ms", &fb::Restart::delay_ms, &fb::RestartT::delay_ms);
    v("child_pid", &fb::Restart::child_pid, &fb::RestartT::child_pid);
  }
};

template <>
struct PayloadFields<fb::Callback> {
  template <class V>
  static void Visit(V&& v) {
    v("kind", &fb::Callback::kind, &fb::CallbackT::kind);
    v("name", &fb::Callback::name, &fb::CallbackT::name);
    v("ok", &fb::Callback::ok, &fb::CallbackT::ok);
    v("error", &fb::Callback::error, &fb::CallbackT::error);
    v("duration_us", &fb::Callback::duration_us, &fb::CallbackT::duration_us);
  }
};

template <>
struct PayloadFields<fb::Gauge> {
  template <class V>
  static void Visit(V&& v) {
    v("name", &fb::Gauge::name, &fb::GaugeT::name);
    v("value", &fb::Gauge::value, &fb::GaugeT::value);
  }
};

template <>
struct PayloadFields<fb::LogLine> {
  template <class V>
  static void Visit(V&& v) {
    v("source", &fb::LogLine::source, &fb::LogLineT::source);
    v("pattern", &fb::LogLine::pattern, &fb::LogLineT::pattern);
    v("text", &fb::LogLine::text, &fb::LogLineT::text);
    v("suppressed", &fb::LogLine::suppressed, &fb::LogLineT::suppressed);
    v("dropped_bytes", &fb::LogLine::dropped_bytes, &fb::LogLineT::dropped_bytes);
  }
};

template <>
struct PayloadFields<fb::Limit> {
  template <class V>
  static void Visit(V&& v) {
    v("kind", &fb::Limit::kind, &fb::LimitT::kind);
    v("value", &fb::Limit::value, &fb::LimitT::value);
    v("limit", &fb::Limit::limit, &fb::LimitT::limit);
    v("consecutive", &fb::Limit::consecutive, &fb::LimitT::consecutive);
    v("action", &fb::Limit::action, &fb::LimitT::action);
    v("child_pid", &fb::Limit::child_pid, &fb::LimitT::child_pid);
  }
};

template <>
struct PayloadFields<fb::Config> {
  template <class V>
  static void Visit(V&& v) {
    v("component", &fb::Config::component, &fb::ConfigT::component);
    // "entries": by hand, see the top of this file.
  }
};

template <>
struct PayloadFields<fb::Forecast> {
  template <class V>
  static void Visit(V&& v) {
    v("resource", &fb::Forecast::resource, &fb::ForecastT::resource);
    v("current", &fb::Forecast::current, &fb::ForecastT::current);
    v("slope_per_s", &fb::Forecast::slope_per_s, &fb::ForecastT::slope_per_s);
    v("limit", &fb::Forecast::limit, &fb::ForecastT::limit);
    v("seconds_to_limit", &fb::Forecast::seconds_to_limit, &fb::ForecastT::seconds_to_limit);
    v("cleared", &fb::Forecast::cleared, &fb::ForecastT::cleared);
    v("message", &fb::Forecast::message, &fb::ForecastT::message);
    v("child_pid", &fb::Forecast::child_pid, &fb::ForecastT::child_pid);
  }
};

// Every payload table, in the order of the schema's Payload union. A payload
// added to the schema and not here fails the static_assert below.
template <class... Tables>
struct TableList {
  static constexpr size_t size = sizeof...(Tables);
  // Calls f(static_cast<const Table*>(nullptr)) for the table of `type`;
  // false when `type` is none of them (NONE, or a payload of a newer build).
  template <class F>
  static bool With(fb::Payload type, F&& f) {
    return ((type == fb::PayloadTraits<Tables>::enum_value
                 ? (f(static_cast<const Tables*>(nullptr)), true)
                 : false) ||
            ...);
  }
};
using PayloadTables =
    TableList<fb::Error, fb::Crash, fb::Health, fb::Lifecycle, fb::Restart, fb::Callback, fb::Gauge,
              fb::LogLine, fb::Limit, fb::Config, fb::Forecast>;
static_assert(PayloadTables::size == static_cast<size_t>(fb::Payload::MAX),
              "a payload of the schema has no field list in event_fields.h");

// The values of an enum of the schema and their names, as flatc generates
// them (names in the schema's case).
template <class E>
struct EnumTable {
  std::span<const E> values;
  const char* const* names;
};
#define BLACKBOX_ENUM_TABLE(Type)                                                      \
  inline EnumTable<fb::Type> EnumTableOf(fb::Type) {                                   \
    return {std::span<const fb::Type>(fb::EnumValues##Type()), fb::EnumNames##Type()}; \
  }
BLACKBOX_ENUM_TABLE(Severity)
BLACKBOX_ENUM_TABLE(Phase)
BLACKBOX_ENUM_TABLE(RestartReason)
BLACKBOX_ENUM_TABLE(CallbackKind)
BLACKBOX_ENUM_TABLE(CrashOrigin)
BLACKBOX_ENUM_TABLE(LimitKind)
BLACKBOX_ENUM_TABLE(LimitAction)
#undef BLACKBOX_ENUM_TABLE

}  // namespace blackbox::tools
