// Small builders for events in tests: explicit times and pids, so folds are
// deterministic and assertions can name exact values.
#pragma once

#include <map>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/state.h"

namespace blackbox::testing {

inline constexpr int64_t kSecond = 1'000'000'000;

// An encoded event that keeps its bytes alive beside the verified view.
struct TestEvent {
  std::string bytes;
  const fb::Event* event() const { return VerifyEvent(Bytes(bytes)); }
};

template <class PayloadT>
TestEvent Make(std::string_view stream, int64_t time_ns, int pid, PayloadT payload,
               fb::Severity severity = fb::Severity::Info) {
  fb::EventT e;
  e.time_ns = time_ns;
  e.mono_ns = time_ns;
  e.pid = pid;
  e.stream = std::string(stream);
  e.severity = severity;
  e.payload.Set(std::move(payload));
  return TestEvent{EncodeEvent(std::move(e))};
}

inline fb::LifecycleT Lifecycle(fb::Phase phase, int child_pid = 0, std::string reason = {}) {
  fb::LifecycleT l;
  l.phase = phase;
  l.child_pid = child_pid;
  l.reason = std::move(reason);
  return l;
}

inline fb::ErrorT Error(std::string context, std::string type, std::string message) {
  fb::ErrorT e;
  e.context = std::move(context);
  e.exception_type = std::move(type);
  e.message = std::move(message);
  return e;
}

inline fb::CallbackT Callback(fb::CallbackKind kind, std::string name, bool ok) {
  fb::CallbackT c;
  c.kind = kind;
  c.name = std::move(name);
  c.ok = ok;
  if (!ok) c.error = "failed";
  return c;
}

inline fb::GaugeT Gauge(std::string name, double value) {
  fb::GaugeT g;
  g.name = std::move(name);
  g.value = value;
  return g;
}

inline fb::ForecastT Forecast(double seconds_to_limit, bool cleared = false) {
  fb::ForecastT f;
  f.resource = "rss";
  f.seconds_to_limit = cleared ? 0 : seconds_to_limit;
  f.cleared = cleared;
  if (!cleared) f.message = "rss rising; reaches the limit in ~" + std::to_string(seconds_to_limit);
  return f;
}

inline fb::RestartT Restart(fb::RestartReason reason, int attempt = 1) {
  fb::RestartT r;
  r.reason = reason;
  r.attempt = attempt;
  return r;
}

// Folds events in order, numbering each stream's events from 1.
class Folder {
 public:
  template <class PayloadT>
  Folder& Add(std::string_view stream, int64_t time_ns, int pid, PayloadT payload) {
    TestEvent e = Make(stream, time_ns, pid, std::move(payload));
    uint64_t seq = ++seqs_[std::string(stream)];
    Fold(state, *e.event(), stream, seq);
    return *this;
  }
  SystemState state;

 private:
  std::map<std::string, uint64_t> seqs_;
};

// A journal's worth of varied events for property tests: both streams, every
// payload the fold reads, the values drawn from `seed` (the same seed gives
// the same events). Times rise; pids change with each new run.
struct GeneratedEvent {
  std::string stream;
  uint64_t seq = 0;
  TestEvent event;
};
inline std::vector<GeneratedEvent> GenerateEvents(uint32_t seed, size_t count) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  auto text = [&](std::string_view stem) { return std::string(stem) + std::to_string(pick(1000)); };
  std::vector<GeneratedEvent> out;
  std::map<std::string, uint64_t> seqs;
  int64_t t = 1'700'000'000 * kSecond;
  int app_pid = 100, child_pid = 100;
  const fb::Phase phases[] = {fb::Phase::Starting,   fb::Phase::Running,  fb::Phase::Error,
                              fb::Phase::Recovering, fb::Phase::Stopping, fb::Phase::Stopped,
                              fb::Phase::Failed,     fb::Phase::Backoff};
  const fb::RestartReason reasons[] = {fb::RestartReason::Crash,  fb::RestartReason::Hang,
                                       fb::RestartReason::Memory, fb::RestartReason::Cpu,
                                       fb::RestartReason::Exit,   fb::RestartReason::Unclean};
  for (size_t i = 0; i < count; ++i) {
    t += 1 + int64_t{pick(3 * static_cast<int>(kSecond / 1000))} * 1000;
    const bool watchdog = pick(3) == 0;
    const std::string stream(watchdog ? kWatchdogStream : kAppStream);
    const int pid = watchdog ? 7 : app_pid;
    TestEvent e;
    switch (pick(watchdog ? 7 : 9)) {
      case 0: {
        fb::LifecycleT l = Lifecycle(phases[pick(8)], watchdog && pick(2) ? child_pid : 0,
                                     pick(2) ? text("status ") : "");
        if (l.phase == fb::Phase::Starting && !watchdog) app_pid = ++child_pid;
        if (pick(4) == 0) l.exit_code = pick(3);
        if (pick(4) == 0) l.signal = 1 + pick(15);
        e = Make(stream, t, l.phase == fb::Phase::Starting && !watchdog ? app_pid : pid, l);
        break;
      }
      case 1: {
        fb::RestartT r = Restart(reasons[pick(6)], 1 + pick(5));
        r.child_pid = pick(2) ? child_pid : 0;
        e = Make(stream, t, pid, r);
        break;
      }
      case 2: {
        fb::CrashT c;
        c.origin = watchdog ? fb::CrashOrigin::Watchdog
                            : (pick(2) ? fb::CrashOrigin::Signal : fb::CrashOrigin::Terminate);
        c.signal = pick(3) ? 1 + pick(15) : 0;
        c.crashed_pid = pick(2) ? app_pid : app_pid - 1;
        c.exit_code = pick(2) ? -1 : pick(5);
        c.crash_time_ns = t - pick(1000);
        if (!watchdog) {
          c.exception_type = pick(2) ? text("std::error_") : "";
          c.exception_message = text("message ");
          c.frames = {text("frame_"), "main"};
        }
        e = Make(stream, t, pid, c, fb::Severity::Critical);
        break;
      }
      case 3: {
        fb::HealthT h;
        h.rss_bytes = static_cast<uint64_t>(pick(1 << 20)) << 10;
        h.cpu_percent = pick(1000) / 10.0;
        h.memory_percent = pick(1000) / 10.0;
        h.disk_percent = pick(1000) / 10.0;
        h.threads = pick(64);
        h.open_fds = pick(512);
        h.sampled_pid = pid;
        h.over_threshold = pick(5) == 0;
        e = Make(stream, t, pid, h);
        break;
      }
      case 4: {
        fb::ConfigT c;
        c.component = watchdog ? "watchdog" : "recovery";
        for (auto key : {"max_recovery_attempts", "max_restarts", "metrics_address"}) {
          if (pick(2) == 0) continue;
          auto entry = std::make_unique<fb::ConfigEntryT>();
          entry->key = key;
          entry->value = key == std::string_view("metrics_address")
                             ? "127.0.0.1:" + std::to_string(1024 + pick(60000))
                             : std::to_string(pick(20));
          c.entries.push_back(std::move(entry));
        }
        e = Make(stream, t, pid, c);
        break;
      }
      case 5:
        e = Make(stream, t, pid, Error(text("context "), text("type "), text("message ")),
                 fb::Severity::Error);
        break;
      case 6:
        if (watchdog) {
          e = Make(stream, t, pid, Forecast(1 + pick(600), pick(3) == 0), fb::Severity::Warning);
        } else {
          e = Make(stream, t, pid, Gauge(text("gauge_").substr(0, 7), pick(100)));
        }
        break;
      case 7:
        e = Make(stream, t, pid,
                 Callback(pick(2) ? fb::CallbackKind::Recovery : fb::CallbackKind::Cleanup,
                          text("callback "), pick(2) == 0));
        break;
      default: {
        fb::LogLineT l;
        l.source = "stderr";
        l.text = text("line ");
        e = Make(stream, t, pid, l);
        break;
      }
    }
    out.push_back({stream, ++seqs[stream], std::move(e)});
  }
  return out;
}

}  // namespace blackbox::testing
