// Samples over the memory and CPU limits, counted without a process
// (limit_tracker.h).
#include "limit_tracker.h"

#include <gtest/gtest.h>

namespace blackbox::watchdog {
namespace {

LimitTracker Tracker() {
  return LimitTracker({.max_memory_mb = 100, .max_cpu_percent = 50, .cycles = 3});
}

TEST(LimitTracker, AStopComesOnlyAfterTheGivenNumberOfSamplesInARow) {
  LimitTracker t = Tracker();
  for (int i = 1; i <= 2; ++i) {
    auto b = t.OnSample(150, 10);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].kind, fb::LimitKind::Memory);
    EXPECT_EQ(b[0].consecutive, i);
    EXPECT_FALSE(b[0].stop);
  }
  auto b = t.OnSample(150, 10);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_TRUE(b[0].stop);
  EXPECT_EQ(b[0].value, 150);
  EXPECT_EQ(b[0].limit, 100);
}

TEST(LimitTracker, ASampleUnderTheLimitStartsTheCountAgain) {
  LimitTracker t = Tracker();
  t.OnSample(150, 10);
  t.OnSample(150, 10);
  EXPECT_TRUE(t.OnSample(90, 10).empty());
  auto b = t.OnSample(150, 10);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].consecutive, 1);
  t.Reset();
  EXPECT_EQ(t.OnSample(150, 10)[0].consecutive, 1);
}

TEST(LimitTracker, MemoryIsJudgedFirstAndItsStopEndsTheSample) {
  LimitTracker t = Tracker();
  t.OnSample(150, 80);
  auto b = t.OnSample(150, 80);
  ASSERT_EQ(b.size(), 2u);  // both warned
  EXPECT_EQ(b[0].kind, fb::LimitKind::Memory);
  EXPECT_EQ(b[1].kind, fb::LimitKind::Cpu);
  b = t.OnSample(150, 80);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].kind, fb::LimitKind::Memory);
  EXPECT_TRUE(b[0].stop);
}

TEST(LimitTracker, CpuIsUnknownOnTheFirstSampleAndNeverABreachThen) {
  LimitTracker t = Tracker();
  EXPECT_FALSE(t.Over(10, std::nullopt));
  EXPECT_TRUE(t.OnSample(10, std::nullopt).empty());
  EXPECT_TRUE(t.Over(10, 51));
  EXPECT_TRUE(t.Over(101, std::nullopt));
  EXPECT_FALSE(t.Over(100, 50));  // at the limit is not over it
}

}  // namespace
}  // namespace blackbox::watchdog
