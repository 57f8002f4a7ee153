// What each way a child can end means to the watchdog, without a process:
// JudgeExit is the decision OnChildExit acts on.
#include "exit_verdict.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

namespace blackbox::watchdog {
namespace {

ExitInfo Killed(int signal) { return {.code = -1, .signal = signal}; }
ExitInfo Exited(int code) { return {.code = code}; }

TEST(JudgeExit, ADeathNobodyOrderedIsACrashWithARecordAndAnAlert) {
  const ExitVerdict v = JudgeExit(StopCause::kNone, Killed(SIGSEGV), RestartMode::kOnFailure);
  EXPECT_EQ(v.restart, fb::RestartReason::Crash);
  EXPECT_TRUE(v.counted);
  EXPECT_TRUE(v.crash_record);
  EXPECT_TRUE(v.alert);
  EXPECT_EQ(v.alert_kind, AlertKind::kCrash);
}

TEST(JudgeExit, ANonZeroStatusIsAFailureNotACrash) {
  const ExitVerdict v = JudgeExit(StopCause::kNone, Exited(3), RestartMode::kOnFailure);
  EXPECT_EQ(v.restart, fb::RestartReason::Failure);
  EXPECT_TRUE(v.crash_record);
  EXPECT_TRUE(v.alert);
  EXPECT_EQ(v.alert_kind, AlertKind::kCrash);
}

TEST(JudgeExit, ACleanExitEndsTheRunUnlessRestartIsAlways) {
  const ExitVerdict on_failure = JudgeExit(StopCause::kNone, Exited(0), RestartMode::kOnFailure);
  EXPECT_FALSE(on_failure.restart);
  EXPECT_FALSE(on_failure.alert);
  const ExitVerdict always = JudgeExit(StopCause::kNone, Exited(0), RestartMode::kAlways);
  EXPECT_EQ(always.restart, fb::RestartReason::Exit);
  EXPECT_FALSE(always.crash_record);
  EXPECT_FALSE(always.alert);
}

TEST(JudgeExit, AHangsAbortIsRecordedAsACrashAndAlertedAsAHang) {
  const ExitVerdict v = JudgeExit(StopCause::kHang, Killed(SIGABRT), RestartMode::kOnFailure);
  EXPECT_EQ(v.restart, fb::RestartReason::Hang);
  EXPECT_TRUE(v.crash_record);
  EXPECT_TRUE(v.alert);
  EXPECT_EQ(v.alert_kind, AlertKind::kHang);
}

TEST(JudgeExit, LimitStopsAreTheWatchdogsDoingNotCrashes) {
  for (auto [cause, reason, kind] :
       {std::tuple{StopCause::kMemory, fb::RestartReason::Memory, AlertKind::kMemory},
        std::tuple{StopCause::kCpu, fb::RestartReason::Cpu, AlertKind::kCpu}}) {
    // Stopped with SIGTERM, or exited 0 on it: either way a limit stop.
    for (const ExitInfo& exit : {Killed(SIGTERM), Exited(0)}) {
      const ExitVerdict v = JudgeExit(cause, exit, RestartMode::kOnFailure);
      EXPECT_EQ(v.restart, reason);
      EXPECT_TRUE(v.counted);
      EXPECT_FALSE(v.crash_record);
      EXPECT_TRUE(v.alert);
      EXPECT_EQ(v.alert_kind, kind);
    }
  }
}

TEST(JudgeExit, ARestartOnRequestIsNotCountedAndTellsNobody) {
  const ExitVerdict v = JudgeExit(StopCause::kManual, Killed(SIGTERM), RestartMode::kOnFailure);
  EXPECT_EQ(v.restart, fb::RestartReason::Manual);
  EXPECT_FALSE(v.counted);
  EXPECT_FALSE(v.crash_record);
  EXPECT_FALSE(v.alert);
}

TEST(JudgeExit, AStopOnRequestEndsTheRunWhateverTheStatus) {
  for (const ExitInfo& exit : {Killed(SIGKILL), Exited(1), Exited(0)}) {
    const ExitVerdict v = JudgeExit(StopCause::kUserStop, exit, RestartMode::kAlways);
    EXPECT_FALSE(v.restart);
    EXPECT_FALSE(v.crash_record);
    EXPECT_FALSE(v.alert);
  }
}

TEST(ExitInfo, DecodesTheWaitStatusAndSaysHowTheChildEnded) {
  const ExitInfo exited = ExitInfo::FromWaitStatus(3 << 8);  // as WEXITSTATUS reads it
  EXPECT_EQ(exited.code, 3);
  EXPECT_EQ(exited.signal, 0);
  EXPECT_EQ(exited.Describe(), "exited with status 3");
  const ExitInfo killed = ExitInfo::FromWaitStatus(SIGSEGV | 0x80);  // core dumped
  EXPECT_EQ(killed.code, -1);
  EXPECT_EQ(killed.signal, SIGSEGV);
  EXPECT_TRUE(killed.core_dumped);
  EXPECT_EQ(killed.Describe(), "killed by SIGSEGV (core dumped)");
}

}  // namespace
}  // namespace blackbox::watchdog
