// One event of every payload type, each field set to a value that is not its
// default, for the tests that must cover every type and every field: the
// binary round trip (tests/journal/event_test.cpp), the JSON round trip
// (tests/tools/event_json_test.cpp), and the fuzzers' seeds
// (fuzz/make_seeds.cpp). Some values are chosen to be hard for a text
// format: a double without a short decimal form, 64-bit integers past 2^53,
// a negative time, a quote and a newline, UTF-8.
//
// A payload added to the schema gets a case here; SampleEvents() fails a
// test's size check (== fb::Payload::MAX) until it has one.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::testing {

// The envelope every sample carries (time, pid, stream, severity).
inline fb::EventT SampleEnvelope(fb::Severity severity = fb::Severity::Error) {
  fb::EventT e;
  e.time_ns = 1768473000LL * 1'000'000'000 + 123456789;
  e.mono_ns = 42;
  e.pid = 4242;
  e.stream = "app";
  e.severity = severity;
  return e;
}

inline std::vector<fb::EventT> SampleEvents() {
  std::vector<fb::EventT> events;
  auto add = [&](auto payload, fb::Severity severity) {
    fb::EventT e = SampleEnvelope(severity);
    e.payload.Set(std::move(payload));
    events.push_back(std::move(e));
  };

  fb::ErrorT error;
  error.context = "order_execution";
  error.exception_type = "std::runtime_error";
  error.message = "broker said \"no\"\n";
  error.frames = {"place_order(int)", "main"};
  error.recovery_attempt = 2;
  add(std::move(error), fb::Severity::Error);

  fb::CrashT crash;
  crash.origin = fb::CrashOrigin::Terminate;
  crash.signal = 6;
  crash.signal_name = "SIGABRT";
  crash.fault_address = 0xffffffffffffffffULL;
  crash.frames = {"a()", "b()"};
  crash.exception_type = "std::logic_error";
  crash.exception_message = "bad";
  crash.crashed_pid = 77;
  crash.exit_code = 134;
  crash.core_dumped = true;
  crash.crash_time_ns = -5;
  add(std::move(crash), fb::Severity::Critical);

  fb::HealthT health;
  health.rss_bytes = 123456789012ULL;
  health.cpu_percent = 0.1 + 0.2;  // no short decimal form
  health.memory_percent = 1e-300;
  health.disk_percent = 99.99;
  health.threads = 9;
  health.open_fds = 31;
  health.sampled_pid = 4242;
  health.over_threshold = true;
  add(std::move(health), fb::Severity::Warning);

  fb::LifecycleT lifecycle;
  lifecycle.phase = fb::Phase::Backoff;
  lifecycle.reason = "waiting";
  lifecycle.child_pid = 99;
  lifecycle.exit_code = 3;
  lifecycle.signal = 15;
  lifecycle.core_dumped = true;
  add(std::move(lifecycle), fb::Severity::Info);

  fb::RestartT restart;
  restart.attempt = 3;
  restart.reason = fb::RestartReason::Hang;
  restart.exit_code = 2;
  restart.signal = 9;
  restart.delay_ms = 30000;
  restart.child_pid = 100;
  add(std::move(restart), fb::Severity::Warning);

  fb::CallbackT callback;
  callback.kind = fb::CallbackKind::Cleanup;
  callback.name = "close_positions";
  callback.ok = true;
  callback.error = "timeout";
  callback.duration_us = 1500;
  add(std::move(callback), fb::Severity::Error);

  fb::GaugeT gauge;
  gauge.name = "active_positions";
  gauge.value = -2.5;
  add(std::move(gauge), fb::Severity::Info);

  fb::LogLineT log;
  log.source = "stderr";
  log.pattern = "ERROR|CRITICAL|FATAL";
  log.text = "ERROR: lost connection \xc3\xa9";
  log.suppressed = 4000000000u;
  log.dropped_bytes = 5'000'000'000'000ULL;  // past 32 bits
  add(std::move(log), fb::Severity::Warning);

  fb::LimitT limit;
  limit.kind = fb::LimitKind::Heartbeat;
  limit.value = 61000;
  limit.limit = 60000;
  limit.consecutive = 3;
  limit.action = fb::LimitAction::Abort;
  limit.child_pid = 100;
  add(std::move(limit), fb::Severity::Warning);

  fb::ConfigT config;
  config.component = "watchdog";
  for (auto [k, v] : {std::pair{"max_restarts", "10"}, std::pair{"app", "./trader --live"}}) {
    auto entry = std::make_unique<fb::ConfigEntryT>();
    entry->key = k;
    entry->value = v;
    config.entries.push_back(std::move(entry));
  }
  add(std::move(config), fb::Severity::Info);

  fb::ForecastT forecast;
  forecast.resource = "rss";
  forecast.current = 149946368;
  forecast.slope_per_s = 41943040.5;
  forecast.limit = 1073741824;
  forecast.seconds_to_limit = 22.0;
  forecast.cleared = true;
  forecast.message = "rss 143 MB rising 40 MB/s; reaches the 1024 MB limit in ~22 s";
  forecast.child_pid = 101;
  add(std::move(forecast), fb::Severity::Warning);
  return events;
}

}  // namespace blackbox::testing
