// The pure parts of --alert-exec: the rate limit and the summary line.
#include "alerts.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include "alertmanager.h"
#include "options.h"
#include "temp_dir.h"

namespace {

using blackbox::watchdog::Alert;
using blackbox::watchdog::AlertKind;
using blackbox::watchdog::AlertLimiter;
using blackbox::watchdog::AlertSummary;
constexpr int64_t kSecond = 1'000'000'000;

TEST(AlertLimiter, OnePerKindPerIntervalWithTheRestCounted) {
  AlertLimiter limiter(60 * kSecond);
  EXPECT_EQ(limiter.Admit(AlertKind::kCrash, 0), 0u);
  EXPECT_FALSE(limiter.Admit(AlertKind::kCrash, 1 * kSecond));
  EXPECT_FALSE(limiter.Admit(AlertKind::kCrash, 59 * kSecond));
  // Another kind is not held back by the first.
  EXPECT_EQ(limiter.Admit(AlertKind::kGaveUp, 2 * kSecond), 0u);
  // The next crash alert after the interval reports the two held back.
  EXPECT_EQ(limiter.Admit(AlertKind::kCrash, 60 * kSecond), 2u);
  EXPECT_EQ(limiter.Admit(AlertKind::kCrash, 121 * kSecond), 0u);
}

TEST(AlertLimiter, ZeroIntervalHoldsNothingBack) {
  AlertLimiter limiter(0);
  EXPECT_EQ(limiter.Admit(AlertKind::kHang, 5), 0u);
  EXPECT_EQ(limiter.Admit(AlertKind::kHang, 5), 0u);
}

TEST(AlertSummary, SaysWhoDiedOfWhatWhereAndTheBudget) {
  Alert a;
  a.kind = AlertKind::kCrash;
  a.service = "trader";
  a.child_pid = 4053;
  a.signal = SIGSEGV;
  a.restarts = 2;
  a.max_restarts = 5;
  EXPECT_EQ(AlertSummary(a, "demo::route_order_with_corrupt_book(int)"),
            "trader pid 4053 died of SIGSEGV in demo::route_order_with_corrupt_book(int); "
            "restart 2 of 5");
  a.signal = 0;
  a.exit_code = 3;
  EXPECT_EQ(AlertSummary(a, ""), "trader pid 4053 exited with status 3; restart 2 of 5");
  a.kind = AlertKind::kGaveUp;
  EXPECT_EQ(AlertSummary(a, ""),
            "trader pid 4053 exited with status 3; 5 restarts spent, the watchdog gives up");
}

TEST(AlertSummary, AForecastSaysWhatIsComing) {
  Alert a;
  a.kind = AlertKind::kForecast;
  a.service = "trader";
  a.child_pid = 4053;
  a.detail = "rss 143 MB rising 40 MB/s; reaches the 1024 MB limit in ~22 s";
  EXPECT_EQ(AlertSummary(a, ""),
            "trader pid 4053: rss 143 MB rising 40 MB/s; reaches the 1024 MB limit in ~22 s");
  EXPECT_EQ(AlertKindName(AlertKind::kForecast), "forecast");
  EXPECT_EQ(AlertmanagerName(AlertKind::kForecast), "BlackboxMemoryForecast");
  EXPECT_EQ(AlertmanagerName(AlertKind::kForecast, "rss"), "BlackboxMemoryForecast");
  EXPECT_EQ(AlertmanagerName(AlertKind::kForecast, "disk"), "BlackboxDiskForecast");
}

// The new keys go through the configuration like the others: checked when
// set, saved and loaded back (a list for alert_exec).
TEST(AlertOptions, MonitoringKeysAreSavedAndLoadedBack) {
  namespace bw = blackbox::watchdog;
  bw::Options o = bw::DefaultOptions();
  EXPECT_TRUE(o.metrics_listen.empty());
  EXPECT_EQ(o.alert_timeout, 10);
  EXPECT_EQ(o.alert_interval, 60);
  EXPECT_TRUE(bw::SetOption(o, "metrics_listen", "9464"));
  EXPECT_TRUE(bw::SetOption(o, "alert_timeout", "0"));
  EXPECT_TRUE(bw::SetOption(o, "alert_interval", "-1"));
  EXPECT_TRUE(bw::SetOption(o, "alert_exec", ""));
  EXPECT_FALSE(bw::SetOption(o, "metrics_listen", "127.0.0.1:0"));
  EXPECT_FALSE(bw::SetOption(o, "alert_exec", "/usr/local/bin/page"));
  EXPECT_FALSE(bw::SetOption(o, "alert_exec", "/usr/local/bin/mail me"));
  EXPECT_FALSE(bw::SetOption(o, "alert_timeout", "2.5"));
  EXPECT_FALSE(bw::SetOption(o, "alert_interval", "0"));

  blackbox::testing::TempDir dir;
  const std::string path = dir / "watchdog.toml";
  ASSERT_FALSE(bw::SaveOptionsFile(path, o));
  bw::Options back = bw::DefaultOptions();
  EXPECT_FALSE(bw::LoadOptionsFile(path, back, bw::FileTrust::kOwnerOnly));
  EXPECT_EQ(back.metrics_listen, "127.0.0.1:0");
  EXPECT_EQ(back.alert_exec,
            (std::vector<std::string>{"/usr/local/bin/page", "/usr/local/bin/mail me"}));
  EXPECT_EQ(back.alert_timeout, 2.5);
  EXPECT_EQ(back.alert_interval, 0);
}

}  // namespace
