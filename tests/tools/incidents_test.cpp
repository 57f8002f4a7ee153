// IncidentBuilder (tools/src/incidents.h) over built event sequences: one
// incident per death, whichever records the death left.
#include "incidents.h"

#include <gtest/gtest.h>

#include <csignal>

namespace blackbox::tools {
namespace {

constexpr int64_t kT0 = 1768473000LL * 1'000'000'000;
constexpr int64_t kMs = 1'000'000;
constexpr int32_t kWatchdog = 100;
constexpr int32_t kApp1 = 201;
constexpr int32_t kApp2 = 202;

class Incidents : public ::testing::Test {
 protected:
  template <class T>
  void Add(std::string_view stream, int64_t time_ns, int32_t pid, T payload) {
    fb::EventT e;
    e.stream = std::string(stream);
    e.time_ns = time_ns;
    e.mono_ns = time_ns - kT0 + 1;
    e.pid = pid;
    e.payload.Set(std::move(payload));
    std::string bytes = EncodeEvent(std::move(e));
    builder_.Add(stream, ++seq_, *fb::GetEvent(bytes.data()));
  }
  void Phase(std::string_view stream, int64_t t, int32_t pid, fb::Phase phase, int32_t child = 0) {
    fb::LifecycleT l;
    l.phase = phase;
    l.child_pid = child;
    Add(stream, t, pid, std::move(l));
  }
  void WatchdogSpawns(int64_t t, int32_t child) {
    Phase(kWatchdogStream, t, kWatchdog, fb::Phase::Starting, child);
    Phase(kAppStream, t + 10 * kMs, child, fb::Phase::Starting);
    Phase(kAppStream, t + 20 * kMs, child, fb::Phase::Running);
  }
  void WatchdogSaw(int64_t t, int32_t child, int signal, int exit_code = -1) {
    fb::CrashT c;
    c.origin = fb::CrashOrigin::Watchdog;
    c.signal = signal;
    c.exit_code = exit_code;
    c.crashed_pid = child;
    c.crash_time_ns = t;
    Add(kWatchdogStream, t, kWatchdog, std::move(c));
  }
  void Restart(int64_t t, fb::RestartReason reason, int32_t next, int signal = 0) {
    fb::RestartT r;
    r.attempt = 1;
    r.reason = reason;
    r.signal = signal;
    r.delay_ms = 500;
    r.child_pid = next;
    Add(kWatchdogStream, t, kWatchdog, std::move(r));
  }
  // The next run's own records: "unclean" restart, then the capture it ingested.
  void NextRunIngests(int64_t t, int32_t next, int32_t dead, int64_t crash_ns, int signal,
                      fb::CrashOrigin origin = fb::CrashOrigin::Signal) {
    fb::RestartT r;
    r.reason = fb::RestartReason::Unclean;
    r.child_pid = next;
    Add(kAppStream, t + 15 * kMs, next, std::move(r));
    if (signal == 0) return;
    fb::CrashT c;
    c.origin = origin;
    c.signal = signal;
    c.crashed_pid = dead;
    c.crash_time_ns = crash_ns;
    c.frames = {"Book::best_bid()", "main"};
    if (origin == fb::CrashOrigin::Terminate) {
      c.exception_type = "std::logic_error";
      c.exception_message = "unroutable";
    }
    Add(kAppStream, t + 16 * kMs, next, std::move(c));
  }
  IncidentBuilder builder_;
  uint64_t seq_ = 0;
};

TEST_F(Incidents, AppCaptureAndWatchdogRecordOfOneDeathAreOneIncident) {
  WatchdogSpawns(kT0, kApp1);
  WatchdogSaw(kT0 + 3000 * kMs, kApp1, SIGSEGV);
  Restart(kT0 + 3001 * kMs, fb::RestartReason::Crash, kApp2, SIGSEGV);
  WatchdogSpawns(kT0 + 3500 * kMs, kApp2);
  NextRunIngests(kT0 + 3500 * kMs, kApp2, kApp1, kT0 + 2999 * kMs, SIGSEGV);
  std::vector<Incident> got = builder_.Finish();
  ASSERT_EQ(got.size(), 1u);
  const Incident& i = got[0];
  EXPECT_EQ(i.number, 1u);
  EXPECT_EQ(i.pid, kApp1);
  EXPECT_EQ(i.reason, "segfault");
  EXPECT_EQ(i.time_ns, kT0 + 2999 * kMs);  // the capture's own time, the earliest
  EXPECT_EQ(i.frames, (std::vector<std::string>{"Book::best_bid()", "main"}));
  EXPECT_TRUE(i.has_capture);
  EXPECT_EQ(i.primary_stream, kAppStream);  // the capture is the crash shown
  ASSERT_TRUE(i.lived_ns);
  EXPECT_EQ(*i.lived_ns, 2999 * kMs);
  ASSERT_TRUE(i.restart_time_ns);
  EXPECT_EQ(i.restart_pid, kApp2);
  std::vector<std::string> kinds;
  for (const auto& s : i.sources) kinds.push_back(s.kind);
  EXPECT_EQ(kinds, (std::vector<std::string>{"watchdog", "restart", "unclean", "capture"}));
}

TEST_F(Incidents, UncaughtExceptionIsTerminateNotAbort) {
  WatchdogSpawns(kT0, kApp1);
  WatchdogSaw(kT0 + 1000 * kMs, kApp1, SIGABRT);
  Restart(kT0 + 1001 * kMs, fb::RestartReason::Crash, kApp2, SIGABRT);
  WatchdogSpawns(kT0 + 1500 * kMs, kApp2);
  NextRunIngests(kT0 + 1500 * kMs, kApp2, kApp1, kT0 + 999 * kMs, SIGABRT,
                 fb::CrashOrigin::Terminate);
  std::vector<Incident> got = builder_.Finish();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].reason, "terminate");
  EXPECT_EQ(got[0].exception_type, "std::logic_error");
}

TEST_F(Incidents, HangStopIsOneIncidentWithReasonHang) {
  WatchdogSpawns(kT0, kApp1);
  fb::LimitT l;
  l.kind = fb::LimitKind::Heartbeat;
  l.action = fb::LimitAction::Abort;
  l.child_pid = kApp1;
  Add(kWatchdogStream, kT0 + 5000 * kMs, kWatchdog, std::move(l));
  WatchdogSaw(kT0 + 5100 * kMs, kApp1, SIGABRT);
  Restart(kT0 + 5101 * kMs, fb::RestartReason::Hang, kApp2, SIGABRT);
  WatchdogSpawns(kT0 + 5600 * kMs, kApp2);
  NextRunIngests(kT0 + 5600 * kMs, kApp2, kApp1, kT0 + 5050 * kMs, SIGABRT);
  std::vector<Incident> got = builder_.Finish();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].reason, "hang");
  EXPECT_EQ(got[0].signal, SIGABRT);
  EXPECT_FALSE(got[0].frames.empty());
}

TEST_F(Incidents, MemoryStopWithoutAnyCrashRecordIsAnIncident) {
  WatchdogSpawns(kT0, kApp1);
  fb::LimitT warn;
  warn.kind = fb::LimitKind::Memory;
  warn.action = fb::LimitAction::Warn;
  warn.child_pid = kApp1;
  Add(kWatchdogStream, kT0 + 1000 * kMs, kWatchdog, warn);
  fb::LimitT stop = warn;
  stop.action = fb::LimitAction::Stop;
  Add(kWatchdogStream, kT0 + 1300 * kMs, kWatchdog, stop);
  Phase(kAppStream, kT0 + 1310 * kMs, kApp1, fb::Phase::Stopped);  // it stopped cleanly
  Restart(kT0 + 1400 * kMs, fb::RestartReason::Memory, kApp2);
  std::vector<Incident> got = builder_.Finish();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].reason, "memory");
  EXPECT_EQ(got[0].pid, kApp1);
  EXPECT_EQ(got[0].time_ns, kT0 + 1300 * kMs);
}

TEST_F(Incidents, CleanStopsMakeNoIncident) {
  WatchdogSpawns(kT0, kApp1);
  Phase(kAppStream, kT0 + 1000 * kMs, kApp1, fb::Phase::Stopped);
  Restart(kT0 + 1100 * kMs, fb::RestartReason::Exit, kApp2);
  WatchdogSpawns(kT0 + 1200 * kMs, kApp2);
  Phase(kAppStream, kT0 + 2000 * kMs, kApp2, fb::Phase::Stopped);
  EXPECT_TRUE(builder_.Finish().empty());
}

TEST_F(Incidents, ARestartOnRequestMakesNoIncident) {
  // blackbox-watchdog --restart NAME: SIGTERM, a clean stop, reason manual.
  WatchdogSpawns(kT0, kApp1);
  Phase(kAppStream, kT0 + 1000 * kMs, kApp1, fb::Phase::Stopped);
  Restart(kT0 + 1100 * kMs, fb::RestartReason::Manual, kApp2, SIGTERM);
  WatchdogSpawns(kT0 + 1200 * kMs, kApp2);
  EXPECT_TRUE(builder_.Finish().empty());
}

TEST_F(Incidents, ADeathSeenOnlyAtTheNextStartIsUnclean) {
  Phase(kAppStream, kT0, kApp1, fb::Phase::Starting);
  Phase(kAppStream, kT0 + 10 * kMs, kApp1, fb::Phase::Running);
  // SIGKILL, nobody watching; the next run finds the previous never stopped.
  Phase(kAppStream, kT0 + 600'000 * kMs, kApp2, fb::Phase::Starting);
  NextRunIngests(kT0 + 600'000 * kMs, kApp2, kApp1, 0, 0);
  std::vector<Incident> got = builder_.Finish();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].reason, "unclean");
  EXPECT_EQ(got[0].pid, kApp1);
  EXPECT_FALSE(got[0].has_capture);
}

TEST_F(Incidents, TwoDeathsAreTwoIncidentsInOrder) {
  WatchdogSpawns(kT0, kApp1);
  WatchdogSaw(kT0 + 1000 * kMs, kApp1, SIGSEGV);
  Restart(kT0 + 1001 * kMs, fb::RestartReason::Crash, kApp2, SIGSEGV);
  WatchdogSpawns(kT0 + 1500 * kMs, kApp2);
  WatchdogSaw(kT0 + 2000 * kMs, kApp2, 0, 3);
  Restart(kT0 + 2001 * kMs, fb::RestartReason::Failure, 203);
  std::vector<Incident> got = builder_.Finish();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].reason, "segfault");
  EXPECT_EQ(got[1].reason, "exit");
  EXPECT_EQ(got[1].exit_code, 3);
  EXPECT_EQ(got[1].number, 2u);
}

// Signatures: the same crash in another build (code moved, so other offsets,
// addresses and lines) signs the same; a crash in another function does not.
Incident Crashed(int signal, std::vector<std::string> frames, std::string exception = "") {
  Incident i;
  i.signal = signal;
  i.frames = std::move(frames);
  i.exception_type = std::move(exception);
  return i;
}

TEST(Signature, IgnoresOffsetsAddressesAndLines) {
  Incident a = Crashed(SIGSEGV, {"demo::route(int) +0xe (blackbox-demo) at ../examples/r.cpp:42",
                                 "main +0xeb3 (blackbox-demo) at ../examples/r.cpp:121",
                                 "__libc_start_main +0x85 (libc.so.6)"});
  Incident b = Crashed(SIGSEGV, {"demo::route(int) +0x3a (blackbox-demo) at ../examples/r.cpp:57",
                                 "main.cold +0x10cb (blackbox-demo) at ../examples/r.cpp:140",
                                 "__libc_start_main +0x80 (libc.so.6)"});
  std::string sa = IncidentSignature(a);
  EXPECT_EQ(sa.size(), 12u);
  EXPECT_EQ(sa, IncidentSignature(b));
  EXPECT_EQ(SignatureFrames(a.frames), (std::vector<std::string>{"demo::route(int)", "main"}));
}

TEST(Signature, IsTheSameInEveryBuild) {
  // FNV-1a 64 of "SIGSEGV\nf()\nmain", low 48 bits: fixed, whatever the compiler.
  EXPECT_EQ(IncidentSignature(Crashed(SIGSEGV, {"f() +0x1 (app)", "main +0x2 (app)"})),
            "c4f9b8b98db3");
}

TEST(Signature, ADifferentTopFunctionOrSignalIsAnotherSignature) {
  std::string base = IncidentSignature(Crashed(SIGSEGV, {"f() +0x1 (app)", "main +0x2 (app)"}));
  EXPECT_NE(base, IncidentSignature(Crashed(SIGSEGV, {"g() +0x1 (app)", "main +0x2 (app)"})));
  EXPECT_NE(base, IncidentSignature(Crashed(SIGBUS, {"f() +0x1 (app)", "main +0x2 (app)"})));
  EXPECT_NE(base, IncidentSignature(
                      Crashed(SIGABRT, {"f() +0x1 (app)", "main +0x2 (app)"}, "std::logic_error")));
}

TEST(Signature, SkipsLibcRuntimeLoaderAndTheCrashHandler) {
  std::vector<std::string> frames = {
      "blackbox::(anonymous namespace)::OnFatalSignal(int, siginfo_t*, void*) +0x5c (app)",
      "__restore_rt (libc.so.6)",
      "clock_nanosleep +0x65 (libc.so.6)",
      "__cxa_throw +0x3b (libstdc++.so.6)",
      "_Unwind_RaiseException +0x1 (libgcc_s.so.1)",
      "_dl_runtime_resolve +0x3 (ld-linux-x86-64.so.2)",
      "app+0x1234",
      "void std::this_thread::sleep_for<long>(long const&) [inlined] (app) at this_thread.h:80",
      "demo::f() [clone .isra.0] +0x10 (app) at f.cpp:3",
      "main +0x10cb (app) at f.cpp:126",
      "_start +0x21 (app)"};
  EXPECT_EQ(SignatureFrames(frames),
            (std::vector<std::string>{"void std::this_thread::sleep_for<long>(long const&)",
                                      "demo::f()", "main"}));
  EXPECT_EQ(FrameFunction("__libc_start_call_main +0x7a (libc.so.6) at ../sysdeps/x.h:58"), "");
  EXPECT_EQ(FrameFunction("x.py:4 in handle"), "x.py in handle");
}

TEST(Signature, NothingToSignWithoutFramesOrException) {
  EXPECT_EQ(IncidentSignature(Crashed(SIGKILL, {})), "");
}

TEST_F(Incidents, FirstSeenOnlyOnTheFirstIncidentOfASignature) {
  WatchdogSpawns(kT0, kApp1);
  NextRunIngests(kT0 + 1000 * kMs, kApp2, kApp1, kT0 + 900 * kMs, SIGSEGV);
  NextRunIngests(kT0 + 2000 * kMs, 203, kApp2, kT0 + 1900 * kMs, SIGSEGV);
  std::vector<Incident> got = builder_.Finish();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[0].signature.empty());
  EXPECT_EQ(got[0].signature, got[1].signature);
  EXPECT_TRUE(got[0].first_seen);
  EXPECT_FALSE(got[1].first_seen);
}

TEST(Signature, GroupCountsAddUpToTheIncidentsWithASignature) {
  std::vector<Incident> all = {Crashed(SIGSEGV, {"f() +0x1 (app)"}),
                               Crashed(SIGSEGV, {"g() +0x1 (app)"}), Crashed(SIGKILL, {}),
                               Crashed(SIGSEGV, {"f() +0x9 (app) at f.cpp:3"}),
                               Crashed(SIGSEGV, {"f() +0x5 (app)"})};
  std::vector<const Incident*> list;
  for (size_t n = 0; n < all.size(); ++n) {
    all[n].number = n + 1;
    all[n].signature = IncidentSignature(all[n]);
    list.push_back(&all[n]);
  }
  std::vector<SignatureGroup> groups = GroupBySignature(list);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].count, 3u);
  EXPECT_EQ(groups[0].first->number, 1u);
  EXPECT_EQ(groups[0].last->number, 5u);
  EXPECT_EQ(groups[1].count, 1u);
  EXPECT_EQ(groups[1].first->number, 2u);
}

}  // namespace
}  // namespace blackbox::tools
