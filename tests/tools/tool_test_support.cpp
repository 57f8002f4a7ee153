#include "tool_test_support.h"

#include <sstream>
#include <stdexcept>
#include <string_view>

#include "blackbox/journal.h"

extern char** environ;

namespace blackbox::tools::testing {

// Deterministic local time, no colour, no inherited journal.
std::vector<std::string> ToolEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("TZ=") || kv.starts_with("BLACKBOX_JOURNAL=") ||
        kv.starts_with("NO_COLOR=")) {
      continue;
    }
    env.emplace_back(kv);
  }
  env.emplace_back("TZ=UTC");
  env.emplace_back("NO_COLOR=1");
  return env;
}

namespace {

fb::EventT Envelope(int64_t time_ns, int32_t pid, fb::Severity severity = fb::Severity::Info) {
  fb::EventT e;
  e.time_ns = time_ns;
  e.mono_ns = time_ns - kT0 + 1000 * kSec;  // a monotonic clock that started earlier
  e.pid = pid;
  e.severity = severity;
  return e;
}

template <class T>
fb::EventT Make(int64_t time_ns, int32_t pid, T payload,
                fb::Severity severity = fb::Severity::Info) {
  fb::EventT e = Envelope(time_ns, pid, severity);
  e.payload.Set(std::move(payload));
  return e;
}

fb::LifecycleT Lifecycle(fb::Phase phase, std::string reason, int child_pid = 0) {
  fb::LifecycleT p;
  p.phase = phase;
  p.reason = std::move(reason);
  p.child_pid = child_pid;
  return p;
}

fb::GaugeT Gauge(std::string name, double value) {
  fb::GaugeT g;
  g.name = std::move(name);
  g.value = value;
  return g;
}

fb::ConfigT Config(std::string component,
                   std::vector<std::pair<std::string, std::string>> entries) {
  fb::ConfigT c;
  c.component = std::move(component);
  for (auto& [k, v] : entries) {
    auto e = std::make_unique<fb::ConfigEntryT>();
    e->key = k;
    e->value = v;
    c.entries.push_back(std::move(e));
  }
  return c;
}

fb::HealthT Health(uint64_t rss, double cpu, int32_t pid, bool over = false) {
  fb::HealthT h;
  h.rss_bytes = rss;
  h.cpu_percent = cpu;
  h.memory_percent = over ? 85.5 : 41.25;
  h.disk_percent = 12.5;
  h.threads = 8;
  h.open_fds = 21;
  h.sampled_pid = pid;
  h.over_threshold = over;
  return h;
}

void Append(Journal& j, fb::EventT e) {
  auto seq = j.Append(std::move(e), Durability::kDurable);
  if (!seq.ok()) throw std::runtime_error("fixture append: " + seq.status().ToString());
}

std::unique_ptr<Journal> OpenOrThrow(const std::string& root, const std::string& stream) {
  auto j = Journal::Open(root, stream);
  if (!j.ok()) throw std::runtime_error("fixture open: " + j.status().ToString());
  return std::move(j.value());
}

}  // namespace

void WriteFixtureJournal(const std::string& root) {
  constexpr int kApp1 = 4242;  // the run that crashes
  constexpr int kApp2 = 4300;  // the run after the restart
  constexpr int kWatchdog = 100;
  auto app = OpenOrThrow(root, "app");
  auto wd = OpenOrThrow(root, "watchdog");

  Append(*wd, Make(kT0, kWatchdog,
                   Config("watchdog", {{"max_restarts", "10"}, {"restart_delay", "30"}})));
  Append(*wd, Make(kT0 + 10 * kMs, kWatchdog, Lifecycle(fb::Phase::Starting, "spawn", kApp1)));
  Append(*app, Make(kT0 + 100 * kMs, kApp1, Lifecycle(fb::Phase::Starting, "")));
  Append(*app, Make(kT0 + 200 * kMs, kApp1, Lifecycle(fb::Phase::Running, "")));
  Append(*app, Make(kT0 + 300 * kMs, kApp1,
                    Config("recovery", {{"max_restarts", "5"}, {"state_file", "state.json"}})));
  Append(*app, Make(kT0 + 1000 * kMs, kApp1, Health(512 * 1024 * 1024ULL, 25.5, kApp1)));
  Append(*app, Make(kT0 + 1500 * kMs, kApp1, Gauge("active_connections", 2)));
  Append(*app, Make(kT0 + 1600 * kMs, kApp1, Gauge("active_positions", 1)));
  {
    fb::ErrorT e;
    e.context = "order_execution";
    e.exception_type = "std::invalid_argument";
    e.message = "price out of range: \"-1.5\"";
    e.frames = {"place_order(Order const&) at orders.cpp:88", "main at main.cpp:12"};
    Append(*app, Make(kFirstErrorNs, kApp1, std::move(e), fb::Severity::Error));
  }
  {
    fb::CallbackT c;
    c.kind = fb::CallbackKind::Recovery;
    c.name = "reconnect_broker";
    c.ok = true;
    c.duration_us = 1500;
    Append(*app, Make(kT0 + 2100 * kMs, kApp1, std::move(c)));
  }
  {
    fb::LogLineT l;
    l.source = "stderr";
    l.pattern = "ERROR";
    l.text = "ERROR: connection reset by peer";
    l.suppressed = 2;
    Append(*wd, Make(kT0 + 3500 * kMs, kWatchdog, std::move(l), fb::Severity::Warning));
  }
  {
    fb::LimitT l;
    l.kind = fb::LimitKind::Memory;
    l.value = 900.5;
    l.limit = 1024;
    l.consecutive = 1;
    l.action = fb::LimitAction::Warn;
    l.child_pid = kApp1;
    Append(*wd, Make(kT0 + 4000 * kMs, kWatchdog, std::move(l), fb::Severity::Warning));
  }
  {
    fb::ErrorT e;
    e.context = "data_processing";
    e.exception_type = "std::out_of_range";
    e.message = "map::at: 'bid'";
    Append(*app, Make(kSecondErrorNs, kApp1, std::move(e), fb::Severity::Error));
  }
  {
    fb::CrashT c;
    c.origin = fb::CrashOrigin::Watchdog;
    c.signal = 11;
    c.crashed_pid = kApp1;
    c.core_dumped = true;
    c.crash_time_ns = kT0 + 5 * kSec;
    Append(*wd, Make(kT0 + 5 * kSec, kWatchdog, std::move(c), fb::Severity::Critical));
  }
  {
    fb::RestartT r;
    r.attempt = 1;
    r.reason = fb::RestartReason::Crash;
    r.signal = 11;
    r.delay_ms = 30000;
    r.child_pid = kApp2;
    Append(*wd, Make(kT0 + 5001 * kMs, kWatchdog, std::move(r), fb::Severity::Warning));
  }
  Append(*wd, Make(kT0 + 35 * kSec, kWatchdog, Lifecycle(fb::Phase::Starting, "restart", kApp2)));
  Append(*app, Make(kT0 + 35050 * kMs, kApp2, Lifecycle(fb::Phase::Starting, "")));
  {
    // The in-process capture of the segfault, ingested by the next run.
    fb::CrashT c;
    c.origin = fb::CrashOrigin::Signal;
    c.signal = 11;
    c.signal_name = "SIGSEGV";
    c.fault_address = 0x10;
    c.frames = {"Book::best_bid() at book.cpp:41", "on_tick(Tick const&) at feed.cpp:120",
                "FeedThread::run() at feed.cpp:77", "start_thread"};
    c.crashed_pid = kApp1;
    c.crash_time_ns = kT0 + 4950 * kMs;
    Append(*app, Make(kT0 + 35100 * kMs, kApp2, std::move(c), fb::Severity::Critical));
  }
  Append(*app, Make(kT0 + 35200 * kMs, kApp2, Lifecycle(fb::Phase::Running, "")));
  {
    fb::CallbackT c;
    c.kind = fb::CallbackKind::Cleanup;
    c.name = "save_state";
    c.ok = false;
    c.error = "disk full";
    c.duration_us = 250;
    Append(*app, Make(kT0 + 36 * kSec, kApp2, std::move(c), fb::Severity::Error));
  }
  Append(*app, Make(kT0 + 37 * kSec, kApp2, Health(600 * 1024 * 1024ULL, 95.0, kApp2, true),
                    fb::Severity::Warning));
  Append(*app, Make(kT0 + 40 * kSec, kApp2, Lifecycle(fb::Phase::Stopped, "SIGTERM")));
  Append(*wd, Make(kT0 + 40100 * kMs, kWatchdog, Lifecycle(fb::Phase::Stopped, "shutdown")));
}

void AppendHealthEvents(const std::string& root, const std::string& stream, int count,
                        int64_t start_ns) {
  auto j = OpenOrThrow(root, stream);
  for (int i = 0; i < count; ++i) {
    auto seq = j->Append(Make(start_ns + i * kMs, 4300, Health(1000000 + i, i % 100, 4300)),
                         Durability::kBuffered);
    if (!seq.ok()) throw std::runtime_error("append: " + seq.status().ToString());
  }
  if (Status s = j->Sync(); !s.ok()) throw std::runtime_error("sync: " + s.ToString());
}

ToolResult RunTool(const std::vector<std::string>& args, const std::string& stdin_path,
                   const std::vector<std::string>& extra_env) {
  std::vector<std::string> argv{BLACKBOX_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  ::blackbox::testing::RunOptions options;
  options.timeout = kToolTimeout;
  options.env = ToolEnvironment();
  options.extra_env = extra_env;
  options.stdin_path = stdin_path;
  return ::blackbox::testing::RunProcess(argv, options);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace blackbox::tools::testing
