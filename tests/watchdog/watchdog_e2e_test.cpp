// End-to-end tests of blackbox-watchdog with real processes: the watchdog
// binary supervises the test_child helper (or /bin/sh scripts), and the tests
// check its exit status, the processes left, and what it journaled.
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "process.h"
#include "temp_dir.h"

namespace {

namespace fb = blackbox::fb;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kWatchdog = BLACKBOX_WATCHDOG_BIN;
const std::string kChild = WATCHDOG_TEST_CHILD_BIN;
const std::string kTool = BLACKBOX_TOOL_BIN;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool WaitFor(const std::function<bool()>& condition, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

// A process is gone once it no longer exists or is a zombie nobody reaped yet.
bool Gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z';
}

// Runs a program with stdout/stderr to files; kills it if the test ends first.
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    auto close_files = [&] {
      for (int fd : {o, e}) {
        if (fd >= 0) ::close(fd);
      }
    };
    try {
      pid_ = blackbox::testing::StartProcess(args, {}, STDIN_FILENO, o, e);
    } catch (...) {
      close_files();
      throw;
    }
    close_files();
  }
  // With `out` (an open descriptor, not closed here) as its stdout.
  Process(const std::vector<std::string>& args, int out, const std::string& err) {
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    try {
      pid_ = blackbox::testing::StartProcess(args, {}, STDIN_FILENO, out, e);
    } catch (...) {
      ::close(e);
      throw;
    }
    ::close(e);
  }
  ~Process() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // The exit status, or nullopt if it still runs after `seconds`.
  std::optional<int> Wait(double seconds) {
    if (status_) return status_;
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(seconds * 1000));
    ::close(fd);
    if (ready <= 0) return std::nullopt;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs `args` with `dir` as its working directory.
std::vector<std::string> InDir(const std::string& dir, const std::vector<std::string>& args) {
  std::vector<std::string> out = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", dir};
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

// One watchdog run inside a fresh directory: journal, state dir, output files.
// The default state directories of named watchdogs go below it too
// ($BLACKBOX_STATE_ROOT, inherited by every process the test starts).
class WatchdogTest : public ::testing::Test {
 protected:
  WatchdogTest() { ::setenv("BLACKBOX_STATE_ROOT", (dir_ / "run").c_str(), 1); }
  ~WatchdogTest() override { ::unsetenv("BLACKBOX_STATE_ROOT"); }
  std::string root() const { return dir_ / "run"; }
  std::string journal() const { return dir_ / "journal"; }
  std::string state() const { return dir_ / "state"; }
  std::string file(std::string_view name) const { return dir_ / name; }

  std::vector<std::string> Args(std::vector<std::string> options,
                                const std::vector<std::string>& command) const {
    std::vector<std::string> args = {kWatchdog, "--journal", journal(), "--state-dir", state()};
    args.insert(args.end(), options.begin(), options.end());
    if (!command.empty()) {
      args.push_back("--");
      args.insert(args.end(), command.begin(), command.end());
    }
    return args;
  }
  std::unique_ptr<Process> Start(std::vector<std::string> options,
                                 const std::vector<std::string>& command,
                                 std::string_view tag = "watchdog") {
    return std::make_unique<Process>(Args(std::move(options), command),
                                     file(std::string(tag) + ".out"),
                                     file(std::string(tag) + ".err"));
  }
  // Runs a short-lived invocation (--status, --stop, a refused start).
  int Run(const std::vector<std::string>& args, std::string* out = nullptr,
          std::string* err = nullptr) {
    Process p(args, file("cmd.out"), file("cmd.err"));
    std::optional<int> status = p.Wait(30);
    if (out != nullptr) *out = ReadFile(file("cmd.out"));
    if (err != nullptr) *err = ReadFile(file("cmd.err"));
    return status.value_or(-1);
  }

  std::vector<std::unique_ptr<fb::EventT>> Events() const {
    std::vector<std::unique_ptr<fb::EventT>> events;
    auto reader = blackbox::Reader::Open(journal(), blackbox::kWatchdogStream);
    if (!reader.ok()) {
      ADD_FAILURE() << reader.status().ToString();
      return events;
    }
    blackbox::Status st = reader.value()->Scan({}, [&](const blackbox::Record& r) {
      events.emplace_back(r.event->UnPack());
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return events;
  }
  template <class T>
  static std::vector<const T*> Payloads(const std::vector<std::unique_ptr<fb::EventT>>& events) {
    std::vector<const T*> out;
    for (const auto& e : events) {
      if (e->payload.type == fb::PayloadTraits<typename T::TableType>::enum_value) {
        out.push_back(static_cast<const T*>(e->payload.value));
      }
    }
    return out;
  }
  static int CountPhase(const std::vector<std::unique_ptr<fb::EventT>>& events, fb::Phase phase,
                        bool with_child = true) {
    int n = 0;
    for (const fb::LifecycleT* l : Payloads<fb::LifecycleT>(events)) {
      if (l->phase == phase && (!with_child || l->child_pid != 0)) ++n;
    }
    return n;
  }

  blackbox::testing::TempDir dir_;
};

TEST_F(WatchdogTest, CrashLoopStopsAfterMaxRestartsWithExactStartCount) {
  auto wd = Start({"--max-restarts", "3", "--restart-delay", "0.05"},
                  {kChild, "count", file("starts"), "1"});
  ASSERT_EQ(wd->Wait(20), 1) << ReadFile(file("watchdog.err"));
  EXPECT_EQ(Lines(file("starts")).size(), 4u);  // the first start + 3 restarts

  auto events = Events();
  EXPECT_EQ(CountPhase(events, fb::Phase::Starting), 4);
  auto restarts = Payloads<fb::RestartT>(events);
  ASSERT_EQ(restarts.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(restarts[i]->attempt, i + 1);
    // A non-zero exit is a failure, not a crash: no signal killed the child.
    EXPECT_EQ(restarts[i]->reason, fb::RestartReason::Failure);
    EXPECT_EQ(restarts[i]->exit_code, 1);
    EXPECT_EQ(restarts[i]->delay_ms, 50);
  }
  // Each restart names the child it started, after its delay too.
  std::vector<int> started;
  for (const fb::LifecycleT* l : Payloads<fb::LifecycleT>(events)) {
    if (l->phase == fb::Phase::Starting && l->child_pid != 0) started.push_back(l->child_pid);
  }
  ASSERT_EQ(started.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(restarts[i]->child_pid, started[i + 1]) << i;
  auto crashes = Payloads<fb::CrashT>(events);
  ASSERT_EQ(crashes.size(), 4u);
  EXPECT_EQ(crashes.back()->origin, fb::CrashOrigin::Watchdog);
  EXPECT_EQ(crashes.back()->exit_code, 1);
  auto last = Payloads<fb::LifecycleT>(events).back();
  EXPECT_EQ(last->phase, fb::Phase::Failed);
  EXPECT_NE(ReadFile(file("watchdog.err")).find("giving up"), std::string::npos);
}

// The journal is written by a thread of its own; a fast crash loop must still
// leave every event in it, in the order the loop took its decisions, once
// --stop has returned.
TEST_F(WatchdogTest, JournalHoldsEveryEventInOrderAfterStop) {
  auto wd = Start({"--max-restarts", "100000", "--restart-delay", "0"},
                  {kChild, "count", file("starts"), "1"});
  // 30 starts take 0.4 s here (1.3 s beside CPU and fsync hogs, under ASan);
  // the wait leaves a loaded machine room. (A child stuck in its exit, its
  // leak checker's tracer killed by the watchdog's sweep, once held the loop
  // for good: KillStragglers, ProcessTree tests.)
  ASSERT_TRUE(WaitFor([&] { return Lines(file("starts")).size() >= 30; }, 45))
      << Lines(file("starts")).size() << " starts; " << ReadFile(file("watchdog.err"));
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  ASSERT_EQ(wd->Wait(10), 0) << ReadFile(file("watchdog.err"));

  // One token per event; the pids of the children in the order they started.
  std::vector<std::string> tokens;
  std::vector<std::string> started;
  for (const auto& e : Events()) {
    const fb::PayloadUnion& p = e->payload;
    if (const fb::LifecycleT* l = p.AsLifecycle()) {
      tokens.push_back(fmt::format("{}:{}", blackbox::PhaseName(l->phase), l->child_pid));
      if (l->phase == fb::Phase::Starting && l->child_pid != 0) {
        started.push_back(std::to_string(l->child_pid));
      }
    } else if (const fb::CrashT* c = p.AsCrash()) {
      tokens.push_back(fmt::format("crash:{}", c->crashed_pid));
    } else if (const fb::RestartT* r = p.AsRestart()) {
      tokens.push_back(fmt::format("restart:{}:{}", r->attempt, r->child_pid));
    } else {
      tokens.push_back(std::string(blackbox::PayloadName(p.type)));
    }
  }
  ASSERT_GE(started.size(), 30u);
  // Every start the children recorded is journaled; the last child may have
  // been stopped before it got to write its pid.
  std::vector<std::string> recorded = Lines(file("starts"));
  EXPECT_TRUE(recorded == started ||
              recorded == std::vector<std::string>(started.begin(), started.end() - 1))
      << recorded.size() << " recorded starts, " << started.size() << " journaled";

  std::vector<std::string> expected = {"config", "starting:0"};
  for (size_t i = 0; i < started.size(); ++i) {
    expected.push_back("starting:" + started[i]);
    expected.push_back("running:" + started[i]);
    if (i + 1 < started.size()) {
      expected.push_back("crash:" + started[i]);
      expected.push_back("backoff:" + started[i]);
      expected.push_back(fmt::format("restart:{}:{}", i + 1, started[i + 1]));
    }
  }
  expected.push_back("stopping:" + started.back());
  expected.push_back("stopped:" + started.back());
  EXPECT_EQ(tokens, expected);
}

// --journal-ring-mb: the watchdog's stream gets an owner-only RING. After a
// kill -9 of the watchdog, every event a reader saw (the database and the
// ring the dead watchdog left) is still there, unchanged and in order, once
// the next watchdog on that journal has started, and `blackbox verify` finds
// nothing wrong.
TEST_F(WatchdogTest, ARingModeJournalKeepsWhatASigkilledWatchdogJournaled) {
  auto wd = Start({"--journal-ring-mb", "1", "--max-restarts", "100000", "--restart-delay", "0"},
                  {kChild, "count", file("starts"), "1"});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("starts")).size() >= 20; }, 45))
      << Lines(file("starts")).size() << " starts; " << ReadFile(file("watchdog.err"));
  const std::string ring = journal() + "/watchdog/RING";
  struct stat st {};
  ASSERT_EQ(::lstat(ring.c_str(), &st), 0) << "no RING with --journal-ring-mb";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, (1 << 20) + 4096);
  ::kill(wd->pid(), SIGKILL);
  ASSERT_TRUE(wd->Wait(10).has_value());

  auto token = [](const fb::EventT& e) {
    std::string t(blackbox::PayloadName(e.payload.type));
    if (const fb::LifecycleT* l = e.payload.AsLifecycle()) {
      t += fmt::format(":{}:{}", blackbox::PhaseName(l->phase), l->child_pid);
    }
    return fmt::format("{}@{}", t, e.time_ns);
  };
  std::vector<std::string> seen;
  int starts = 0;
  for (const auto& e : Events()) {
    seen.push_back(token(*e));
    if (const fb::LifecycleT* l = e->payload.AsLifecycle();
        l != nullptr && l->phase == fb::Phase::Starting && l->child_pid != 0) {
      ++starts;
    }
  }
  EXPECT_GE(starts, 19) << "the crash loop's starts are not in the journal";

  auto again = Start({"--journal-ring-mb", "1"}, {kChild, "sleep", file("pid")}, "again");
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(file("pid")).empty(); }, 20))
      << ReadFile(file("again.err"));
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  ASSERT_EQ(again->Wait(10), 0) << ReadFile(file("again.err"));
  std::vector<std::string> after;
  for (const auto& e : Events()) after.push_back(token(*e));
  ASSERT_GT(after.size(), seen.size());
  EXPECT_EQ(std::vector<std::string>(after.begin(), after.begin() + seen.size()), seen);
  EXPECT_EQ(Run({kTool, "--journal", journal(), "verify"}), 0) << ReadFile(file("cmd.out"));
}

TEST_F(WatchdogTest, RestartWindowForgetsRestartsOfAStableRun) {
  // Each run lasts ~0.3 s, longer than the 0.2 s window: the budget of one
  // restart is never spent, so the loop only ends when the script says so.
  const std::string script =
      "n=$(wc -l < \"$1\" 2>/dev/null || echo 0); echo x >> \"$1\"; "
      "sleep 0.3; [ \"$n\" -ge 3 ] && exit 0; exit 1";
  auto wd = Start({"--max-restarts", "1", "--restart-window", "0.2", "--restart-delay", "0"},
                  {"/bin/sh", "-c", script, "sh", file("runs")});
  ASSERT_EQ(wd->Wait(20), 0) << ReadFile(file("watchdog.err"));
  EXPECT_EQ(Lines(file("runs")).size(), 4u);
  auto events = Events();
  for (const fb::RestartT* r : Payloads<fb::RestartT>(events)) EXPECT_EQ(r->attempt, 1);
}

TEST_F(WatchdogTest, HangDetectedWhenSystemdNotifyHeartbeatsStop) {
  // Five heartbeats from systemd-notify (its own process, in the child's
  // group), then silence.
  const std::string script =
      "echo $$ >> \"$1\"; for i in 1 2 3 4 5; do systemd-notify WATCHDOG=1 || exit 9; "
      "sleep 0.1; done; sleep 60";
  auto wd = Start({"--watchdog-timeout", "0.5", "--stop-timeout", "0.5", "--max-restarts", "1",
                   "--restart-delay", "0.05"},
                  {"/bin/sh", "-c", script, "sh", file("starts")});
  ASSERT_EQ(wd->Wait(20), 1) << ReadFile(file("watchdog.err"));
  EXPECT_EQ(Lines(file("starts")).size(), 2u);

  auto events = Events();
  // The heartbeats were heard: the first one marked the child running.
  EXPECT_EQ(CountPhase(events, fb::Phase::Running), 2);
  auto limits = Payloads<fb::LimitT>(events);
  ASSERT_FALSE(limits.empty());
  EXPECT_EQ(limits.front()->kind, fb::LimitKind::Heartbeat);
  EXPECT_EQ(limits.front()->action, fb::LimitAction::Abort);
  EXPECT_GE(limits.front()->value, 500);
  auto restarts = Payloads<fb::RestartT>(events);
  ASSERT_EQ(restarts.size(), 1u);
  EXPECT_EQ(restarts[0]->reason, fb::RestartReason::Hang);
  EXPECT_EQ(restarts[0]->signal, SIGABRT);
  auto crashes = Payloads<fb::CrashT>(events);
  ASSERT_FALSE(crashes.empty());
  EXPECT_EQ(crashes[0]->signal, SIGABRT);
  EXPECT_EQ(crashes[0]->signal_name, "SIGABRT");

  // Hung only after the heartbeats stopped: ~0.5 s of beats + 0.5 s timeout.
  int64_t start_ns = 0, abort_ns = 0;
  for (const auto& e : events) {
    if (e->payload.type == fb::Payload::Lifecycle && start_ns == 0 &&
        e->payload.AsLifecycle()->phase == fb::Phase::Starting &&
        e->payload.AsLifecycle()->child_pid != 0) {
      start_ns = e->time_ns;
    }
    if (e->payload.type == fb::Payload::Limit && abort_ns == 0) abort_ns = e->time_ns;
  }
  EXPECT_GE(abort_ns - start_ns, 900'000'000);
}

// A child leaking at a steady rate is forecast before its limit stops it:
// at least three samples before, and with a projected time within 25 % of
// when the limit was really reached (the first sample over it).
TEST_F(WatchdogTest, ASteadyLeakIsForecastBeforeTheLimitStopsIt) {
  auto wd = Start({"--max-memory", "160", "--max-cpu", "1000", "--health-check-interval", "0.1",
                   "--limit-cycles", "2", "--stop-timeout", "1", "--max-restarts", "0"},
                  {kChild, "leak", "20", file("starts")});
  ASSERT_EQ(wd->Wait(60), 1) << ReadFile(file("watchdog.err"));

  auto events = Events();
  const fb::EventT* forecast = nullptr;
  const fb::EventT* over = nullptr;  // the first sample over the limit
  int samples_between = 0;
  for (const auto& e : events) {
    if (const fb::ForecastT* f = e->payload.AsForecast(); f && !f->cleared && !forecast) {
      forecast = e.get();
    }
    if (const fb::LimitT* l = e->payload.AsLimit();
        l && l->kind == fb::LimitKind::Memory && !over) {
      over = e.get();
    }
    if (e->payload.AsHealth() && forecast && !over) ++samples_between;
  }
  ASSERT_NE(forecast, nullptr) << "no forecast before the limit";
  ASSERT_NE(over, nullptr);
  EXPECT_LT(forecast->time_ns, over->time_ns);
  EXPECT_GE(samples_between, 3);
  const fb::ForecastT* f = forecast->payload.AsForecast();
  const double projected = f->seconds_to_limit;
  const double real = static_cast<double>(over->time_ns - forecast->time_ns) / 1e9;
  EXPECT_NEAR(projected, real, real * 0.25) << f->message;
  EXPECT_NE(f->message.find("reaches the 160 MB limit"), std::string::npos) << f->message;
  EXPECT_EQ(f->child_pid, std::stoi(Lines(file("starts")).at(0)));
}

TEST_F(WatchdogTest, MemoryHogIsRestartedWithReasonMemory) {
  // --max-cpu out of reach: touching the pages takes a full core for a moment.
  auto wd = Start({"--max-memory", "64", "--max-cpu", "1000", "--health-check-interval", "0.05",
                   "--limit-cycles", "2", "--stop-timeout", "1", "--max-restarts", "1",
                   "--restart-delay", "0.05"},
                  {kChild, "hog", "128", file("starts")});
  ASSERT_EQ(wd->Wait(20), 1) << ReadFile(file("watchdog.err"));
  EXPECT_EQ(Lines(file("starts")).size(), 2u);

  auto events = Events();
  auto restarts = Payloads<fb::RestartT>(events);
  ASSERT_EQ(restarts.size(), 1u);
  EXPECT_EQ(restarts[0]->reason, fb::RestartReason::Memory);
  EXPECT_EQ(restarts[0]->signal, SIGTERM);  // stopped gracefully
  int warns = 0, stops = 0;
  for (const fb::LimitT* l : Payloads<fb::LimitT>(events)) {
    EXPECT_EQ(l->kind, fb::LimitKind::Memory);
    EXPECT_GT(l->value, 64);
    if (l->action == fb::LimitAction::Warn) ++warns;
    if (l->action == fb::LimitAction::Stop) {
      ++stops;
      EXPECT_EQ(l->consecutive, 2);
    }
  }
  EXPECT_EQ(stops, 2);  // one per run
  EXPECT_GE(warns, 2);
  // A stop the watchdog ordered is not a crash.
  EXPECT_TRUE(Payloads<fb::CrashT>(events).empty());
  bool sampled = false;
  for (const fb::HealthT* h : Payloads<fb::HealthT>(events)) sampled |= h->rss_bytes > (64u << 20);
  EXPECT_TRUE(sampled);
}

TEST_F(WatchdogTest, StopEscalatesToSigkillForChildIgnoringSigterm) {
  auto wd = Start({"--stop-timeout", "0.3"}, {kChild, "ignore-term", file("pid")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10));
  const pid_t child = std::stoi(Lines(file("pid"))[0]);

  std::string out;
  const auto before = Clock::now();
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}, &out), 0) << out;
  const double took = std::chrono::duration<double>(Clock::now() - before).count();
  EXPECT_GE(took, 0.3);
  EXPECT_NE(out.find("stopped watchdog"), std::string::npos) << out;
  EXPECT_NE(out.find("signal 9"), std::string::npos) << out;
  EXPECT_EQ(wd->Wait(5), 0);
  EXPECT_TRUE(Gone(child));

  auto events = Events();
  auto lifecycle = Payloads<fb::LifecycleT>(events);
  ASSERT_FALSE(lifecycle.empty());
  EXPECT_EQ(lifecycle.back()->phase, fb::Phase::Stopped);
  EXPECT_EQ(lifecycle.back()->signal, SIGKILL);
  EXPECT_EQ(lifecycle.back()->child_pid, child);
}

TEST_F(WatchdogTest, StopOfAPoliteChildIsGracefulAndFast) {
  auto wd = Start({"--stop-timeout", "10"}, {kChild, "sleep", file("pid")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10));
  const auto before = Clock::now();
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - before).count(), 5);
  EXPECT_EQ(wd->Wait(5), 0);
  auto events = Events();
  auto lifecycle = Payloads<fb::LifecycleT>(events);
  EXPECT_EQ(lifecycle.back()->phase, fb::Phase::Stopped);
  EXPECT_EQ(lifecycle.back()->signal, SIGTERM);
}

TEST_F(WatchdogTest, FloodingChildDoesNotBlockHeartbeatsOrExit) {
  // 256 MB of output while the child must beat every 0.5 s: a loop stuck on
  // the pipe would miss the heartbeats and journal a hang.
  auto wd = Start({"--watchdog-timeout", "0.5", "--max-restarts", "0"}, {kChild, "flood", "256"});
  ASSERT_EQ(wd->Wait(60), 0) << ReadFile(file("watchdog.err"));
  auto events = Events();
  EXPECT_TRUE(Payloads<fb::LimitT>(events).empty());
  auto lifecycle = Payloads<fb::LifecycleT>(events);
  EXPECT_EQ(lifecycle.back()->phase, fb::Phase::Stopped);
  EXPECT_EQ(lifecycle.back()->exit_code, 0);
  // Every byte is written, or (when the file fell behind the child for longer
  // than the watchdog's queue lasts) dropped and counted.
  uint64_t dropped = 0;
  for (const fb::LogLineT* l : Payloads<fb::LogLineT>(events)) dropped += l->dropped_bytes;
  EXPECT_EQ(fs::file_size(file("watchdog.out")) + dropped, 256u << 20);
}

// The watchdog's stdout is a pipe whose reader never reads (a stuck terminal,
// a stalled log shipper) and the child writes without pause: the watchdog
// must go on supervising. A SIGKILLed child is restarted and journaled at
// once, --stop returns at once, and the output that could not be passed on is
// dropped and its size journaled.
TEST_F(WatchdogTest, UnreadStdoutDelaysNeitherRestartNorStop) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } reader{pipe_fds[0]};
  auto wd = std::make_unique<Process>(
      Args({"--restart-delay", "0", "--max-restarts", "5", "--stop-timeout", "2"},
           {kChild, "chatty", file("pids")}),
      pipe_fds[1], file("watchdog.err"));
  ::close(pipe_fds[1]);
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10))
      << ReadFile(file("watchdog.err"));
  // The pipe is full (what it holds stops growing; not always 64 KiB, as
  // pages are not all filled): from here on nothing written to it goes out.
  int pending = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        int now = 0;
        if (::ioctl(pipe_fds[0], FIONREAD, &now) != 0) return false;
        const bool full = now > 0 && now == pending;
        pending = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return full;
      },
      10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  const pid_t first = std::stoi(Lines(file("pids"))[0]);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return Lines(file("pids")).size() >= 2; }, 5))
      << "no restart while the watchdog's stdout is not read";

  const auto before = Clock::now();
  EXPECT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - before).count(), 5);
  ASSERT_EQ(wd->Wait(5), 0) << ReadFile(file("watchdog.err"));

  auto events = Events();
  auto restarts = Payloads<fb::RestartT>(events);
  ASSERT_GE(restarts.size(), 1u);
  EXPECT_EQ(restarts[0]->reason, fb::RestartReason::Crash);
  EXPECT_EQ(restarts[0]->signal, SIGKILL);
  auto crashes = Payloads<fb::CrashT>(events);
  ASSERT_GE(crashes.size(), 1u);
  EXPECT_EQ(crashes[0]->crashed_pid, first);
  uint64_t dropped = 0;
  for (const fb::LogLineT* l : Payloads<fb::LogLineT>(events)) {
    if (l->source == "stdout") dropped += l->dropped_bytes;
  }
  // The child wrote far more than the pipe and the watchdog's queue hold.
  EXPECT_GT(dropped, 1u << 20);
}

bool HasLifecycleReason(const std::vector<const fb::LifecycleT*>& lifecycle,
                        std::string_view text) {
  return std::any_of(lifecycle.begin(), lifecycle.end(), [&](const fb::LifecycleT* l) {
    return l->reason.find(text) != std::string::npos;
  });
}

double GaugeValue(const std::vector<const fb::GaugeT*>& gauges, std::string_view name) {
  double value = 0;
  for (const fb::GaugeT* g : gauges) {
    if (g->name == name) value = g->value;
  }
  return value;
}

// stdout and stderr are one pipe nobody reads (2>&1 into a stalled shipper):
// the message that the restart budget is spent does not hold up the exit.
TEST_F(WatchdogTest, UnreadStderrDoesNotHoldUpTheExit) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } reader{pipe_fds[0]};
  const pid_t pid = blackbox::testing::StartProcess(
      Args({"--max-restarts", "0"}, {kChild, "chatty", file("pids")}), {}, STDIN_FILENO,
      pipe_fds[1], pipe_fds[1]);
  ::close(pipe_fds[1]);
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the pipe fills
  ASSERT_EQ(::kill(std::stoi(Lines(file("pids"))[0]), SIGKILL), 0);
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  pollfd p{fd, POLLIN, 0};
  const int exited = ::poll(&p, 1, 5000);
  ::close(fd);
  int status = 0;
  if (exited <= 0) ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  ASSERT_EQ(exited, 1) << "the watchdog did not exit while its stderr was not read";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  auto events = Events();
  auto lifecycle = Payloads<fb::LifecycleT>(events);
  ASSERT_FALSE(lifecycle.empty());
  EXPECT_EQ(lifecycle.back()->phase, fb::Phase::Failed);
}

// A datagram whose sender has exited before the watchdog read it cannot be
// traced to the child's group: it is dropped and counted. The watchdog is
// held (SIGSTOP) while a short-lived process of the group sends and exits.
TEST_F(WatchdogTest, NotifyFromASenderThatHasExitedIsDropped) {
  const std::string script =
      "echo $$ > \"$1\"; while [ ! -e \"$2\" ]; do sleep 0.01; done; "
      "\"$3\" notify STATUS=forged; touch \"$4\"; exec sleep 60";
  auto wd = Start({"--health-check-interval", "0.1"},
                  {"/bin/sh", "-c", script, "sh", file("pid"), file("go"), kChild, file("sent")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10));
  ASSERT_EQ(::kill(wd->pid(), SIGSTOP), 0);
  blackbox::testing::WriteFile(file("go"), "");
  const bool sent = WaitFor([&] { return fs::exists(file("sent")); }, 10);
  ::kill(wd->pid(), SIGCONT);
  ASSERT_TRUE(sent);
  // Health samples every 0.1 s journal the count of dropped datagrams.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  ASSERT_EQ(wd->Wait(10), 0);
  auto events = Events();
  EXPECT_FALSE(HasLifecycleReason(Payloads<fb::LifecycleT>(events), "forged"));
  EXPECT_EQ(GaugeValue(Payloads<fb::GaugeT>(events), "notify_datagrams_dropped"), 1);
}

// --notify-access main: only the child's main process is heard.
TEST_F(WatchdogTest, NotifyAccessMainHearsOnlyTheMainProcess) {
  const std::string script =
      "\"$1\" notify STATUS=from-group stay & sleep 0.3; exec \"$1\" notify STATUS=from-main stay";
  auto wd = Start({"--notify-access", "main", "--health-check-interval", "0.1"},
                  {"/bin/sh", "-c", script, "sh", kChild});
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  ASSERT_EQ(wd->Wait(10), 0);
  auto events = Events();
  auto lifecycle = Payloads<fb::LifecycleT>(events);
  EXPECT_TRUE(HasLifecycleReason(lifecycle, "from-main"));
  EXPECT_FALSE(HasLifecycleReason(lifecycle, "from-group"));
  EXPECT_EQ(GaugeValue(Payloads<fb::GaugeT>(events), "notify_datagrams_dropped"), 1);
}

// STOPPING=1 turns the heartbeat off, but not for good: a service still
// running --stop-timeout after it is hung, and is stopped and restarted.
TEST_F(WatchdogTest, StoppingThatNeverEndsIsAHang) {
  const std::string script = "echo $$ >> \"$1\"; \"$2\" notify STOPPING=1 stay & exec sleep 60";
  auto wd = Start({"--stop-timeout", "0.5", "--max-restarts", "1", "--restart-delay", "0.05"},
                  {"/bin/sh", "-c", script, "sh", file("starts"), kChild});
  ASSERT_EQ(wd->Wait(15), 1) << ReadFile(file("watchdog.err"));
  EXPECT_EQ(Lines(file("starts")).size(), 2u);
  auto events = Events();
  auto restarts = Payloads<fb::RestartT>(events);
  ASSERT_EQ(restarts.size(), 1u);
  EXPECT_EQ(restarts[0]->reason, fb::RestartReason::Hang);
  EXPECT_EQ(restarts[0]->signal, SIGABRT);
  EXPECT_TRUE(HasLifecycleReason(Payloads<fb::LifecycleT>(events), "after STOPPING=1"));
  auto limits = Payloads<fb::LimitT>(events);
  ASSERT_FALSE(limits.empty());
  EXPECT_EQ(limits[0]->limit, 500);
  EXPECT_GE(limits[0]->value, 500);
}

// A grandchild that calls setsid() leaves the child's process group and
// session; it is still killed when the child ends (on restart and at the end).
TEST_F(WatchdogTest, GrandchildThatCallsSetsidIsKilledWithTheChild) {
  const std::string script = "setsid \"$1\" sleep \"$2\" & sleep 0.3; exit 1";
  auto wd = Start({"--max-restarts", "1", "--restart-delay", "0.05"},
                  {"/bin/sh", "-c", script, "sh", kChild, file("escaped")});
  ASSERT_EQ(wd->Wait(15), 1) << ReadFile(file("watchdog.err"));
  std::vector<pid_t> escaped;
  for (const std::string& line : Lines(file("escaped"))) escaped.push_back(std::stoi(line));
  ASSERT_EQ(escaped.size(), 2u);
  auto left = [&] {
    return std::count_if(escaped.begin(), escaped.end(), [](pid_t p) { return !Gone(p); });
  };
  WaitFor([&] { return left() == 0; }, 5);
  EXPECT_EQ(left(), 0) << "processes that left the child's group survived it";
  for (pid_t p : escaped) {
    if (!Gone(p)) ::kill(p, SIGKILL);
  }
}

// --log-file: the output is written by the sink's thread and the file is
// rotated by size; no file grows past the limit and no byte goes missing
// (each is in a file or counted as dropped).
TEST_F(WatchdogTest, LogFileIsRotatedBySizeAndKeepsEveryByte) {
  auto wd = Start({"--log-file", file("app.log"), "--log-max-mb", "1", "--max-restarts", "0"},
                  {kChild, "flood", "3"});
  ASSERT_EQ(wd->Wait(30), 0) << ReadFile(file("watchdog.err"));
  uint64_t total = 0;
  for (const std::string name : {"app.log", "app.log.1", "app.log.2", "app.log.3"}) {
    std::error_code ec;
    const uint64_t size = fs::file_size(file(name), ec);
    if (ec) continue;
    EXPECT_LE(size, 1u << 20) << name;
    total += size;
  }
  uint64_t dropped = 0;
  auto events = Events();
  for (const fb::LogLineT* l : Payloads<fb::LogLineT>(events)) dropped += l->dropped_bytes;
  EXPECT_EQ(total + dropped, 3u << 20);
  // What reached the file was rotated at every MB (a loaded machine may have
  // dropped some of the flood: the child is never held up for its log).
  EXPECT_TRUE(fs::exists(file("app.log.1")));
  if (total > (2u << 20)) {
    EXPECT_TRUE(fs::exists(file("app.log.2"))) << total;
  }
  EXPECT_EQ(fs::file_size(file("watchdog.out")), 0u);
}

// How many times the kernel has scheduled thread `tid` of `pid` to run (the
// third field of schedstat); nullopt when it cannot be read.
std::optional<uint64_t> TimesScheduled(pid_t pid, pid_t tid) {
  std::ifstream in(fmt::format("/proc/{}/task/{}/schedstat", pid, tid));
  uint64_t on_cpu_ns = 0, waiting_ns = 0, runs = 0;
  if (!(in >> on_cpu_ns >> waiting_ns >> runs)) return std::nullopt;
  return runs;
}

std::optional<pid_t> ThreadNamed(pid_t pid, std::string_view name) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::string comm = ReadFile(entry.path().string() + "/comm");
    if (comm == std::string(name) + "\n") return std::stoi(entry.path().filename().string());
  }
  return std::nullopt;
}

// Nothing polls: between two health checks, with no heartbeat timeout, the
// event loop and the journal writer are not scheduled at all.
TEST_F(WatchdogTest, IdleWatchdogSleepsBetweenHealthChecks) {
  auto wd = Start({"--health-check-interval", "30"}, {kChild, "sleep", file("pid")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10));
  std::optional<pid_t> writer;
  ASSERT_TRUE(
      WaitFor([&] { return (writer = ThreadNamed(wd->pid(), "bb-wd-journal")).has_value(); }, 5));
  // Let the start-up events reach the journal and the loop go back to sleep.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto loop_before = TimesScheduled(wd->pid(), wd->pid());
  const auto writer_before = TimesScheduled(wd->pid(), *writer);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto loop_after = TimesScheduled(wd->pid(), wd->pid());
  const auto writer_after = TimesScheduled(wd->pid(), *writer);
  ASSERT_TRUE(loop_before && loop_after && writer_before && writer_after);
  EXPECT_EQ(*loop_after, *loop_before) << "the event loop woke up while idle";
  EXPECT_EQ(*writer_after, *writer_before) << "the journal writer woke up while idle";
}

TEST_F(WatchdogTest, StatusJsonDescribesTheRunningChild) {
  auto wd = Start({}, {kChild, "sleep", file("pid")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10));
  const pid_t child = std::stoi(Lines(file("pid"))[0]);

  // The journal is written by the watchdog's writer thread, a moment after
  // the child started: --status may see "starting" first.
  std::string out, err;
  nlohmann::json status;
  ASSERT_TRUE(WaitFor(
      [&] {
        if (Run({kWatchdog, "--status", "--json", "--state-dir", state()}, &out, &err) != 0) {
          return false;
        }
        status = nlohmann::json::parse(out);
        return status["phase"] == "running";
      },
      10))
      << out << err;
  EXPECT_EQ(status["watchdog_pid"], wd->pid());
  EXPECT_EQ(status["child_pid"], child);
  EXPECT_EQ(status["phase"], "running");
  // One name for the watchdog's phase, as in `blackbox state --json`.
  EXPECT_FALSE(status.contains("state")) << status.dump();
  EXPECT_TRUE(status["phase_since"].is_string()) << status.dump();
  EXPECT_EQ(status["journal_phase"], "running");
  EXPECT_EQ(status["restart_count"], 0);
  EXPECT_EQ(status["watchdog_running"], true);
  EXPECT_GT(status["child_rss_bytes"].get<uint64_t>(), 0u);

  ASSERT_EQ(Run({kWatchdog, "--status", "--state-dir", state()}, &out), 0);
  EXPECT_NE(out.find("running"), std::string::npos) << out;

  ::kill(wd->pid(), SIGTERM);
  ASSERT_EQ(wd->Wait(10), 0);
  ASSERT_EQ(Run({kWatchdog, "--status", "--json", "--state-dir", state()}, &out), 3);
  status = nlohmann::json::parse(out);
  EXPECT_EQ(status["phase"], "stopped");
  EXPECT_EQ(status["watchdog_running"], false);
  EXPECT_EQ(status["child_pid"], 0);
  // A child stopped on request was never restarted: no restart reason.
  ASSERT_EQ(Run({kWatchdog, "--status", "--state-dir", state()}, &out), 3);
  EXPECT_NE(out.find("last exit   killed by SIGTERM"), std::string::npos) << out;
  EXPECT_EQ(out.find("crash"), std::string::npos) << out;
}

TEST_F(WatchdogTest, SecondInstanceOnTheSameStateDirIsRefused) {
  auto wd = Start({}, {kChild, "sleep", file("pid")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10));
  std::string err;
  EXPECT_EQ(Run(Args({}, {kChild, "sleep", file("pid2")}), nullptr, &err), 3);
  EXPECT_NE(err.find("another watchdog (pid " + std::to_string(wd->pid()) + ")"), std::string::npos)
      << err;
  EXPECT_FALSE(fs::exists(file("pid2")));
}

TEST_F(WatchdogTest, StalePidFileOfAKilledWatchdogIsTakenOver) {
  {
    auto wd = Start({}, {kChild, "sleep", file("pid")});
    ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10));
    ::kill(wd->pid(), SIGKILL);
    wd->Wait(5);
  }
  auto wd = Start({}, {kChild, "sleep", file("pid")}, "second");
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 2; }, 10))
      << ReadFile(file("second.err"));
  EXPECT_EQ(std::stoi(ReadFile(state() + "/watchdog.pid")), wd->pid());
}

TEST_F(WatchdogTest, SigkilledWatchdogLeavesNoProcessBehind) {
  // A shell with a background grandchild: PR_SET_PDEATHSIG alone would only
  // reach the shell.
  auto wd =
      Start({}, {"/bin/sh", "-c", "sleep 300 & echo $$ $! > \"$1\"; wait", "sh", file("pids")});
  ASSERT_TRUE(WaitFor([&] { return ReadFile(file("pids")).find(' ') != std::string::npos; }, 10));
  pid_t shell = 0, grandchild = 0;
  std::istringstream(ReadFile(file("pids"))) >> shell >> grandchild;
  ASSERT_GT(grandchild, 0);
  EXPECT_FALSE(Gone(shell));
  EXPECT_FALSE(Gone(grandchild));

  ::kill(wd->pid(), SIGKILL);
  wd->Wait(5);
  EXPECT_TRUE(WaitFor([&] { return Gone(shell) && Gone(grandchild); }, 5));
}

TEST_F(WatchdogTest, ArgumentsReachTheChildIntact) {
  const std::vector<std::string> args = {"two words",   "it's", "a;b", "\"quoted\"",     "$HOME",
                                         "back\\slash", "",     "*",   "--not-an-option"};
  std::vector<std::string> command = {kChild, "argv", file("argv")};
  command.insert(command.end(), args.begin(), args.end());
  auto wd = Start({}, command);
  ASSERT_EQ(wd->Wait(10), 0) << ReadFile(file("watchdog.err"));
  std::string expected;
  for (const std::string& a : args) expected += a + '\0';
  EXPECT_EQ(ReadFile(file("argv")), expected);
}

TEST_F(WatchdogTest, ChildSeesTheNotifyEnvironment) {
  auto wd = Start({"--watchdog-timeout", "5"},
                  {"/bin/sh", "-c",
                   "echo \"$NOTIFY_SOCKET|$WATCHDOG_USEC|$WATCHDOG_PID|$$|$BLACKBOX_JOURNAL\" > "
                   "\"$1\"",
                   "sh", file("env")});
  ASSERT_EQ(wd->Wait(10), 0);
  std::string env = ReadFile(file("env"));
  std::vector<std::string> parts;
  std::istringstream in(env.substr(0, env.size() - 1));
  for (std::string part; std::getline(in, part, '|');) parts.push_back(part);
  ASSERT_EQ(parts.size(), 5u) << env;
  EXPECT_EQ(parts[0], fs::absolute(state()).string() + "/notify.sock");
  EXPECT_EQ(parts[1], "5000000");
  EXPECT_EQ(parts[2], parts[3]);
  EXPECT_EQ(parts[4], journal());
}

TEST_F(WatchdogTest, CleanExitEndsTheWatchdogUnlessRestartAlways) {
  auto once = Start({}, {kChild, "count", file("once"), "0"});
  ASSERT_EQ(once->Wait(10), 0);
  EXPECT_EQ(Lines(file("once")).size(), 1u);

  auto always = Start({"--restart", "always", "--restart-delay", "0", "--max-restarts", "2"},
                      {kChild, "count", file("always"), "0"}, "always");
  ASSERT_EQ(always->Wait(10), 1);
  EXPECT_EQ(Lines(file("always")).size(), 3u);
  auto events = Events();
  for (const fb::RestartT* r : Payloads<fb::RestartT>(events)) {
    EXPECT_EQ(r->reason, fb::RestartReason::Exit);
  }
}

TEST_F(WatchdogTest, MatchedOutputLinesAreJournaledWithRateLimit) {
  const std::string script =
      "echo 'all good'; echo 'ERROR: disk on fire' >&2; i=0; "
      "while [ $i -lt 50 ]; do echo \"FATAL $i\"; i=$((i+1)); done";
  auto wd = Start({}, {"/bin/sh", "-c", script});
  ASSERT_EQ(wd->Wait(10), 0);
  auto events = Events();
  auto lines = Payloads<fb::LogLineT>(events);
  ASSERT_GE(lines.size(), 2u);
  // stdout and stderr are separate pipes: no order between them.
  auto error = std::find_if(lines.begin(), lines.end(),
                            [](const fb::LogLineT* l) { return l->source == "stderr"; });
  ASSERT_NE(error, lines.end());
  EXPECT_EQ((*error)->text, "ERROR: disk on fire");
  EXPECT_EQ((*error)->pattern, "ERROR|CRITICAL|FATAL");
  uint32_t reported = 0, suppressed = 0;
  for (const fb::LogLineT* l : lines) {
    if (!l->text.empty()) ++reported;
    suppressed += l->suppressed;
  }
  EXPECT_LT(reported, 51u);
  EXPECT_EQ(reported + suppressed, 51u);
  EXPECT_EQ(ReadFile(file("watchdog.out")).substr(0, 9), "all good\n");
}

TEST_F(WatchdogTest, SavedConfigurationIsReloadedAndOverridable) {
  auto first = Start({"--max-restarts", "1", "--restart-delay", "0.05"},
                     {kChild, "count", file("starts"), "1"});
  ASSERT_EQ(first->Wait(10), 1);
  EXPECT_EQ(Lines(file("starts")).size(), 2u);
  struct stat st {};
  ASSERT_EQ(::stat((state() + "/watchdog.toml").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // Same command and restart budget from the saved file; one value overridden.
  auto second = Start({"--restart-delay", "0"}, {}, "second");
  ASSERT_EQ(second->Wait(10), 1) << ReadFile(file("second.err"));
  EXPECT_EQ(Lines(file("starts")).size(), 4u);
  auto events = Events();
  auto restarts = Payloads<fb::RestartT>(events);
  ASSERT_EQ(restarts.size(), 2u);
  EXPECT_EQ(restarts[1]->delay_ms, 0);
}

TEST_F(WatchdogTest, VersionIsPrinted) {
  std::string out;
  EXPECT_EQ(Run({kWatchdog, "--version"}, &out), 0);
  EXPECT_EQ(out.rfind("blackbox-watchdog ", 0), 0u) << out;
}

// A start that failed before its child ran saves nothing: the next start in
// the same state directory is not made to fail the same way.
TEST_F(WatchdogTest, FailedStartDoesNotPoisonItsStateDirectory) {
  std::string err;
  EXPECT_NE(Run(Args({"--log-file", "/nonexistent/dir/log"}, {"/bin/true"}), nullptr, &err), 0);
  EXPECT_NE(err.find("--log-file"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(state() + "/watchdog.toml"));
  EXPECT_EQ(Run(Args({}, {"/bin/true"}), nullptr, &err), 0) << err;
}

// A saved value that has gone bad since is named as the saved file's.
TEST_F(WatchdogTest, AnErrorFromTheSavedConfigurationSaysSo) {
  std::filesystem::create_directory(file("logs"));
  std::string err;
  ASSERT_EQ(Run(Args({"--log-file", file("logs") + "/child.log"}, {"/bin/true"}), nullptr, &err), 0)
      << err;
  ASSERT_TRUE(std::filesystem::exists(state() + "/watchdog.toml"));
  std::filesystem::remove_all(file("logs"));
  EXPECT_NE(Run(Args({}, {}), nullptr, &err), 0);
  EXPECT_NE(err.find("--log-file"), std::string::npos) << err;
  EXPECT_NE(err.find("watchdog.toml"), std::string::npos) << err;
}

TEST_F(WatchdogTest, ConfigFileValuesLoseToTheCommandLine) {
  std::ofstream(file("wd.toml")) << "max_restarts = 5\nrestart_delay = 0.01\n"
                                 << "app_script = \"" << kChild << "\"\n";
  auto wd = Start({"--config", file("wd.toml"), "--max-restarts", "1"}, {});
  ASSERT_EQ(wd->Wait(10), 1);
  auto events = Events();
  EXPECT_EQ(Payloads<fb::RestartT>(events).size(), 1u);
}

TEST_F(WatchdogTest, BadValuesExitWithStatus2AndNameTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string names;
  };
  const std::vector<Case> cases = {
      {{"--restart-delay", "soon"}, "--restart-delay"},
      {{"--max-restarts", "-1"}, "--max-restarts"},
      {{"--health-check-interval", "0"}, "--health-check-interval"},
      {{"--restart", "sometimes"}, "--restart"},
      {{"--max-memory", "lots"}, "--max-memory"},
      {{"--error-pattern", "(unclosed"}, "--error-pattern"},
      {{"--watchdog-timeout", "nan"}, "--watchdog-timeout"},
      {{"--no-such-option"}, "--no-such-option"},
      {{"--notify-access", "some"}, "--notify-access"},
      {{"--journal-ring-mb", "3"}, "--journal-ring-mb"},
      {{"--journal-ring-mb", "2048"}, "--journal-ring-mb"},
  };
  for (const Case& c : cases) {
    std::string err;
    EXPECT_EQ(Run(Args(c.args, {"/bin/true"}), nullptr, &err), 2) << c.names;
    EXPECT_NE(err.find(c.names), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  std::string err;
  EXPECT_EQ(Run(Args({}, {file("missing-program")}), nullptr, &err), 2);
  EXPECT_NE(err.find("not found"), std::string::npos) << err;
}

// Without --state-dir a watchdog's state directory is ROOT/NAME, NAME the
// program's base name unless --name says otherwise: --status and --stop from
// another working directory find it by name. --state-dir still wins.
TEST_F(WatchdogTest, DefaultStateDirectoryIsFoundByNameFromAnyDirectory) {
  fs::create_directory(file("a"));
  fs::create_directory(file("b"));
  auto wd =
      std::make_unique<Process>(InDir(file("a"), {kWatchdog, "--", kChild, "sleep", file("pid")}),
                                file("wd.out"), file("wd.err"));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid")).size() == 1; }, 10))
      << ReadFile(file("wd.err"));
  const std::string dir = root() + "/watchdog_test_child";
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0) << ReadFile(file("wd.err"));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(root().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(fs::exists(file("a") + "/blackbox-watchdog"));

  std::string out, err;
  ASSERT_TRUE(WaitFor(
      [&] {
        return Run(InDir(file("b"),
                         {kWatchdog, "--status", "--json", "--name", "watchdog_test_child"}),
                   &out, &err) == 0 &&
               nlohmann::json::parse(out)["phase"] == "running";
      },
      10))
      << out << err;
  nlohmann::json status = nlohmann::json::parse(out);
  EXPECT_EQ(status["watchdog_pid"], wd->pid());
  // The journal is where it always was: under the start's working directory.
  EXPECT_EQ(status["journal"], file("a") + "/blackbox-journal");

  // A second watchdog of another name runs beside it; --state-dir still wins.
  auto named =
      std::make_unique<Process>(InDir(file("a"), {kWatchdog, "--name", "other", "--journal",
                                                  journal(), "--", kChild, "sleep", file("pid2")}),
                                file("named.out"), file("named.err"));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid2")).size() == 1; }, 10))
      << ReadFile(file("named.err"));
  EXPECT_TRUE(fs::exists(root() + "/other/watchdog.pid"));
  EXPECT_EQ(Run(InDir(file("b"), {kWatchdog, "--stop", "--name", "other"}), &out, &err), 0) << err;
  EXPECT_EQ(named->Wait(10), 0);
  EXPECT_EQ(
      Run(InDir(file("b"), {kWatchdog, "--stop", "--name", "watchdog_test_child"}), &out, &err), 0)
      << err;
  EXPECT_EQ(wd->Wait(10), 0);

  auto explicit_dir = Start({"--name", "x"}, {"/bin/true"}, "explicit");
  EXPECT_EQ(explicit_dir->Wait(10), 0) << ReadFile(file("explicit.err"));
  EXPECT_TRUE(fs::exists(state() + "/watchdog.pid"));
  EXPECT_FALSE(fs::exists(root() + "/x"));
}

// The root of the default state directories passes the same trust checks as
// a state directory: one writable by others (made by someone else in /tmp) is
// refused, never used.
TEST_F(WatchdogTest, DefaultStateRootWritableByOthersIsRefused) {
  ASSERT_TRUE(fs::create_directory(root()));
  ASSERT_EQ(::chmod(root().c_str(), 0777), 0);
  std::string err;
  EXPECT_EQ(Run({kWatchdog, "--journal", journal(), "--", "/bin/true"}, nullptr, &err), 2);
  EXPECT_NE(err.find(root()), std::string::npos) << err;
  EXPECT_NE(err.find("writable by other users"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(root() + "/true"));
}

TEST_F(WatchdogTest, BadNameIsRefused) {
  for (const std::string bad : {"../x", ".hidden", "a b", ""}) {
    std::string err;
    EXPECT_EQ(Run({kWatchdog, "--name", bad, "--", "/bin/true"}, nullptr, &err), 2) << bad;
    EXPECT_NE(err.find("--name"), std::string::npos) << err;
  }
}

// `--status` without a name lists every watchdog of the user, one line each,
// wherever each was started; --json makes it a list. `--status NAME` is the
// full block with the last events; `--stop NAME` stops that one, and a bare
// `--stop` refuses to guess between two.
TEST_F(WatchdogTest, StatusListsWatchdogsStartedFromOtherDirectories) {
  for (const char* d : {"a", "b", "c"}) fs::create_directory(file(d));
  auto first =
      std::make_unique<Process>(InDir(file("a"), {kWatchdog, "--", kChild, "sleep", file("pid-a")}),
                                file("a.out"), file("a.err"));
  auto second = std::make_unique<Process>(
      InDir(file("b"), {kWatchdog, "--name", "web", "--", kChild, "sleep", file("pid-b")}),
      file("b.out"), file("b.err"));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid-a")).size() == 1; }, 10))
      << ReadFile(file("a.err"));
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pid-b")).size() == 1; }, 10))
      << ReadFile(file("b.err"));
  const std::string child_a = Lines(file("pid-a"))[0];
  const std::string child_b = Lines(file("pid-b"))[0];

  std::string out, err;
  nlohmann::json list;
  ASSERT_TRUE(WaitFor(
      [&] {
        if (Run(InDir(file("c"), {kWatchdog, "--status", "--json"}), &out, &err) != 0) return false;
        list = nlohmann::json::parse(out);
        return list.is_array() && list.size() == 2 && list[0]["phase"] == "running" &&
               list[1]["phase"] == "running";
      },
      10))
      << out << err;
  EXPECT_EQ(list[0]["name"], "watchdog_test_child");
  EXPECT_EQ(list[0]["child_pid"], std::stoi(child_a));
  EXPECT_EQ(list[0]["journal"], file("a") + "/blackbox-journal");
  EXPECT_EQ(list[1]["name"], "web");
  EXPECT_EQ(list[1]["watchdog_pid"], second->pid());
  EXPECT_EQ(list[1]["journal"], file("b") + "/blackbox-journal");

  ASSERT_EQ(Run(InDir(file("c"), {kWatchdog, "--status"}), &out, &err), 0) << err;
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0].rfind("NAME", 0), 0u) << out;
  EXPECT_NE(lines[0].find("RESTARTS"), std::string::npos) << out;
  EXPECT_EQ(lines[1].rfind("watchdog_test_child ", 0), 0u) << out;
  EXPECT_NE(lines[1].find(" running "), std::string::npos) << out;
  EXPECT_NE(lines[1].find(" " + child_a + " "), std::string::npos) << out;
  EXPECT_EQ(lines[2].rfind("web ", 0), 0u) << out;
  EXPECT_NE(lines[2].find(" " + child_b + " "), std::string::npos) << out;

  // The block: command, state and since when, pids, memory and CPU, restarts,
  // then the last events of the journal.
  ASSERT_EQ(Run(InDir(file("c"), {kWatchdog, "--status", "web"}), &out, &err), 0) << err;
  EXPECT_EQ(out.rfind("web (state directory " + root() + "/web)\n", 0), 0u) << out;
  EXPECT_NE(out.find("command     " + kChild + " sleep " + file("pid-b") + "\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("state       running since "), std::string::npos) << out;
  EXPECT_NE(out.find("child       " + child_b + " (up "), std::string::npos) << out;
  EXPECT_NE(out.find("memory      "), std::string::npos) << out;
  EXPECT_NE(out.find("cpu         "), std::string::npos) << out;
  EXPECT_NE(out.find("restarts    0 in the current window, 0 in total"), std::string::npos) << out;
  EXPECT_NE(out.find("watchdog #1 "), std::string::npos) << out;
  EXPECT_NE(out.find("running child " + child_b), std::string::npos) << out;

  std::string named;
  ASSERT_EQ(Run(InDir(file("c"), {kWatchdog, "--status", "--json", "--name", "web"}), &named), 0);
  EXPECT_EQ(nlohmann::json::parse(named)["name"], "web");

  EXPECT_EQ(Run(InDir(file("c"), {kWatchdog, "--stop"}), &out, &err), 2);
  EXPECT_NE(err.find("give the name"), std::string::npos) << err;
  EXPECT_FALSE(Gone(first->pid()));
  EXPECT_EQ(Run(InDir(file("c"), {kWatchdog, "--stop", "web"}), &out, &err), 0) << err;
  EXPECT_EQ(second->Wait(10), 0);
  EXPECT_FALSE(Gone(first->pid()));
  // One left: a bare --stop takes it.
  EXPECT_EQ(Run(InDir(file("c"), {kWatchdog, "--stop"}), &out, &err), 0) << err;
  EXPECT_EQ(first->Wait(10), 0);
  ASSERT_EQ(Run(InDir(file("c"), {kWatchdog, "--status", "--json"}), &out, &err), 3) << err;
  list = nlohmann::json::parse(out);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["phase"], "stopped");
  EXPECT_EQ(list[1]["phase"], "stopped");
}

// --restart: the child is stopped gracefully (SIGTERM) and started again at
// once, journaled with reason manual and not counted against the restart
// budget: with --max-restarts 0 the watchdog still restarts it on request,
// twice, and then gives up at the first crash.
TEST_F(WatchdogTest, RestartOnRequestIsManualAndOutsideTheBudget) {
  auto wd = Start({"--max-restarts", "0", "--name", "svc"}, {kChild, "sleep", file("pids")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10))
      << ReadFile(file("watchdog.err"));
  std::string out, err;
  for (size_t n = 2; n <= 3; ++n) {
    ASSERT_EQ(Run({kWatchdog, "--restart", "--state-dir", state()}, &out, &err), 0) << out << err;
    EXPECT_NE(out.find("restarted"), std::string::npos) << out;
    ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == n; }, 10));
  }
  const std::vector<std::string> pids = Lines(file("pids"));
  EXPECT_TRUE(WaitFor([&] { return Gone(std::stoi(pids[0])) && Gone(std::stoi(pids[1])); }, 5));
  EXPECT_FALSE(Gone(std::stoi(pids[2])));
  EXPECT_NE(out.find("-> " + pids[2]), std::string::npos) << out;

  // The budget (0) is untouched: the first crash ends the watchdog.
  ::kill(std::stoi(pids[2]), SIGKILL);
  ASSERT_EQ(wd->Wait(10), 1) << ReadFile(file("watchdog.err"));
  EXPECT_EQ(Lines(file("pids")).size(), 3u);

  auto events = Events();
  auto restarts = Payloads<fb::RestartT>(events);
  ASSERT_EQ(restarts.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(restarts[i]->reason, fb::RestartReason::Manual);
    EXPECT_EQ(restarts[i]->signal, SIGTERM);
    EXPECT_EQ(restarts[i]->attempt, 0);
    EXPECT_EQ(restarts[i]->child_pid, std::stoi(pids[i + 1]));
  }
  // A restart on request is no crash; the SIGKILL afterwards is.
  auto crashes = Payloads<fb::CrashT>(events);
  ASSERT_EQ(crashes.size(), 1u);
  EXPECT_EQ(crashes[0]->signal, SIGKILL);
  EXPECT_TRUE(HasLifecycleReason(Payloads<fb::LifecycleT>(events), "restart requested"));

  // Nothing to restart: exit 3.
  EXPECT_EQ(Run({kWatchdog, "--restart", "--state-dir", state()}, &out, &err), 3) << out << err;
}

// The saved configuration is written only after the child's first spawn, so
// a --restart or --status issued as soon as the child runs can come before
// it (this test failed about once in 20 runs under load that way, waiting on
// the default journal). They take the journal from the pid file, which the
// watchdog writes before the child starts: without watchdog.toml they still
// see the right journal.
TEST_F(WatchdogTest, ControlCommandsFindTheJournalWithoutTheSavedConfiguration) {
  auto wd = Start({"--name", "svc"}, {kChild, "sleep", file("pids")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10))
      << ReadFile(file("watchdog.err"));
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(state() + "/watchdog.toml"); }, 10));
  std::filesystem::remove(state() + "/watchdog.toml");
  std::string out, err;
  ASSERT_EQ(Run({kWatchdog, "--status", "--json", "--state-dir", state()}, &out, &err), 0) << err;
  auto status = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(status.is_discarded()) << out;
  EXPECT_EQ(status["journal"], journal()) << out;
  // The child's start reaches the journal a moment after the child runs.
  EXPECT_TRUE(WaitFor(
      [&] {
        return Run({kWatchdog, "--status", "--json", "--state-dir", state()}, &out, &err) == 0 &&
               std::to_string(nlohmann::json::parse(out)["child_pid"].get<int>()) ==
                   Lines(file("pids"))[0];
      },
      10))
      << out << err;
  ASSERT_EQ(Run({kWatchdog, "--restart", "--state-dir", state()}, &out, &err), 0) << out << err;
  EXPECT_NE(out.find("restarted"), std::string::npos) << out;
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  EXPECT_EQ(wd->Wait(10), 0);
}

// A daemon's usual start through libsystemd: STATUS=…, a few milliseconds
// later READY=1, then STATUS=Ready…. The latest status shows within about a
// second (not at the next health tick, 30 s away), and READY=1 is journaled
// although the child was counted as running at its spawn.
TEST_F(WatchdogTest, LatestStatusAndReadyAreJournaledAtOnce) {
  const std::string script =
      "\"$1\" notify STATUS=Loading stay & sleep 0.05; \"$1\" notify READY=1 stay & sleep 0.05; "
      "exec \"$1\" notify 'STATUS=Ready to serve' stay";
  auto wd = Start({"--health-check-interval", "30"}, {"/bin/sh", "-c", script, "sh", kChild});
  std::string out, err;
  EXPECT_TRUE(WaitFor(
      [&] {
        return Run({kWatchdog, "--status", "--json", "--state-dir", state()}, &out, &err) == 0 &&
               nlohmann::json::parse(out)["status_text"] == "Ready to serve";
      },
      5))
      << out << err;
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  ASSERT_EQ(wd->Wait(10), 0);
  auto events = Events();
  auto lifecycle = Payloads<fb::LifecycleT>(events);
  std::vector<std::string> running;
  for (const fb::LifecycleT* l : lifecycle) {
    if (l->phase == fb::Phase::Running) running.push_back(l->reason);
  }
  // At spawn, the first status, READY=1 (with the status of its moment), the latest status.
  ASSERT_EQ(running.size(), 4u) << fmt::format("{}", fmt::join(running, " | "));
  EXPECT_EQ(running[0], "");
  EXPECT_EQ(running[1], "Loading");
  EXPECT_EQ(running[2], "Loading");
  EXPECT_EQ(running[3], "Ready to serve");
}

// --type notify: starting (with its STATUS= text) until READY=1, as systemd's
// Type=notify shows activating; --type simple: running once started.
TEST_F(WatchdogTest, ANotifyTypeChildIsStartingUntilReady) {
  // READY=1 only once the test has seen "starting" (it creates the file
  // "go"), however slow the machine.
  const std::string script =
      "\"$1\" notify STATUS=Loading stay & while [ ! -e \"$2\" ]; do sleep 0.05; done; "
      "exec \"$1\" notify READY=1 stay";
  const std::string go = file("go");
  auto wd = Start({"--type", "notify"}, {"/bin/sh", "-c", script, "sh", kChild, go});
  std::string out, err;
  auto phase_is = [&](const std::string& phase, const std::string& text) {
    return WaitFor(
        [&] {
          if (Run({kWatchdog, "--status", "--json", "--state-dir", state()}, &out, &err) != 0) {
            return false;
          }
          auto j = nlohmann::json::parse(out);
          return j["phase"] == phase && (text.empty() || j["status_text"] == text);
        },
        5);
  };
  EXPECT_TRUE(phase_is("starting", "Loading")) << out << err;
  blackbox::testing::WriteFile(go, "");
  EXPECT_TRUE(phase_is("running", "")) << out << err;
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  ASSERT_EQ(wd->Wait(10), 0);

  // The same child as --type simple is running at once.
  auto simple = Start({"--type", "simple"}, {"/bin/sh", "-c", script, "sh", kChild, go});
  EXPECT_TRUE(phase_is("running", "Loading")) << out << err;
  ASSERT_EQ(Run({kWatchdog, "--stop", "--state-dir", state()}), 0);
  ASSERT_EQ(simple->Wait(10), 0);

  EXPECT_EQ(
      Run({kWatchdog, "--state-dir", state(), "--type", "forking", "--", "/bin/true"}, &out, &err),
      2);
  EXPECT_NE(err.find("--type"), std::string::npos) << err;
}

}  // namespace

namespace {

// --help says what the exit statuses mean and shows examples; a numeric
// option shows what it takes (SEC, MB, N), not CLI11's TEXT.
TEST(WatchdogHelp, ListsExitStatusesExamplesAndTypedPlaceholders) {
  auto help = blackbox::testing::RunProcess({kWatchdog, "--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const char* want :
       {"Exit status:", "Examples:", "--restart-delay SEC", "--max-memory MB", "--max-restarts N",
        "--watchdog-timeout SEC", "--log-max-mb MB", "--journal DIR", "--state-dir DIR"}) {
    EXPECT_NE(help.out.find(want), std::string::npos) << want << "\n" << help.out;
  }
  EXPECT_EQ(help.out.find(" TEXT"), std::string::npos) << help.out;
}

}  // namespace

namespace {

// A child that never speaks the notify protocol, under --watchdog-timeout:
// killed as hung, and the watchdog says why on stderr and in the journal.
TEST_F(WatchdogTest, ChildWithoutReadyUnderAHeartbeatTimeoutIsToldAbout) {
  auto wd = Start({"--watchdog-timeout", "0.3", "--stop-timeout", "0.2", "--max-restarts", "0"},
                  {"/bin/sh", "-c", "sleep 60"});
  ASSERT_EQ(wd->Wait(20), 1) << ReadFile(file("watchdog.err"));
  const std::string err = ReadFile(file("watchdog.err"));
  EXPECT_NE(err.find("warning: the child sent no READY=1 or WATCHDOG=1 within --watchdog-timeout"),
            std::string::npos)
      << err;
  EXPECT_TRUE(HasLifecycleReason(Payloads<fb::LifecycleT>(Events()), "it never sent READY=1"));
}

}  // namespace

namespace {

// A second watchdog on another state directory but the same journal is
// told which process holds the stream, not RocksDB's lock error.
TEST_F(WatchdogTest, ASecondWatchdogOnTheSameJournalIsToldWhoHoldsIt) {
  auto first = Start({}, {kChild, "sleep", file("pids")});
  ASSERT_TRUE(WaitFor([&] { return Lines(file("pids")).size() == 1; }, 10))
      << ReadFile(file("watchdog.err"));
  std::string out, err;
  EXPECT_EQ(Run({kWatchdog, "--journal", journal(), "--state-dir", file("other"), "--", "true"},
                &out, &err),
            1);
  EXPECT_NE(err.find(fmt::format("held by process {}", first->pid())), std::string::npos) << err;
  EXPECT_EQ(err.find("LOCK"), std::string::npos) << err;
}

}  // namespace
