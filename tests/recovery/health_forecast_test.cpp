// The health monitor's forecasts: HealthForecasts fed recorded samples, and
// a real process (crashy_child leak) that journals its own forecast.
#include "health_forecast.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "blackbox/journal.h"
#include "blackbox/state_io.h"
#include "process.h"
#include "temp_dir.h"

namespace blackbox {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr uint64_t kMb = uint64_t{1} << 20;
constexpr int64_t kHorizonNs = 600 * kS;

HealthSample Sample(uint64_t rss, uint64_t available, uint64_t disk_used, uint64_t disk_capacity) {
  HealthSample s;
  s.rss_bytes = rss;
  s.memory_available_bytes = available;
  s.disk_used_bytes = disk_used;
  s.disk_capacity_bytes = disk_capacity;
  return s;
}

TEST(HealthForecasts, ALeakIsForecastAgainstWhatTheSystemHasLeft) {
  // 10 MB/s from 100 MB, the system's 1100 MB shrinking as the RSS grows:
  // the limit (RSS + MemAvailable) stays 1100 MB, reached at t = 100 s.
  HealthForecasts forecasts(kHorizonNs, 0);
  for (int i = 0; i < 100; ++i) {
    const uint64_t rss = 100 * kMb + static_cast<uint64_t>(i) * 10 * kMb;
    auto due = forecasts.Observe(i * kS, Sample(rss, 1100 * kMb - rss, 0, 0));
    if (due.empty()) continue;
    ASSERT_EQ(due.size(), 1u);
    EXPECT_EQ(due[0].resource, "rss");
    EXPECT_FALSE(due[0].event.cleared);
    const double real = 100.0 - i;
    EXPECT_NEAR(due[0].event.seconds_to_limit, real, 0.25 * real);
    EXPECT_NE(due[0].event.message.find("reaches the 1100 MB limit"), std::string::npos)
        << due[0].event.message;
    return;
  }
  FAIL() << "no forecast";
}

TEST(HealthForecasts, AFixedMemoryLimitIsUsedWhenGiven) {
  HealthForecasts forecasts(kHorizonNs, 400 * kMb);
  for (int i = 0; i < 40; ++i) {
    const uint64_t rss = 100 * kMb + static_cast<uint64_t>(i) * 5 * kMb;
    for (auto& f : forecasts.Observe(i * kS, Sample(rss, 64'000 * kMb, 0, 0))) {
      EXPECT_NEAR(f.event.limit, 400.0 * kMb, 1);
      return;
    }
  }
  FAIL() << "no forecast";
}

TEST(HealthForecasts, AFillingDiskIsForecast) {
  // 50 MB/s onto a filesystem with 2 GB left: full at t = 40 s.
  HealthForecasts forecasts(kHorizonNs, 0);
  const uint64_t capacity = 12'000 * kMb;
  for (int i = 0; i < 40; ++i) {
    const uint64_t used = 10'000 * kMb + static_cast<uint64_t>(i) * 50 * kMb;
    auto due = forecasts.Observe(i * kS, Sample(80 * kMb, 8000 * kMb, used, capacity));
    if (due.empty()) continue;
    ASSERT_EQ(due.size(), 1u);
    EXPECT_EQ(due[0].resource, "disk");
    const double real = 40.0 - i;
    EXPECT_NEAR(due[0].event.seconds_to_limit, real, 0.25 * real);
    EXPECT_EQ(due[0].event.message.rfind("disk ", 0), 0u) << due[0].event.message;
    return;
  }
  FAIL() << "no forecast";
}

TEST(HealthForecasts, SteadyFiguresWithNoiseGiveNoneOver600Samples) {
  HealthForecasts forecasts(kHorizonNs, 0);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> noise(-0.1, 0.1);
  for (int i = 0; i < 600; ++i) {
    const auto rss = static_cast<uint64_t>(300.0 * kMb * (1 + noise(rng)));
    const auto used = static_cast<uint64_t>(9000.0 * kMb * (1 + noise(rng) / 10));
    EXPECT_TRUE(forecasts.Observe(i * kS, Sample(rss, 700 * kMb, used, 10'000 * kMb)).empty())
        << "sample " << i;
  }
}

TEST(HealthForecasts, UnreadableFiguresAndAZeroHorizonGiveNone) {
  HealthForecasts off(0, 0);
  HealthForecasts unread(kHorizonNs, 0);
  for (int i = 0; i < 100; ++i) {
    const uint64_t rss = 100 * kMb + static_cast<uint64_t>(i) * 10 * kMb;
    EXPECT_TRUE(off.Observe(i * kS, Sample(rss, 1100 * kMb - rss, rss, 2 * rss)).empty());
    EXPECT_TRUE(unread.Observe(i * kS, Sample(0, 0, 0, 0)).empty());
  }
}

// A real process leaking 40 MB/s with samples every 50 ms: its own health
// monitor journals an "rss" forecast while it runs, and its clean stop clears
// the forecast from the folded state.
TEST(HealthForecastProcess, ALeakingProcessJournalsItsOwnForecast) {
  blackbox::testing::TempDir tmp;
  const std::string root = tmp / "journal";
  const blackbox::testing::ProcessResult run =
      blackbox::testing::RunProcess({CRASHY_CHILD, "leak", root});
  ASSERT_EQ(run.exit_code, 0) << run.err;

  auto reader = Reader::Open(root, kAppStream);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::vector<std::string> warnings;
  bool stopped_after = false;
  ASSERT_TRUE((*reader)
                  ->Scan({},
                         [&](const Record& r) {
                           if (const fb::Forecast* f = r.event->payload_as_Forecast()) {
                             EXPECT_EQ(r.event->severity(), fb::Severity::Warning);
                             EXPECT_EQ(f->resource()->str(), "rss");
                             EXPECT_FALSE(f->cleared());
                             EXPECT_GT(f->seconds_to_limit(), 0);
                             warnings.push_back(f->message()->str());
                           }
                           if (const fb::Lifecycle* l = r.event->payload_as_Lifecycle()) {
                             if (!warnings.empty() && l->phase() == fb::Phase::Stopped) {
                               stopped_after = true;
                             }
                           }
                           return true;
                         })
                  .ok());
  ASSERT_FALSE(warnings.empty()) << "no forecast journaled";
  EXPECT_EQ(warnings.size(), 1u) << "repeated within the horizon";
  EXPECT_NE(warnings[0].find("reaches the 400 MB limit in ~"), std::string::npos) << warnings[0];
  EXPECT_TRUE(stopped_after);
  auto state = LoadState(root);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_TRUE(state->forecasts.empty());
}

}  // namespace
}  // namespace blackbox
