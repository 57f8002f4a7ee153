// The pure parts of --alert-exec: the rate limit and the summary line.
#include "alerts.h"

#include <gtest/gtest.h>
#include <signal.h>

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

}  // namespace
