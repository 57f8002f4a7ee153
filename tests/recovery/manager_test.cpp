// The seed's scenarios and the manager's in-process behaviour. Signal and
// crash handlers stay off here (the process tests cover them).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "blackbox/journal.h"
#include "blackbox/recovery.h"
#include "blackbox/state_io.h"
#include "temp_dir.h"

namespace orders_test {
struct BookCorrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace orders_test

namespace blackbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ManagerTest : public ::testing::Test {
 protected:
  RecoveryOptions Options() {
    RecoveryOptions o;
    o.journal_dir = (dir_ / "journal").string();
    o.state_file = (dir_ / "system_state.json").string();
    o.handle_signals = false;
    o.capture_crashes = false;
    return o;
  }
  nlohmann::json StateFile() {
    std::ifstream in(dir_ / "system_state.json");
    return nlohmann::json::parse(in);
  }
  blackbox::testing::TempDir tmp_;
  const fs::path dir_{tmp_.path()};
};

TEST_F(ManagerTest, ExceptionHandlerJournalsRunsRecoveryAndRethrowsUnchanged) {
  RecoveryManager rm(Options());
  std::vector<std::string> ran;
  rm.register_recovery_callback("reconnect_broker", [&] { ran.push_back("reconnect_broker"); });
  rm.register_recovery_callback("restore_positions", [&] { ran.push_back("restore_positions"); });
  EXPECT_THROW(
      rm.exception_handler("trading_operation", [] { throw std::invalid_argument("bad symbol"); }),
      std::invalid_argument);
  EXPECT_EQ(ran, (std::vector<std::string>{"reconnect_broker", "restore_positions"}));
  SystemState s = rm.state();
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_EQ(s.last_error->context, "trading_operation");
  EXPECT_EQ(s.last_error->exception_type, "std::invalid_argument");
  EXPECT_EQ(s.last_error->message, "bad symbol");
  EXPECT_EQ(s.status, fb::Phase::Running);  // recovered
  EXPECT_EQ(s.recovery_attempts, 0);
  // The value of a successful call passes through.
  EXPECT_EQ(rm.exception_handler("sum", [] { return 40 + 2; }), 42);
}

// What the journal holds of a handled error: the Error (its context, the
// exception's dynamic type and message, the recovery attempt), then the
// phases of its recovery. Two std::exception types and a non-standard one in
// turn, twice (names are demangled once per thread and kept).
TEST_F(ManagerTest, ExceptionHandlerJournalsTheThrownTypeAndMessageOfAnyException) {
  {
    RecoveryManager rm(Options());
    for (int i = 0; i < 2; ++i) {
      EXPECT_THROW(rm.exception_handler(
                       "book", [] { throw orders_test::BookCorrupted("crossed at 101.5"); }),
                   orders_test::BookCorrupted);
      EXPECT_THROW(rm.exception_handler("feed", [] { throw std::out_of_range("no level 7"); }),
                   std::logic_error);
      EXPECT_THROW(rm.exception_handler("legacy", [] { throw 42; }), int);
    }
  }
  std::vector<std::string> seen;
  auto reader = Reader::Open((dir_ / "journal").string(), "app");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(reader.value()
                  ->Scan({},
                         [&](const Record& r) {
                           if (const fb::Error* e = r.event->payload_as_Error()) {
                             std::unique_ptr<fb::ErrorT> t(e->UnPack());
                             seen.push_back(fmt::format("error {} | {} | {} | {} | {}", t->context,
                                                        t->exception_type, t->message,
                                                        t->recovery_attempt, t->frames.size()));
                           } else if (const fb::Lifecycle* l = r.event->payload_as_Lifecycle()) {
                             std::string reason = l->reason() ? l->reason()->str() : "(none)";
                             if (l->phase() == fb::Phase::Recovering ||
                                 (l->phase() == fb::Phase::Running && reason == "recovered")) {
                               seen.push_back(fmt::format("{} {} {}", PhaseName(l->phase()),
                                                          SeverityName(r.event->severity()),
                                                          reason));
                             }
                           }
                           return true;
                         })
                  .ok());
  const std::vector<std::string> recovery = {"recovering info (none)", "running info recovered"};
  std::vector<std::string> expected;
  for (int i = 0; i < 2; ++i) {
    for (const char* error :
         {"error book | orders_test::BookCorrupted | crossed at 101.5 | 0 | 0",
          "error feed | std::out_of_range | no level 7 | 0 | 0", "error legacy | int |  | 0 | 0"}) {
      expected.push_back(error);
      expected.insert(expected.end(), recovery.begin(), recovery.end());
    }
  }
  EXPECT_EQ(seen, expected);
}

// Each Error names the attempt its recovery makes: 0 after a success, then
// one more for each recovery that failed since.
TEST_F(ManagerTest, AnErrorCarriesTheRecoveryAttemptItStarts) {
  {
    RecoveryManager rm(Options());
    rm.register_recovery_callback("reconnect", [] { throw std::runtime_error("still down"); });
    for (int i = 0; i < 2; ++i) {
      EXPECT_THROW(rm.exception_handler("feed", [] { throw std::runtime_error("stalled"); }),
                   std::runtime_error);
    }
  }
  std::vector<int> attempts;
  std::vector<std::string> phases;
  auto reader = Reader::Open((dir_ / "journal").string(), "app");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(reader.value()
                  ->Scan({},
                         [&](const Record& r) {
                           if (const fb::Error* e = r.event->payload_as_Error()) {
                             attempts.push_back(e->recovery_attempt());
                           } else if (const fb::Lifecycle* l = r.event->payload_as_Lifecycle();
                                      l != nullptr && l->phase() == fb::Phase::Error) {
                             phases.push_back(fmt::format(
                                 "{} {}", SeverityName(r.event->severity()), l->reason()->str()));
                           }
                           return true;
                         })
                  .ok());
  EXPECT_EQ(attempts, (std::vector<int>{0, 1}));
  EXPECT_EQ(phases, (std::vector<std::string>{"error recovery failed", "error recovery failed"}));
}

TEST_F(ManagerTest, RecoverySucceedsOnlyWhenEveryCallbackSucceeds) {
  RecoveryManager rm(Options());
  rm.register_recovery_callback("ok", [] {});
  rm.register_recovery_callback("fails", [] { throw std::runtime_error("still down"); });
  EXPECT_FALSE(rm.attempt_recovery());
  EXPECT_EQ(rm.state().recovery_attempts, 1);
  EXPECT_FALSE(rm.attempt_recovery());
  EXPECT_EQ(rm.state().recovery_attempts, 2);
  EXPECT_EQ(rm.get_system_info().recovery_attempts, 2);

  // Every callback's result is in the journal, with its error text.
  rm.graceful_shutdown();
  auto reader = Reader::Open(Options().journal_dir, kAppStream);
  ASSERT_TRUE(reader.ok());
  int ok = 0, failed = 0;
  (*reader)->Scan({}, [&](const Record& r) {
    if (auto* c = r.event->payload_as_Callback(); c && c->kind() == fb::CallbackKind::Recovery) {
      c->ok() ? ++ok : ++failed;
      if (!c->ok()) {
        EXPECT_NE(c->error()->str().find("still down"), std::string::npos);
      }
    }
    return true;
  });
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(failed, 2);
}

TEST_F(ManagerTest, StatePersistsAcrossInstances) {
  {
    RecoveryManager first(Options());
    first.report_exception("data_processing",
                           std::make_exception_ptr(std::runtime_error("feed stalled")));
    first.set_gauge("active_positions", 3);
  }
  RecoveryManager second(Options());
  SystemState s = second.state();
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_EQ(s.last_error->message, "feed stalled");
  EXPECT_EQ(s.error_count, 1u);
  EXPECT_EQ(s.restart_count, 0);  // the first instance stopped cleanly
  EXPECT_EQ(s.status, fb::Phase::Running);
  EXPECT_EQ(second.get_system_info().last_error, "feed stalled");
  EXPECT_EQ(StateFile()["last_error"], "feed stalled");
}

TEST_F(ManagerTest, ThreeConcurrentWorkersWithOneFailure) {
  RecoveryManager rm(Options());
  std::atomic<int> recoveries{0};
  rm.register_recovery_callback("count", [&] { recoveries++; });
  std::atomic<int> completed[3] = {0, 0, 0};
  std::atomic<int> rethrown{0};
  auto worker = [&](int id) {
    for (int i = 0; i < 20; ++i) {
      try {
        rm.exception_handler(fmt::format("worker_{}", id), [&] {
          if (id == 1 && i == 10) throw std::runtime_error("worker 1 failed");
          rm.set_gauge(fmt::format("worker_{}_done", id), i + 1);
          completed[id]++;
        });
      } catch (const std::runtime_error&) {
        rethrown++;
      }
    }
  };
  std::thread a(worker, 0), b(worker, 1), c(worker, 2);
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(completed[0], 20);
  EXPECT_EQ(completed[1], 19);
  EXPECT_EQ(completed[2], 20);
  EXPECT_EQ(rethrown, 1);
  EXPECT_EQ(recoveries, 1);
  SystemState s = rm.state();
  EXPECT_EQ(s.error_count, 1u);
  EXPECT_EQ(s.last_error->context, "worker_1");
  EXPECT_EQ(s.gauge("worker_0_done"), 20);
  EXPECT_EQ(s.gauge("worker_2_done"), 20);
}

TEST_F(ManagerTest, MemoryPressureIsVisibleInHealthSamples) {
  RecoveryOptions o = Options();
  o.health_check_interval = 50ms;
  o.memory_warning_percent = 0;  // any sample is "over": the warning path is exercised
  RecoveryManager rm(o);
  double before = rm.get_system_info().memory_usage_mb;
  std::vector<char> ballast(128 << 20, 1);  // 128 MB, touched
  rm.start_health_monitoring();
  // Two samples at least, however slow the machine: each one warns.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (rm.state().health_warnings < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  rm.stop_health_monitoring();
  ASSERT_GE(rm.state().health_warnings, 2u) << "no two health samples in 20 s";
  SystemState s = rm.state();
  EXPECT_GT(s.memory_usage_mb, before + 100) << "ballast " << static_cast<int>(ballast[4096]);
  EXPECT_GT(s.health_warnings, 0u);
  EXPECT_GT(s.threads, 0);
  EXPECT_GT(s.open_fds, 0);
  EXPECT_GT(s.disk_percent, 0);
  // The state file follows every health check.
  EXPECT_GT(StateFile()["memory_usage"].get<double>(), before + 100);
}

TEST_F(ManagerTest, CpuPercentIsRightOnTheFirstSample) {
  // The reference is this process's own CPU time over the same window, so a
  // busy machine changes both figures alike.
  auto ns = [](clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
  };
  double cpu0 = ns(CLOCK_PROCESS_CPUTIME_ID), wall0 = ns(CLOCK_MONOTONIC);
  RecoveryManager rm(Options());
  auto until = std::chrono::steady_clock::now() + 300ms;
  volatile uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  double reported = rm.get_system_info().cpu_percent;
  double expected = 100 * (ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / (ns(CLOCK_MONOTONIC) - wall0);
  ASSERT_GT(expected, 10) << "the spin loop got no CPU at all";
  EXPECT_NEAR(reported, expected, expected * 0.3);
}

TEST_F(ManagerTest, AnUnusableJournalNeverStopsTheApplication) {
  RecoveryOptions o = Options();
  fs::path file = dir_ / "not_a_directory";
  std::ofstream(file) << "x";
  o.journal_dir = file.string();
  RecoveryManager rm(o);
  rm.set_gauge("active_connections", 2);
  EXPECT_THROW(rm.exception_handler("x", [] { throw std::runtime_error("e"); }),
               std::runtime_error);
  EXPECT_GT(rm.journal_failures(), 0u);
  EXPECT_EQ(rm.state().gauge("active_connections"), 2);
  EXPECT_EQ(rm.get_system_info().last_error, "e");
}

TEST_F(ManagerTest, SnapshotsKeepStartupFromRefoldingHistory) {
  RecoveryOptions o = Options();
  o.snapshot_every = 100;
  {
    RecoveryManager rm(o);
    for (int i = 0; i < 1000; ++i) rm.set_gauge("g", i);
  }
  auto reader = Reader::Open(o.journal_dir, kAppStream);
  ASSERT_TRUE(reader.ok());
  auto snaps = (*reader)->Snapshots();
  ASSERT_TRUE(snaps.ok());
  // Stored by the snapshot thread while the gauges were set (one queued
  // behind another replaces it, so fewer than 10), and the last at the end.
  EXPECT_GE(snaps->size(), 2u);
  RecoveryManager again(o);
  EXPECT_EQ(again.state().event_count, (*reader)->last_seq() + 3);  // + Config, Starting, Running
}

// RecoveryOptions::journal_ring_bytes: buffered events go through the
// stream's RING (owner-only), readers see them while the manager runs, and
// the next start folds them. A size the ring cannot take is journaled as a
// warning and the manager journals without a ring.
TEST_F(ManagerTest, TheRingCarriesBufferedEventsWhenAsked) {
  RecoveryOptions o = Options();
  o.journal_ring_bytes = 1 << 20;
  const fs::path ring = dir_ / "journal" / "app" / "RING";
  {
    RecoveryManager rm(o);
    for (int i = 0; i < 1000; ++i) rm.set_gauge("g", i);
    struct stat st {};
    ASSERT_EQ(::lstat(ring.c_str(), &st), 0) << "no RING in ring mode";
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_size, (1 << 20) + 4096) << "the header page and the slots";
    auto live = LoadState(o.journal_dir);
    ASSERT_TRUE(live.ok()) << live.status().ToString();
    ASSERT_TRUE(live->gauges.contains("g")) << "a live reader does not see the ring";
    EXPECT_EQ(live->gauges.at("g"), 999);
    EXPECT_EQ(rm.journal_failures(), 0u);
  }
  // Closed: the fold of the closed journal has every gauge (a new start
  // would clear them).
  auto closed = LoadState(o.journal_dir);
  ASSERT_TRUE(closed.ok()) << closed.status().ToString();
  ASSERT_TRUE(closed->gauges.contains("g"));
  EXPECT_EQ(closed->gauges.at("g"), 999);
  EXPECT_EQ(closed->status, fb::Phase::Stopped);
  {
    auto db = Reader::Open(o.journal_dir, kAppStream);
    ASSERT_TRUE(db.ok());
    EXPECT_GE((*db)->last_seq(), 1003u);  // Config, Starting, Running, 1000 gauges, Stopped
  }
  {
    RecoveryManager again(o);
    EXPECT_EQ(again.state().restart_count, 0);
  }
  bool recorded = false;
  auto reader = Reader::Open(o.journal_dir, kAppStream);
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)
                  ->Scan({},
                         [&](const Record& r) {
                           if (const fb::Config* c = r.event->payload_as_Config()) {
                             const fb::ConfigEntry* e =
                                 c->entries()->LookupByKey("journal_ring_bytes");
                             recorded = e != nullptr && e->value()->str() == "1048576";
                           }
                           return true;
                         })
                  .ok());
  EXPECT_TRUE(recorded) << "the Config event does not give journal_ring_bytes";

  o.journal_ring_bytes = 1000;  // not a power of two
  o.stream = "odd";
  RecoveryManager odd(o);
  odd.set_gauge("h", 1);
  EXPECT_FALSE(fs::exists(dir_ / "journal" / "odd" / "RING"));
  ASSERT_TRUE(odd.state().gauges.contains("h"));
  EXPECT_EQ(odd.state().gauges.at("h"), 1);
  ASSERT_TRUE(odd.state().last_error.has_value());
  EXPECT_NE(odd.state().last_error->message.find("has no ring"), std::string::npos)
      << odd.state().last_error->message;
}

TEST_F(ManagerTest, SpeaksTheNotifyProtocol) {
  // An abstract socket, as systemd and blackbox-watchdog may use.
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  std::string name = "@bb_notify_test_" + std::to_string(getpid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.c_str() + 1, name.size() - 1);
  ASSERT_EQ(
      bind(fd, reinterpret_cast<sockaddr*>(&addr), offsetof(sockaddr_un, sun_path) + name.size()),
      0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setenv("NOTIFY_SOCKET", name.c_str(), 1);
  setenv("WATCHDOG_USEC", "100000", 1);
  std::vector<std::string> got;
  auto receive_until = [&](std::string_view want) {
    char buf[512];
    while (true) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      got.emplace_back(buf, n);
      if (got.back().find(want) != std::string::npos) return true;
    }
  };
  {
    RecoveryManager rm(Options());
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    EXPECT_TRUE(receive_until("READY=1"));
    EXPECT_TRUE(receive_until("WATCHDOG=1"));  // every 50 ms
    rm.heartbeat();
    rm.graceful_shutdown();
    EXPECT_TRUE(receive_until("STOPPING=1"));
  }
  close(fd);
  bool saw_status = false;
  for (auto& m : got) saw_status = saw_status || m.rfind("STATUS=running", 0) == 0;
  EXPECT_TRUE(saw_status);
}

}  // namespace
}  // namespace blackbox
