// The notify protocol's state without a process: what each message makes the
// loop journal and arm (readiness.h).
#include "readiness.h"

#include <gtest/gtest.h>

namespace blackbox::watchdog {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kT0 = 5'000 * kMs;

NotifyMessage Status(std::string text) {
  NotifyMessage m;
  m.status = std::move(text);
  return m;
}
NotifyMessage Ready(std::optional<std::string> status = std::nullopt) {
  NotifyMessage m;
  m.ready = true;
  m.status = std::move(status);
  return m;
}
NotifyMessage Beat() {
  NotifyMessage m;
  m.watchdog = true;
  return m;
}

class ReadinessTest : public ::testing::Test {
 protected:
  ReadinessTest() : r_({.watchdog_timeout = 10, .stop_timeout = 3}) { r_.Start(kT0); }
  Readiness r_;
};

TEST_F(ReadinessTest, AStatusBeforeReadyIsJournaledAtOnceAsStarting) {
  Readiness::Actions a = r_.OnMessage(Status("loading"), kT0 + 5 * kMs);
  ASSERT_EQ(a.journal.size(), 1u);
  EXPECT_EQ(a.journal[0].phase, fb::Phase::Starting);
  EXPECT_EQ(a.journal[0].reason, "loading");
  EXPECT_FALSE(a.journal[0].durable);
  EXPECT_FALSE(r_.ready());
}

TEST_F(ReadinessTest, AStatusWithinASecondWaitsForTheRestOfTheSecondNotAHealthTick) {
  r_.OnMessage(Status("loading"), kT0);
  Readiness::Actions a = r_.OnMessage(Status("loading 50%"), kT0 + 300 * kMs);
  EXPECT_TRUE(a.journal.empty());
  ASSERT_TRUE(a.status_timer);
  EXPECT_DOUBLE_EQ(*a.status_timer, 0.7);
  // A third change before the timer arms nothing new; the latest text wins.
  a = r_.OnMessage(Status("loading 90%"), kT0 + 600 * kMs);
  EXPECT_FALSE(a.status_timer);
  ASSERT_TRUE(r_.status_pending());
  std::optional<Readiness::Record> flushed = r_.FlushStatus(kT0 + 1000 * kMs);
  ASSERT_TRUE(flushed);
  EXPECT_EQ(flushed->reason, "loading 90%");
  EXPECT_FALSE(r_.status_pending());
  EXPECT_FALSE(r_.FlushStatus(kT0 + 1001 * kMs));
}

TEST_F(ReadinessTest, ReadyIsDurableCarriesTheLatestStatusAndCancelsTheWaitingOne) {
  r_.OnMessage(Status("STATUS one"), kT0);
  r_.OnMessage(Status("Ready: accepting orders"), kT0 + 3 * kMs);  // coalesced
  Readiness::Actions a = r_.OnMessage(Ready(), kT0 + 4 * kMs);
  ASSERT_EQ(a.journal.size(), 1u);
  EXPECT_EQ(a.journal[0].phase, fb::Phase::Running);
  EXPECT_EQ(a.journal[0].reason, "Ready: accepting orders");
  EXPECT_TRUE(a.journal[0].durable);
  EXPECT_EQ(a.status_timer, 0.0);  // disarmed
  EXPECT_FALSE(r_.status_pending());
  EXPECT_TRUE(r_.ready());
  // Said once per child.
  EXPECT_TRUE(r_.OnMessage(Ready(), kT0 + 5 * kMs).journal.empty());
  r_.Start(kT0 + 10'000 * kMs);
  EXPECT_EQ(r_.OnMessage(Ready(), kT0 + 10'001 * kMs).journal.size(), 1u);
}

TEST_F(ReadinessTest, ReadyOfAChildCountedRunningAtItsSpawnIsStillJournaled) {
  r_.MarkRunning();
  Readiness::Actions a = r_.OnMessage(Ready(), kT0 + kMs);
  ASSERT_EQ(a.journal.size(), 1u);
  EXPECT_EQ(a.journal[0].reason, "ready");
}

TEST_F(ReadinessTest, AHeartbeatRearmsTheTimeoutAndABeatBeforeReadyMeansRunning) {
  Readiness::Actions a = r_.OnMessage(Beat(), kT0 + 2000 * kMs);
  ASSERT_EQ(a.journal.size(), 1u);
  EXPECT_EQ(a.journal[0].phase, fb::Phase::Running);
  EXPECT_EQ(a.heartbeat_timer, 10.0);
  EXPECT_EQ(r_.last_heartbeat_ns(), kT0 + 2000 * kMs);
  a = r_.OnMessage(Beat(), kT0 + 4000 * kMs);
  EXPECT_TRUE(a.journal.empty());
  EXPECT_EQ(a.heartbeat_timer, 10.0);
}

TEST_F(ReadinessTest, StoppingBoundsTheStopByTheStopTimeoutInsteadOfTheHeartbeat) {
  NotifyMessage stopping;
  stopping.stopping = true;
  Readiness::Actions a = r_.OnMessage(stopping, kT0 + 100 * kMs);
  ASSERT_EQ(a.journal.size(), 1u);
  EXPECT_EQ(a.journal[0].phase, fb::Phase::Stopping);
  EXPECT_EQ(a.heartbeat_timer, 3.0);
  // Heartbeats no longer rearm the timer.
  EXPECT_FALSE(r_.OnMessage(Beat(), kT0 + 200 * kMs).heartbeat_timer);
  Readiness::Silence s = r_.SilenceAt(kT0 + 3100 * kMs, false);
  EXPECT_TRUE(s.stop_overran);
  EXPECT_EQ(s.since_ns, 3000 * kMs);
  EXPECT_FALSE(s.never_spoke);
}

TEST_F(ReadinessTest, ASilenceFromTheStartIsAChildThatNeverSpokeTheProtocol) {
  Readiness::Silence s = r_.SilenceAt(kT0 + 10'000 * kMs, false);
  EXPECT_TRUE(s.never_spoke);
  EXPECT_EQ(s.since_ns, 10'000 * kMs);
  r_.OnMessage(Beat(), kT0 + kMs);
  EXPECT_FALSE(r_.SilenceAt(kT0 + 11'000 * kMs, false).never_spoke);
}

TEST_F(ReadinessTest, WatchdogTriggerIsAHangNow) {
  NotifyMessage m;
  m.watchdog_trigger = true;
  EXPECT_TRUE(r_.OnMessage(m, kT0 + kMs).triggered);
  EXPECT_FALSE(r_.SilenceAt(kT0 + kMs, true).never_spoke);
}

}  // namespace
}  // namespace blackbox::watchdog
