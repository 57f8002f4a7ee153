#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <clocale>
#include <cstdlib>

#include "blackbox/state.h"
#include "event_builders.h"

namespace blackbox {
namespace {

using testing::Callback;
using testing::Error;
using testing::Folder;
using testing::Forecast;
using testing::Gauge;
using testing::GeneratedEvent;
using testing::GenerateEvents;
using testing::kSecond;
using testing::Lifecycle;
using testing::Restart;

constexpr std::string_view kApp = kAppStream;
constexpr std::string_view kDog = kWatchdogStream;

TEST(Fold, StartingBeginsARunAndClearsPerRunFields) {
  Folder f;
  f.Add(kApp, 10 * kSecond, 100, Lifecycle(fb::Phase::Starting))
      .Add(kApp, 11 * kSecond, 100, Gauge("active_connections", 2))
      .Add(kApp, 12 * kSecond, 100, Error("trade", "std::runtime_error", "boom"));
  f.state.recovery_attempts = 2;
  f.Add(kApp, 20 * kSecond, 200, Lifecycle(fb::Phase::Starting));
  EXPECT_EQ(f.state.pid, 200);
  EXPECT_EQ(f.state.run_started_ns, 20 * kSecond);
  EXPECT_EQ(f.state.status, fb::Phase::Starting);
  EXPECT_TRUE(f.state.gauges.empty());
  EXPECT_EQ(f.state.recovery_attempts, 0);
  // History survives a new run.
  ASSERT_TRUE(f.state.last_error.has_value());
  EXPECT_EQ(f.state.error_count, 1u);
}

TEST(Fold, ErrorRecordsLastErrorAndSetsStatusError) {
  Folder f;
  f.Add(kApp, 1 * kSecond, 1, Lifecycle(fb::Phase::Running))
      .Add(kApp, 2 * kSecond, 1, Error("order_execution", "std::runtime_error", "broker down"));
  EXPECT_EQ(f.state.status, fb::Phase::Error);
  ASSERT_TRUE(f.state.last_error.has_value());
  EXPECT_EQ(f.state.last_error->context, "order_execution");
  EXPECT_EQ(f.state.last_error->exception_type, "std::runtime_error");
  EXPECT_EQ(f.state.last_error->message, "broker down");
  EXPECT_EQ(f.state.last_error->time_ns, 2 * kSecond);
  EXPECT_EQ(f.state.error_count, 1u);
}

TEST(Fold, FailedRecoveryCountsOnceEvenWhenSeveralCallbacksFail) {
  Folder f;
  f.Add(kApp, 1, 1, Lifecycle(fb::Phase::Recovering))
      .Add(kApp, 2, 1, Callback(fb::CallbackKind::Recovery, "db", false))
      .Add(kApp, 3, 1, Callback(fb::CallbackKind::Recovery, "broker", false))
      .Add(kApp, 4, 1, Lifecycle(fb::Phase::Error, 0, "recovery failed"));
  EXPECT_EQ(f.state.recovery_attempts, 1);
  EXPECT_EQ(f.state.status, fb::Phase::Error);
}

TEST(Fold, ConsecutiveFailedRecoveriesAccumulateAndSuccessResets) {
  Folder f;
  for (int i = 0; i < 3; ++i) {
    f.Add(kApp, 10 * i + 1, 1, Lifecycle(fb::Phase::Recovering))
        .Add(kApp, 10 * i + 2, 1, Callback(fb::CallbackKind::Recovery, "ok_one", true))
        .Add(kApp, 10 * i + 3, 1, Callback(fb::CallbackKind::Recovery, "bad_one", false));
  }
  EXPECT_EQ(f.state.recovery_attempts, 3);
  f.Add(kApp, 100, 1, Lifecycle(fb::Phase::Recovering))
      .Add(kApp, 101, 1, Callback(fb::CallbackKind::Recovery, "ok_one", true))
      .Add(kApp, 102, 1, Lifecycle(fb::Phase::Running, 0, "recovered"));
  EXPECT_EQ(f.state.recovery_attempts, 0);
  EXPECT_EQ(f.state.status, fb::Phase::Running);
}

TEST(Fold, RunningThatDoesNotEndARecoveryLeavesAttemptsAlone) {
  Folder f;
  f.Add(kApp, 1, 1, Lifecycle(fb::Phase::Recovering))
      .Add(kApp, 2, 1, Callback(fb::CallbackKind::Recovery, "bad", false))
      .Add(kApp, 3, 1, Lifecycle(fb::Phase::Running));
  EXPECT_EQ(f.state.recovery_attempts, 1);
}

TEST(Fold, FailedCleanupCallbackIsNotAFailedRecovery) {
  Folder f;
  f.Add(kApp, 1, 1, Lifecycle(fb::Phase::Stopping))
      .Add(kApp, 2, 1, Callback(fb::CallbackKind::Cleanup, "close", false));
  EXPECT_EQ(f.state.recovery_attempts, 0);
  EXPECT_EQ(f.state.status, fb::Phase::Stopping);
}

TEST(Fold, UncleanShutdownCountsAsRestart) {
  Folder f;
  f.Add(kApp, 1, 1, Lifecycle(fb::Phase::Starting))
      .Add(kApp, 2, 1, Lifecycle(fb::Phase::Running))
      // The process died here; the next start journals what it found.
      .Add(kApp, 3, 2, Restart(fb::RestartReason::Unclean))
      .Add(kApp, 4, 2, Lifecycle(fb::Phase::Starting));
  EXPECT_EQ(f.state.restart_count, 1);
  EXPECT_EQ(f.state.pid, 2);
}

TEST(Fold, GaugesKeepTheLatestValuePerName) {
  Folder f;
  f.Add(kApp, 1, 1, Gauge("active_positions", 1))
      .Add(kApp, 2, 1, Gauge("active_positions", 3))
      .Add(kApp, 3, 1, Gauge("active_connections", 2));
  EXPECT_EQ(f.state.gauge("active_positions"), 3);
  EXPECT_EQ(f.state.gauge("active_connections"), 2);
  EXPECT_EQ(f.state.gauge("never_set"), 0);
}

TEST(Fold, HealthSampleSetsResourceFiguresAndCountsWarnings) {
  fb::HealthT h;
  h.rss_bytes = 512ull * 1024 * 1024;
  h.cpu_percent = 25.5;
  h.memory_percent = 85;
  h.disk_percent = 40;
  h.threads = 7;
  h.open_fds = 12;
  h.over_threshold = true;
  Folder f;
  f.Add(kApp, 1, 1, h);
  EXPECT_DOUBLE_EQ(f.state.memory_usage_mb, 512.0);
  EXPECT_DOUBLE_EQ(f.state.cpu_usage, 25.5);
  EXPECT_DOUBLE_EQ(f.state.memory_percent, 85);
  EXPECT_DOUBLE_EQ(f.state.disk_percent, 40);
  EXPECT_EQ(f.state.threads, 7);
  EXPECT_EQ(f.state.open_fds, 12);
  EXPECT_EQ(f.state.health_warnings, 1u);
}

TEST(Fold, RecoveryConfigSetsLimitsAndIgnoresOthers) {
  auto config = [](std::string component, std::string key, std::string value) {
    fb::ConfigT c;
    c.component = std::move(component);
    auto e = std::make_unique<fb::ConfigEntryT>();
    e->key = std::move(key);
    e->value = std::move(value);
    c.entries.push_back(std::move(e));
    return c;
  };
  Folder f;
  f.Add(kApp, 1, 1, config("recovery", "max_restarts", "10"))
      .Add(kApp, 2, 1, config("recovery", "max_recovery_attempts", "4"))
      .Add(kApp, 3, 1, config("watchdog", "max_restarts", "99"))
      .Add(kApp, 4, 1, config("recovery", "max_restarts", "ten"));
  EXPECT_EQ(f.state.max_restarts, 10);
  EXPECT_EQ(f.state.max_recovery_attempts, 4);
}

TEST(Fold, CrashRecordsLastCrashWithoutChangingStatus) {
  fb::CrashT c;
  c.origin = fb::CrashOrigin::Signal;
  c.signal = 11;
  c.crashed_pid = 42;
  c.crash_time_ns = 5;
  c.frames = {"explode_here()", "main"};
  Folder f;
  f.Add(kApp, 1, 42, Lifecycle(fb::Phase::Running)).Add(kApp, 9, 43, c);
  EXPECT_EQ(f.state.status, fb::Phase::Running);
  EXPECT_EQ(f.state.crash_count, 1u);
  ASSERT_TRUE(f.state.last_crash.has_value());
  EXPECT_EQ(f.state.last_crash->signal, 11);
  EXPECT_EQ(f.state.last_crash->crashed_pid, 42);
  EXPECT_EQ(f.state.last_crash->time_ns, 5);
  EXPECT_EQ(f.state.last_crash->first_frame, "explode_here()");
  EXPECT_EQ(f.state.last_crash->stream, "app");
}

TEST(Fold, TheAppsCaptureAndTheWatchdogsRecordOfOneDeathAreOneCrash) {
  fb::CrashT seen;  // the watchdog's record: a signal, no frames
  seen.origin = fb::CrashOrigin::Watchdog;
  seen.signal = 11;
  seen.crashed_pid = 42;
  seen.crash_time_ns = 5 * kSecond;
  fb::CrashT captured = seen;  // the next run's ingest of the capture
  captured.origin = fb::CrashOrigin::Signal;
  captured.crash_time_ns = 5 * kSecond - 1000;
  captured.frames = {"explode_here()", "main"};
  Folder f;
  f.Add(kDog, 5 * kSecond, 9, seen).Add(kApp, 6 * kSecond, 43, captured);
  EXPECT_EQ(f.state.crash_count, 1u);
  ASSERT_TRUE(f.state.last_crash.has_value());
  EXPECT_EQ(f.state.last_crash->first_frame, "explode_here()");
  // The frameless record after the capture keeps the capture.
  Folder g;
  g.Add(kApp, 6 * kSecond, 43, captured).Add(kDog, 7 * kSecond, 9, seen);
  EXPECT_EQ(g.state.crash_count, 1u);
  EXPECT_EQ(g.state.last_crash->first_frame, "explode_here()");
  // Another death of the same pid minutes later (a pid reused) is another
  // crash, and so is a death of another pid.
  fb::CrashT later = seen;
  later.crash_time_ns = 600 * kSecond;
  fb::CrashT other = seen;
  other.crashed_pid = 43;
  other.crash_time_ns = 601 * kSecond;
  f.Add(kDog, 600 * kSecond, 9, later).Add(kDog, 601 * kSecond, 9, other);
  EXPECT_EQ(f.state.crash_count, 3u);
  EXPECT_EQ(f.state.last_crash->crashed_pid, 43);
}

TEST(Fold, AStatusBeforeReadyIsNoNewStartOfTheChild) {
  // --type notify: the spawn, then STATUS= journaled as starting, then READY=1.
  Folder f;
  f.Add(kDog, 2, 9, Lifecycle(fb::Phase::Starting, 10))
      .Add(kDog, 5, 9, Lifecycle(fb::Phase::Starting, 10, "loading the book"));
  const WatchdogInfo& w = f.state.watchdog;
  EXPECT_EQ(w.phase, fb::Phase::Starting);
  EXPECT_EQ(w.child_started_ns, 2);
  EXPECT_EQ(w.status_text, "loading the book");
  f.Add(kDog, 7, 9, Lifecycle(fb::Phase::Running, 10, "ready"));
  EXPECT_EQ(w.phase, fb::Phase::Running);
  EXPECT_EQ(w.child_started_ns, 2);
  // A restart's spawn is a start again, whatever text it carries.
  f.Add(kDog, 8, 9, Restart(fb::RestartReason::Crash, 2))
      .Add(kDog, 9, 9, Lifecycle(fb::Phase::Starting, 11, "restart"));
  EXPECT_EQ(w.child_started_ns, 9);
  EXPECT_EQ(w.child_pid, 11);
}

TEST(Fold, WatchdogEventsNeverTouchTheAppsFields) {
  Folder f;
  f.Add(kApp, 1, 10, Lifecycle(fb::Phase::Running));
  fb::LifecycleT exited = Lifecycle(fb::Phase::Stopped, 10);
  exited.exit_code = 3;
  fb::HealthT h;
  h.rss_bytes = 1 << 20;
  h.cpu_percent = 50;
  f.Add(kDog, 2, 9, Lifecycle(fb::Phase::Starting))
      .Add(kDog, 3, 9, Lifecycle(fb::Phase::Running, 10, "serving 2 clients"))
      .Add(kDog, 4, 9, h)
      .Add(kDog, 5, 9, Error("spawn", "", "x"))
      .Add(kDog, 6, 9, Gauge("active_connections", 9))
      .Add(kDog, 7, 9, exited)
      .Add(kDog, 8, 9, Restart(fb::RestartReason::Crash, 2));
  EXPECT_EQ(f.state.status, fb::Phase::Running);
  EXPECT_EQ(f.state.pid, 0);
  EXPECT_EQ(f.state.restart_count, 0);
  EXPECT_FALSE(f.state.last_error.has_value());
  EXPECT_TRUE(f.state.gauges.empty());
  EXPECT_EQ(f.state.memory_usage_mb, 0);
  EXPECT_EQ(f.state.error_count, 1u);

  const WatchdogInfo& w = f.state.watchdog;
  EXPECT_EQ(w.watchdog_pid, 9);
  EXPECT_EQ(w.started_ns, 2);
  EXPECT_EQ(w.child_pid, 10);
  EXPECT_EQ(w.status_text, "serving 2 clients");
  EXPECT_EQ(w.last_heartbeat_ns, 3);
  EXPECT_EQ(w.child_rss_bytes, 1u << 20);
  EXPECT_TRUE(w.has_last_exit);
  EXPECT_EQ(w.last_exit_code, 3);
  EXPECT_EQ(w.restart_count, 2);
  EXPECT_EQ(w.total_restarts, 1);
  EXPECT_EQ(w.last_restart_reason, fb::RestartReason::Crash);
}

fb::ConfigT WatchdogConfig(std::vector<std::pair<std::string, std::string>> entries) {
  fb::ConfigT c;
  c.component = "watchdog";
  for (auto& [key, value] : entries) {
    auto entry = std::make_unique<fb::ConfigEntryT>();
    entry->key = key;
    entry->value = value;
    c.entries.push_back(std::move(entry));
  }
  return c;
}

TEST(Fold, WatchdogConfigGivesTheMetricsAddressOfItsRun) {
  Folder f;
  f.Add(kDog, 1, 9,
        WatchdogConfig({{"max_restarts", "3"}, {"metrics_address", "127.0.0.1:41000"}}));
  EXPECT_EQ(f.state.watchdog.metrics_address, "127.0.0.1:41000");
  // The next watchdog run without --metrics-listen serves nothing.
  f.Add(kDog, 2, 10, WatchdogConfig({{"max_restarts", "3"}}));
  EXPECT_EQ(f.state.watchdog.metrics_address, "");
}

// The STATUS= a child sent is its own: the next child has said nothing yet.
TEST(Fold, ANewChildStartsWithoutTheStatusOfTheOneBefore) {
  Folder f;
  f.Add(kDog, 1, 1, Lifecycle(fb::Phase::Starting, 50))
      .Add(kDog, 2, 2, Lifecycle(fb::Phase::Running, 50, "ready: accepting orders"));
  EXPECT_EQ(f.state.watchdog.status_text, "ready: accepting orders");
  f.Add(kDog, 3, 3, Lifecycle(fb::Phase::Backoff, 50));
  EXPECT_EQ(f.state.watchdog.status_text, "ready: accepting orders");  // its last words
  f.Add(kDog, 4, 4, Lifecycle(fb::Phase::Starting, 51));
  EXPECT_EQ(f.state.watchdog.status_text, "");
}

TEST(Fold, AForecastHoldsUntilClearedOrTheChildIsReplaced) {
  Folder f;
  f.Add(kDog, 1, 1, Lifecycle(fb::Phase::Starting, 50)).Add(kDog, 2, 2, Forecast(30));
  EXPECT_EQ(f.state.watchdog.forecast_seconds, 30);
  EXPECT_NE(f.state.watchdog.forecast_message, "");
  f.Add(kDog, 3, 3, Forecast(0, true));
  EXPECT_EQ(f.state.watchdog.forecast_seconds, 0);
  EXPECT_EQ(f.state.watchdog.forecast_message, "");
  // A new child: the forecast was about the one before.
  f.Add(kDog, 4, 4, Forecast(12)).Add(kDog, 5, 5, Lifecycle(fb::Phase::Starting, 51));
  EXPECT_EQ(f.state.watchdog.forecast_seconds, 0);
  // The app's stream never gives the watchdog a forecast.
  f.Add(kApp, 6, 1, Forecast(9));
  EXPECT_EQ(f.state.watchdog.forecast_seconds, 0);
}

TEST(Fold, TheAppsForecastsHoldByResourceUntilClearedOrTheRunEnds) {
  Folder f;
  fb::ForecastT disk = Forecast(40);
  disk.resource = "disk";
  f.Add(kApp, 1, 1, Lifecycle(fb::Phase::Running))
      .Add(kApp, 2, 1, Forecast(30))
      .Add(kApp, 3, 1, disk);
  ASSERT_EQ(f.state.forecasts.size(), 2u);
  EXPECT_EQ(f.state.forecasts.at("rss").seconds_to_limit, 30);
  EXPECT_NE(f.state.forecasts.at("rss").message, "");
  EXPECT_EQ(f.state.forecasts.at("disk").seconds_to_limit, 40);
  EXPECT_EQ(f.state.watchdog.forecast_seconds, 0);  // not the watchdog's
  f.Add(kApp, 4, 1, Forecast(0, true));             // the rss one clears
  ASSERT_EQ(f.state.forecasts.size(), 1u);
  EXPECT_EQ(f.state.forecasts.count("disk"), 1u);
  f.Add(kApp, 5, 1, Lifecycle(fb::Phase::Stopped));
  EXPECT_TRUE(f.state.forecasts.empty());
  f.Add(kApp, 6, 2, Forecast(5)).Add(kApp, 7, 3, Lifecycle(fb::Phase::Starting));
  EXPECT_TRUE(f.state.forecasts.empty());
}

TEST(Fold, TracksCoverageCountAndNewestTime) {
  Folder f;
  f.Add(kApp, 5, 1, Gauge("a", 1))
      .Add(kDog, 3, 2, Lifecycle(fb::Phase::Starting))
      .Add(kApp, 4, 1, Gauge("a", 2));
  EXPECT_EQ(f.state.covered.at("app"), 2u);
  EXPECT_EQ(f.state.covered.at("watchdog"), 1u);
  EXPECT_EQ(f.state.event_count, 3u);
  EXPECT_EQ(f.state.timestamp_ns, 5);
}

// The fold depends on the events alone: a child process with another time
// zone, locale, heap layout and clock folds the same generated history to the
// same snapshot bytes.
TEST(Fold, DependsOnTheEventsAlone) {
  auto fold = [] {
    SystemState s;
    for (const GeneratedEvent& g : GenerateEvents(42, 2000)) {
      Fold(s, *g.event.event(), g.stream, g.seq);
    }
    return EncodeSnapshot(s);
  };
  const std::string here = fold();
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipe_fds[0]);
    setenv("TZ", "Asia/Kathmandu", 1);
    tzset();
    std::setlocale(LC_ALL, "C.UTF-8");
    std::vector<std::string> junk(1000, std::string(100, 'x'));  // another heap
    usleep(20'000);                                              // another clock
    const std::string there = fold();
    ssize_t n = write(pipe_fds[1], there.data(), there.size());
    _exit(n == static_cast<ssize_t>(there.size()) ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::string there;
  char buf[4096];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) there.append(buf, n);
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(there, here);
  EXPECT_GT(here.size(), 100u);
}

TEST(SystemState, UptimeIsMeasuredFromTheRunsStart) {
  Folder f;
  f.Add(kApp, 10 * kSecond, 1, Lifecycle(fb::Phase::Starting))
      .Add(kApp, 13 * kSecond + kSecond / 2, 1, Gauge("g", 1));
  EXPECT_DOUBLE_EQ(f.state.uptime_seconds(), 3.5);
  EXPECT_EQ(SystemState{}.uptime_seconds(), 0);
}

}  // namespace
}  // namespace blackbox
