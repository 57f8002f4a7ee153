// The metrics fold and its Prometheus exposition, without a process.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <string_view>

#include "blackbox/event.h"
#include "metrics_exposition.h"
#include "metrics_fold.h"
#include "metrics_server.h"

namespace {

namespace fb = blackbox::fb;
namespace bm = blackbox::metrics;
constexpr int64_t kSecond = 1'000'000'000;

template <class PayloadT>
void Fold(bm::MetricsState& s, std::string_view stream, int64_t time_ns, PayloadT payload) {
  fb::EventT e;
  e.time_ns = time_ns;
  e.mono_ns = time_ns;
  e.pid = 1;
  e.stream = std::string(stream);
  e.payload.Set(std::move(payload));
  const std::string bytes = blackbox::EncodeEvent(std::move(e));
  const fb::Event* event = blackbox::VerifyEvent(blackbox::Bytes(bytes));
  ASSERT_NE(event, nullptr);
  bm::FoldMetrics(s, *event, stream);
}

fb::LifecycleT Lifecycle(fb::Phase phase, int child_pid) {
  fb::LifecycleT l;
  l.phase = phase;
  l.child_pid = child_pid;
  return l;
}
fb::RestartT Restart(fb::RestartReason reason) {
  fb::RestartT r;
  r.reason = reason;
  return r;
}
fb::CrashT Crash(int signal, int64_t when_ns = 0) {
  fb::CrashT c;
  c.signal = signal;
  c.crash_time_ns = when_ns;
  return c;
}
fb::ConfigT WatchdogConfig(std::string max_restarts, std::string window) {
  fb::ConfigT c;
  c.component = "watchdog";
  for (auto [k, v] : {std::pair{std::string("max_restarts"), max_restarts},
                      std::pair{std::string("restart_window"), window}}) {
    auto entry = std::make_unique<fb::ConfigEntryT>();
    entry->key = k;
    entry->value = v;
    c.entries.push_back(std::move(entry));
  }
  return c;
}

bool Has(const std::string& text, std::string_view line) {
  return text.find(std::string(line) + "\n") != std::string::npos;
}

TEST(MetricsFold, CountsRestartsByReasonAcrossWatchdogRuns) {
  bm::MetricsState s;
  Fold(s, "watchdog", 1, Lifecycle(fb::Phase::Starting, 0));
  Fold(s, "watchdog", 2, Restart(fb::RestartReason::Crash));
  Fold(s, "watchdog", 3, Restart(fb::RestartReason::Hang));
  // A new watchdog run: the counters go on, the budget starts over.
  Fold(s, "watchdog", 4, Lifecycle(fb::Phase::Starting, 0));
  Fold(s, "watchdog", 5, Restart(fb::RestartReason::Crash));
  EXPECT_EQ(s.restarts["crash"], 2u);
  EXPECT_EQ(s.restarts["hang"], 1u);
  EXPECT_EQ(s.RestartBudgetRemaining(6), 9);  // the default 10, one used in this run
  EXPECT_EQ(s.events["watchdog"], 5u);
}

TEST(MetricsFold, ADeathIsCountedOnceWhenBothStreamsRecordIt) {
  bm::MetricsState s;
  Fold(s, "app", 10, Crash(SIGSEGV, 9));       // the app's own capture
  Fold(s, "watchdog", 11, Crash(SIGSEGV, 9));  // the watchdog saw the same death
  Fold(s, "watchdog", 12, Crash(0));           // an exit status, not a signal
  ASSERT_EQ(s.deaths().size(), 1u);
  EXPECT_EQ(s.deaths().at(SIGSEGV), 1u);
  EXPECT_EQ(s.last_crash_ns, 9);
}

TEST(MetricsFold, WithoutAWatchdogTheAppsCaptureCounts) {
  bm::MetricsState s;
  Fold(s, "app", 10, Crash(SIGABRT));
  ASSERT_EQ(s.deaths().size(), 1u);
  EXPECT_EQ(s.deaths().at(SIGABRT), 1u);
}

TEST(MetricsFold, ChildRunsFromStartToBackoff) {
  bm::MetricsState s;
  Fold(s, "watchdog", 1, Lifecycle(fb::Phase::Starting, 0));
  EXPECT_FALSE(s.child_running);
  Fold(s, "watchdog", 2 * kSecond, Lifecycle(fb::Phase::Starting, 42));
  EXPECT_TRUE(s.child_running);
  EXPECT_EQ(s.child_started_ns, 2 * kSecond);
  Fold(s, "watchdog", 3, Lifecycle(fb::Phase::Backoff, 42));
  EXPECT_FALSE(s.child_running);
  Fold(s, "watchdog", 4, Lifecycle(fb::Phase::Running, 43));
  EXPECT_TRUE(s.child_running);
  Fold(s, "watchdog", 5, Lifecycle(fb::Phase::Stopped, 0));
  EXPECT_FALSE(s.child_running);
}

// The gauge counts down to the projected time, and is there only while a
// forecast holds for a running child.
TEST(MetricsExposition, MemoryExhaustionOnlyWhileAForecastHolds) {
  bm::MetricsState s;
  Fold(s, "watchdog", 1 * kSecond, Lifecycle(fb::Phase::Starting, 42));
  const std::string metric = "blackbox_memory_exhaustion_seconds";
  EXPECT_EQ(bm::Exposition(s, {.now_ns = 2 * kSecond}).find(metric), std::string::npos);
  fb::ForecastT f;
  f.seconds_to_limit = 30;
  Fold(s, "watchdog", 2 * kSecond, f);
  EXPECT_TRUE(
      Has(bm::Exposition(s, {.now_ns = 12 * kSecond}), metric + "{source=\"watchdog\"} 20"));
  f.cleared = true;
  f.seconds_to_limit = 0;
  Fold(s, "watchdog", 13 * kSecond, f);
  EXPECT_EQ(bm::Exposition(s, {.now_ns = 14 * kSecond}).find(metric), std::string::npos);
  f.cleared = false;
  f.seconds_to_limit = 30;
  Fold(s, "watchdog", 15 * kSecond, f);
  Fold(s, "watchdog", 16 * kSecond, Lifecycle(fb::Phase::Backoff, 42));  // the child is gone
  EXPECT_EQ(bm::Exposition(s, {.now_ns = 17 * kSecond}).find(metric), std::string::npos);
}

fb::ForecastT AppForecast(std::string resource, double seconds, bool cleared = false) {
  fb::ForecastT f;
  f.resource = std::move(resource);
  f.seconds_to_limit = seconds;
  f.cleared = cleared;
  return f;
}

// The application's own forecasts (its RSS, the journal's disk) hold by
// resource until cleared or the run ends, and beside a watchdog only while
// the child that made them runs.
TEST(MetricsExposition, TheAppsForecastsByResourceWhileTheyHold) {
  const std::string memory = "blackbox_memory_exhaustion_seconds{source=\"app\"}";
  const std::string disk = "blackbox_disk_exhaustion_seconds";
  bm::MetricsState s;
  Fold(s, "app", 1 * kSecond, Lifecycle(fb::Phase::Starting, 0));
  Fold(s, "app", 2 * kSecond, AppForecast("rss", 100));
  Fold(s, "app", 3 * kSecond, AppForecast("disk", 1000));
  Fold(s, "app", 3 * kSecond, AppForecast("cpu", 1000));  // not a resource it knows: no label
  std::string text = bm::Exposition(s, {.now_ns = 12 * kSecond});
  EXPECT_TRUE(Has(text, memory + " 90")) << text;
  EXPECT_TRUE(Has(text, disk + " 991")) << text;
  EXPECT_EQ(text.find("exhaustion_seconds{resource"), std::string::npos) << text;
  EXPECT_EQ(text.find("cpu_exhaustion"), std::string::npos) << text;
  EXPECT_EQ(text.find("{source=\"watchdog\"}"), std::string::npos) << text;

  Fold(s, "app", 13 * kSecond, AppForecast("rss", 0, /*cleared=*/true));
  text = bm::Exposition(s, {.now_ns = 14 * kSecond});
  EXPECT_EQ(text.find(memory), std::string::npos) << text;
  EXPECT_TRUE(Has(text, disk + " 989")) << text;
  Fold(s, "app", 15 * kSecond, Lifecycle(fb::Phase::Stopped, 0));  // the run ends
  EXPECT_EQ(bm::Exposition(s, {.now_ns = 16 * kSecond}).find(disk), std::string::npos);

  // Beside a watchdog: gone when the child is seen to end, whichever stream
  // is folded first.
  for (bool watchdog_first : {true, false}) {
    bm::MetricsState w;
    auto app = [&] {
      Fold(w, "app", 21 * kSecond, Lifecycle(fb::Phase::Starting, 0));
      Fold(w, "app", 22 * kSecond, AppForecast("rss", 100));
    };
    auto watchdog = [&] {
      Fold(w, "watchdog", 20 * kSecond, Lifecycle(fb::Phase::Starting, 42));
      Fold(w, "watchdog", 20 * kSecond, Lifecycle(fb::Phase::Running, 42));
    };
    if (watchdog_first) {
      watchdog();
      app();
    } else {
      app();
      watchdog();
    }
    EXPECT_TRUE(Has(bm::Exposition(w, {.now_ns = 30 * kSecond}), memory + " 92"));
    Fold(w, "watchdog", 31 * kSecond, Lifecycle(fb::Phase::Backoff, 42));  // killed: no Stopped
    EXPECT_EQ(bm::Exposition(w, {.now_ns = 32 * kSecond}).find(memory), std::string::npos);
    Fold(w, "watchdog", 33 * kSecond, Lifecycle(fb::Phase::Starting, 43));
    EXPECT_EQ(bm::Exposition(w, {.now_ns = 34 * kSecond}).find(memory), std::string::npos)
        << "a forecast of the child before";
  }
}

TEST(MetricsFold, RestartBudgetFollowsTheWindow) {
  bm::MetricsState s;
  Fold(s, "watchdog", 0, WatchdogConfig("3", "10"));
  Fold(s, "watchdog", 1, Lifecycle(fb::Phase::Starting, 0));
  Fold(s, "watchdog", 1 * kSecond, Restart(fb::RestartReason::Crash));
  Fold(s, "watchdog", 5 * kSecond, Restart(fb::RestartReason::Crash));
  EXPECT_EQ(s.RestartBudgetRemaining(6 * kSecond), 1);
  EXPECT_EQ(s.RestartBudgetRemaining(12 * kSecond), 2);  // the first has left the window
  EXPECT_EQ(s.RestartBudgetRemaining(20 * kSecond), 3);
}

TEST(MetricsFold, GaugeNamesAreBounded) {
  bm::MetricsState s;
  for (size_t i = 0; i < bm::kMaxGauges + 5; ++i) {
    fb::GaugeT g;
    g.name = "g" + std::to_string(i);
    g.value = 1;
    Fold(s, "app", 1, std::move(g));
  }
  EXPECT_EQ(s.gauges.size(), bm::kMaxGauges);
  EXPECT_EQ(s.gauges_dropped, 5u);
  // A new run of the app starts with no gauges.
  Fold(s, "app", 2, Lifecycle(fb::Phase::Starting, 0));
  EXPECT_TRUE(s.gauges.empty());
}

TEST(MetricsFold, ErrorsAreTheApplications) {
  bm::MetricsState s;
  fb::ErrorT e;
  e.message = "disk full";
  Fold(s, "app", 1, e);
  Fold(s, "app", 2, e);
  EXPECT_EQ(s.errors, 2u);
}

TEST(MetricsExposition, ShowsEveryFamilyWithTypeAndLabels) {
  bm::MetricsState s;
  Fold(s, "watchdog", 1, Lifecycle(fb::Phase::Starting, 0));
  Fold(s, "watchdog", 1'500'000'000, Lifecycle(fb::Phase::Starting, 7));
  Fold(s, "watchdog", 3 * kSecond, Crash(SIGSEGV, 2'250'000'000));
  Fold(s, "watchdog", 3 * kSecond, Restart(fb::RestartReason::Crash));
  fb::HealthT h;
  h.rss_bytes = 4096;
  h.cpu_percent = 12.5;
  h.over_threshold = true;
  Fold(s, "watchdog", 4 * kSecond, h);
  fb::GaugeT g;
  g.name = "active_positions";
  g.value = 3;
  Fold(s, "app", 5, g);
  bm::ExpositionInputs in;
  in.now_ns = 10 * kSecond;
  in.write_failures.emplace();
  (*in.write_failures)["watchdog"] = 2;
  const std::string text = bm::Exposition(s, in);

  EXPECT_TRUE(Has(text, "# TYPE blackbox_child_running gauge"));
  EXPECT_TRUE(Has(text, "blackbox_child_running 1"));
  EXPECT_TRUE(Has(text, "blackbox_child_start_time_seconds 1.5"));
  EXPECT_TRUE(Has(text, "blackbox_child_resident_memory_bytes 4096"));
  EXPECT_TRUE(Has(text, "blackbox_child_cpu_percent 12.5"));
  EXPECT_TRUE(Has(text, "# TYPE blackbox_restarts_total counter"));
  EXPECT_TRUE(Has(text, "blackbox_restarts_total{reason=\"crash\"} 1"));
  EXPECT_TRUE(Has(text, "blackbox_restarts_total{reason=\"hang\"} 0"));
  EXPECT_TRUE(Has(text, "blackbox_restarts_total{reason=\"manual\"} 0"));  // every reason
  EXPECT_TRUE(Has(text, "blackbox_crashes_total{signal=\"SIGSEGV\"} 1"));
  EXPECT_TRUE(Has(text, "blackbox_last_crash_time_seconds 2.25"));
  EXPECT_TRUE(Has(text, "blackbox_errors_total 0"));
  EXPECT_TRUE(Has(text, "blackbox_gauge{name=\"active_positions\"} 3"));
  EXPECT_TRUE(Has(text, "blackbox_health_warnings_total 1"));
  EXPECT_TRUE(Has(text, "blackbox_journal_events_total{stream=\"watchdog\"} 5"));
  EXPECT_TRUE(Has(text, "blackbox_journal_events_total{stream=\"app\"} 1"));
  EXPECT_TRUE(Has(text, "blackbox_journal_write_failures_total{stream=\"watchdog\"} 2"));
  EXPECT_TRUE(Has(text, "blackbox_restart_budget_remaining 9"));
  // Every sample's family was declared before it.
  EXPECT_LT(text.find("# TYPE blackbox_gauge gauge"), text.find("blackbox_gauge{"));
}

TEST(MetricsExposition, WriteFailuresOnlyWhenKnown) {
  const std::string text = bm::Exposition(bm::MetricsState{}, {});
  EXPECT_EQ(text.find("blackbox_journal_write_failures_total"), std::string::npos);
}

TEST(MetricsExposition, LabelValuesAreEscaped) {
  bm::MetricsState s;
  fb::GaugeT g;
  g.name = "a\"b\\c\nd";
  g.value = 1;
  Fold(s, "app", 1, g);
  EXPECT_TRUE(Has(bm::Exposition(s, {}), R"(blackbox_gauge{name="a\"b\\c\nd"} 1)"));
}

TEST(MetricsExposition, SignalLabels) {
  EXPECT_EQ(bm::SignalLabel(SIGSEGV), "SIGSEGV");
  EXPECT_EQ(bm::SignalLabel(SIGRTMIN + 1).substr(0, 3), "SIG");
  EXPECT_EQ(bm::SignalLabel(0), "other");
}

TEST(MetricsListen, ParsesHostAndPort) {
  bm::ListenAddress a;
  EXPECT_FALSE(bm::ParseListenAddress("127.0.0.1:9464", &a));
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9464);
  EXPECT_FALSE(bm::ParseListenAddress("[::1]:0", &a));
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 0);
  EXPECT_TRUE(bm::ParseListenAddress("9464", &a));
  EXPECT_TRUE(bm::ParseListenAddress("127.0.0.1:", &a));
  EXPECT_TRUE(bm::ParseListenAddress("127.0.0.1:65536", &a));
  EXPECT_TRUE(bm::ParseListenAddress("::1:80", &a));
  EXPECT_TRUE(bm::ParseListenAddress(":80", &a));
}

}  // namespace
