#include "blackbox/forecast.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace blackbox {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr double kMb = 1024.0 * 1024.0;

ForecastOptions Options(double limit_mb, int64_t horizon_s = 600) {
  ForecastOptions o;
  o.limit = limit_mb * kMb;
  o.horizon_ns = horizon_s * kS;
  return o;
}

// The events of feeding `values`, one a second.
struct Fed {
  std::vector<ForecastEvent> events;
  std::vector<size_t> at;  // sample index of each event
};
Fed Feed(Forecaster& f, const std::vector<double>& values, size_t first = 0) {
  Fed fed;
  for (size_t i = 0; i < values.size(); ++i) {
    if (auto e = f.Observe(static_cast<int64_t>(first + i) * kS, values[i])) {
      fed.events.push_back(*e);
      fed.at.push_back(first + i);
    }
  }
  return fed;
}

TEST(Forecast, FitOfALineIsItsSlope) {
  std::vector<int64_t> t;
  std::vector<double> v;
  for (int i = 0; i < 20; ++i) {
    t.push_back(i * kS / 2);
    v.push_back(100 + 3.0 * i);  // 6 per second
  }
  const TrendFit fit = FitTrend(t, v);
  EXPECT_DOUBLE_EQ(fit.slope_per_s, 6.0);
  EXPECT_DOUBLE_EQ(fit.fitted_now, 157.0);
  EXPECT_GT(fit.z, 5.0);
}

TEST(Forecast, FitIgnoresAFewOutliers) {
  std::vector<int64_t> t;
  std::vector<double> v;
  for (int i = 0; i < 30; ++i) {
    t.push_back(i * kS);
    v.push_back(1000 + 2.0 * i + (i % 10 == 3 ? 5000 : 0));  // three spikes
  }
  EXPECT_NEAR(FitTrend(t, v).slope_per_s, 2.0, 0.2);
}

TEST(Forecast, FallingMemoryHasNegativeZ) {
  std::vector<int64_t> t;
  std::vector<double> v;
  for (int i = 0; i < 20; ++i) {
    t.push_back(i * kS);
    v.push_back(1000 - 4.0 * i);
  }
  const TrendFit fit = FitTrend(t, v);
  EXPECT_LT(fit.z, -5.0);
  EXPECT_DOUBLE_EQ(fit.slope_per_s, -4.0);
}

TEST(Forecast, SteadyLeakWarnsEarlyWithAnAccurateProjection) {
  // 100 MB rising 10 MB/s against 1024 MB: the limit is crossed at ~92.4 s.
  Forecaster f(Options(1024, 60));
  std::vector<double> values;
  for (int i = 0; i < 92; ++i) values.push_back((100 + 10.0 * i) * kMb);
  const Fed fed = Feed(f, values);
  ASSERT_FALSE(fed.events.empty());
  const ForecastEvent& first = fed.events.front();
  EXPECT_FALSE(first.cleared);
  const double real = 92.4 - static_cast<double>(fed.at.front());
  EXPECT_LE(fed.at.front() + 3, 92u);
  EXPECT_NEAR(first.seconds_to_limit, real, 0.25 * real);
  EXPECT_NEAR(first.slope_per_s / kMb, 10.0, 0.5);
  EXPECT_NE(first.message.find("rising 10 MB/s; reaches the 1024 MB limit in ~"), std::string::npos)
      << first.message;
  EXPECT_TRUE(f.active());
}

TEST(Forecast, WarnsAtMostOncePerHorizon) {
  Forecaster f(Options(99200, 30));
  std::vector<double> values;
  for (int i = 0; i < 85; ++i) values.push_back((99000 + 10.0 * i) * kMb);
  const Fed fed = Feed(f, values);
  ASSERT_EQ(fed.events.size(), 3u);  // at the first verdict (20th sample), +30 s, +60 s
  EXPECT_EQ(fed.at[1] - fed.at[0], 30u);
  EXPECT_EQ(fed.at[2] - fed.at[1], 30u);
}

TEST(Forecast, ClearsOnceWhenTheRiseStops) {
  Forecaster f(Options(1024, 600));
  std::vector<double> values;
  for (int i = 0; i < 40; ++i) values.push_back((100 + 10.0 * i) * kMb);
  for (int i = 0; i < 200; ++i) values.push_back((500 + (i % 2)) * kMb);
  const Fed fed = Feed(f, values);
  ASSERT_EQ(fed.events.size(), 2u);
  EXPECT_FALSE(fed.events[0].cleared);
  EXPECT_TRUE(fed.events[1].cleared);
  EXPECT_FALSE(f.active());
}

TEST(Forecast, SteadyMemoryWithTenPercentNoiseNeverForecasts) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> noise(-0.10, 0.10);
    // 800 MB of 1024: a rise of 224 MB in 600 s would be enough to warn.
    Forecaster f(Options(1024, 600));
    std::vector<double> values;
    for (int i = 0; i < 600; ++i) values.push_back(800 * kMb * (1 + noise(rng)));
    EXPECT_TRUE(Feed(f, values).events.empty()) << "seed " << seed;
  }
}

TEST(Forecast, GarbageCollectorSawtoothNeverForecasts) {
  // Rises 360 MB in a period, then the collector drops it back.
  for (int period : {4, 7, 10}) {
    Forecaster f(Options(1024, 600));
    std::vector<double> values;
    for (int i = 0; i < 600; ++i) values.push_back((300 + 360.0 * (i % period) / period) * kMb);
    EXPECT_TRUE(Feed(f, values).events.empty()) << "period " << period;
  }
}

TEST(Forecast, HorizonZeroDisables) {
  Forecaster f(Options(1024, 0));
  std::vector<double> values;
  for (int i = 0; i < 90; ++i) values.push_back((100 + 10.0 * i) * kMb);
  EXPECT_TRUE(Feed(f, values).events.empty());
}

TEST(Forecast, ResetForgetsTheRun) {
  Forecaster f(Options(1024, 600));
  std::vector<double> values;
  for (int i = 0; i < 40; ++i) values.push_back((100 + 10.0 * i) * kMb);
  ASSERT_FALSE(Feed(f, values).events.empty());
  f.Reset();
  EXPECT_FALSE(f.active());
  EXPECT_FALSE(f.Observe(1000 * kS, 100 * kMb).has_value());
}

}  // namespace
}  // namespace blackbox
