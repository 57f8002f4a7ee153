#include "watchdog_events.h"

#include <memory>

namespace blackbox::watchdog::events {
namespace {

template <class T>
fb::PayloadUnion Payload(T&& table) {
  fb::PayloadUnion u;
  u.Set(std::forward<T>(table));
  return u;
}

}  // namespace

fb::PayloadUnion Config(const std::vector<std::pair<std::string, std::string>>& entries) {
  fb::ConfigT config;
  config.component = "watchdog";
  for (const auto& [key, value] : entries) {
    auto entry = std::make_unique<fb::ConfigEntryT>();
    entry->key = key;
    entry->value = value;
    config.entries.push_back(std::move(entry));
  }
  return Payload(std::move(config));
}

fb::PayloadUnion JournalDamage(std::string message) {
  fb::ErrorT damage;
  damage.context = "journal";
  damage.message = std::move(message);
  return Payload(std::move(damage));
}

fb::PayloadUnion Lifecycle(fb::Phase phase, std::string reason, int child_pid, int exit_code,
                           int signal, bool core_dumped) {
  fb::LifecycleT lifecycle;
  lifecycle.phase = phase;
  lifecycle.reason = std::move(reason);
  lifecycle.child_pid = child_pid;
  lifecycle.exit_code = exit_code;
  lifecycle.signal = signal;
  lifecycle.core_dumped = core_dumped;
  return Payload(std::move(lifecycle));
}

fb::PayloadUnion OutputMatch(bool is_stderr, const LineMatch& match) {
  fb::LogLineT line;
  line.source = is_stderr ? "stderr" : "stdout";
  line.pattern = std::string(match.pattern);
  line.text = std::string(match.line);
  line.suppressed = match.suppressed;
  return Payload(std::move(line));
}

fb::PayloadUnion OutputDropped(bool is_stderr, uint64_t bytes) {
  fb::LogLineT line;
  line.source = is_stderr ? "stderr" : "stdout";
  line.dropped_bytes = bytes;
  return Payload(std::move(line));
}

fb::PayloadUnion ChildCrash(int pid, const ExitInfo& exit, int64_t wall_ns) {
  fb::CrashT crash;
  crash.origin = fb::CrashOrigin::Watchdog;
  crash.signal = exit.signal;
  if (exit.signal != 0) crash.signal_name = SignalName(exit.signal);
  crash.crashed_pid = pid;
  crash.exit_code = exit.code;
  crash.core_dumped = exit.core_dumped;
  crash.crash_time_ns = wall_ns;
  return Payload(std::move(crash));
}

fb::RestartT Restart(int attempt, fb::RestartReason reason, const ExitInfo& exit,
                     int64_t delay_ns) {
  fb::RestartT restart;
  restart.attempt = attempt;
  restart.reason = reason;
  restart.exit_code = exit.code;
  restart.signal = exit.signal;
  restart.delay_ms = delay_ns / 1'000'000;
  return restart;
}

fb::PayloadUnion Health(const TreeSample& sample, std::optional<double> cpu_percent, int pid,
                        bool over_threshold) {
  fb::HealthT health;
  health.rss_bytes = sample.rss_bytes;
  health.cpu_percent = cpu_percent.value_or(0);
  health.threads = sample.threads;
  health.sampled_pid = pid;
  health.over_threshold = over_threshold;
  return Payload(std::move(health));
}

fb::PayloadUnion LimitBreach(const LimitTracker::Breach& breach, int pid) {
  fb::LimitT limit;
  limit.kind = breach.kind;
  limit.value = breach.value;
  limit.limit = breach.limit;
  limit.consecutive = breach.consecutive;
  limit.action = breach.stop ? fb::LimitAction::Stop : fb::LimitAction::Warn;
  limit.child_pid = pid;
  return Payload(std::move(limit));
}

fb::PayloadUnion HeartbeatMissed(int64_t silent_ns, double limit_seconds, int pid) {
  fb::LimitT limit;
  limit.kind = fb::LimitKind::Heartbeat;
  limit.value = static_cast<double>(silent_ns) / 1e6;
  limit.limit = limit_seconds * 1000;
  limit.consecutive = 1;
  limit.action = fb::LimitAction::Abort;
  limit.child_pid = pid;
  return Payload(std::move(limit));
}

fb::PayloadUnion StopOverran(fb::LimitKind kind, int64_t since_ns, double stop_timeout, int pid) {
  fb::LimitT limit;
  limit.kind = kind;
  limit.value = static_cast<double>(since_ns) / 1e6;
  limit.limit = stop_timeout * 1000;
  limit.action = fb::LimitAction::Kill;
  limit.child_pid = pid;
  return Payload(std::move(limit));
}

fb::PayloadUnion Forecast(const ForecastEvent& forecast, int pid) {
  fb::ForecastT f;
  f.resource = "rss";
  f.current = forecast.current;
  f.slope_per_s = forecast.slope_per_s;
  f.limit = forecast.limit;
  f.seconds_to_limit = forecast.seconds_to_limit;
  f.cleared = forecast.cleared;
  f.message = forecast.message;
  f.child_pid = pid;
  return Payload(std::move(f));
}

fb::PayloadUnion NotifyDropped(uint64_t count) {
  fb::GaugeT gauge;
  gauge.name = "notify_datagrams_dropped";
  gauge.value = static_cast<double>(count);
  return Payload(std::move(gauge));
}

}  // namespace blackbox::watchdog::events
