// Process-level behaviour with real processes: crashy_child is forked and
// exec'd, then the journal it leaves behind is folded and inspected.
#include "process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "blackbox/journal.h"
#include "blackbox/state_io.h"
#include "temp_dir.h"

namespace blackbox {
namespace {

namespace fs = std::filesystem;

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout
};

class ProcessTest : public ::testing::Test {
 protected:
  Child Spawn(const std::string& mode, const std::string& binary = CRASHY_CHILD) {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    Child c;
    const std::vector<std::string> argv = {binary, mode, root_, marker_};
    EXPECT_NO_THROW(
        c.pid = blackbox::testing::StartProcess(argv, {}, STDIN_FILENO, fds[1], STDERR_FILENO));
    close(fds[1]);
    c.out = fds[0];
    return c;
  }
  // Blocks until the child printed "ready" (its manager is initialized).
  void WaitReady(const Child& c) {
    std::string got;
    char ch;
    while (got.find("ready\n") == std::string::npos && read(c.out, &ch, 1) == 1) got += ch;
    ASSERT_NE(got.find("ready\n"), std::string::npos);
  }
  int Wait(Child& c) {
    int status = 0;
    EXPECT_EQ(waitpid(c.pid, &status, 0), c.pid);
    close(c.out);
    return status;
  }
  int RunToEnd(const std::string& mode, const std::string& binary = CRASHY_CHILD) {
    Child c = Spawn(mode, binary);
    return Wait(c);
  }
  // Runs `mode`, which must die of `signal`, then a clean start that
  // journals the crash; returns the crash records.
  std::vector<fb::CrashT> CrashAndRestart(const std::string& mode, int signal) {
    int status = RunToEnd(mode);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == signal) << "status " << status;
    EXPECT_EQ(RunToEnd("run"), 0);
    return Crashes();
  }
  SystemState Load() {
    auto s = LoadState(root_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s.value() : SystemState{};
  }
  std::vector<fb::CrashT> Crashes() {
    std::vector<fb::CrashT> out;
    auto reader = Reader::Open(root_, kAppStream);
    EXPECT_TRUE(reader.ok());
    (*reader)->Scan({}, [&](const Record& r) {
      if (auto* c = r.event->payload_as_Crash()) {
        fb::CrashT crash;
        c->UnPackTo(&crash);
        out.push_back(std::move(crash));
      }
      return true;
    });
    return out;
  }

  blackbox::testing::TempDir tmp_;
  const fs::path dir_{tmp_.path()};
  const std::string root_ = (dir_ / "journal").string();
  const std::string marker_ = (dir_ / "marker").string();
};

TEST_F(ProcessTest, SegfaultIsJournaledByTheNextStartWithTheCrashingFunctionNamed) {
  int status = RunToEnd("segv");
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);  // re-raised: the exit status stays true
  ASSERT_EQ(RunToEnd("run"), 0);

  std::vector<fb::CrashT> crashes = Crashes();
  ASSERT_EQ(crashes.size(), 1u);
  const fb::CrashT& crash = crashes[0];
  EXPECT_EQ(crash.origin, fb::CrashOrigin::Signal);
  EXPECT_EQ(crash.signal, SIGSEGV);
  EXPECT_EQ(crash.signal_name, "SIGSEGV");
  EXPECT_EQ(crash.fault_address, 0u);
  ASSERT_FALSE(crash.frames.empty());
  EXPECT_NE(crash.frames[0].find("crash_in_named_function(int volatile*)"), std::string::npos)
      << crash.frames[0];

  SystemState s = Load();
  EXPECT_EQ(s.crash_count, 1u);
  EXPECT_EQ(s.restart_count, 1);
  ASSERT_TRUE(s.last_crash.has_value());
  EXPECT_NE(s.last_crash->first_frame.find("crash_in_named_function"), std::string::npos);
  EXPECT_EQ(s.status, fb::Phase::Stopped);
}

// A function the dynamic symbol table does not hold (local to its file) is
// named from the executable's own symbol table when the crash is journaled,
// with its source line from the debug information (the tests are built with
// -g). The second run starts the executable as a bare "crashy_child"
// (argv[0], which is the name the crash handler sees for its frames, is then
// no path).
TEST_F(ProcessTest, FramesOfLocalFunctionsAreNamedWithTheirSourceLine) {
  for (const char* mode : {"segv_local", "segv_local_bare_name"}) {
    SCOPED_TRACE(mode);
    fs::remove_all(root_);
    std::vector<fb::CrashT> crashes = CrashAndRestart(mode, SIGSEGV);
    ASSERT_EQ(crashes.size(), 1u);
    ASSERT_GE(crashes[0].frames.size(), 2u);
    const std::string& top = crashes[0].frames[0];
    EXPECT_NE(top.find("(anonymous namespace)::crash_in_local_function(int volatile*) +0x"),
              std::string::npos)
        << top;
    EXPECT_NE(top.find("(crashy_child) at "), std::string::npos) << top;
    EXPECT_NE(top.find("crashy_child.cpp:"), std::string::npos) << top;
    // The caller is a return address, named too: main, with its line.
    EXPECT_NE(crashes[0].frames[1].find("main +0x"), std::string::npos) << crashes[0].frames[1];
    EXPECT_NE(crashes[0].frames[1].find("crashy_child.cpp:"), std::string::npos)
        << crashes[0].frames[1];
  }
}

// A start that died while naming a spill's frames leaves a marker; the next
// start journals the frames as the crash handler wrote them rather than
// read the same files again (and possibly die the same way).
TEST_F(ProcessTest, AStartThatDiedNamingFramesIsNotRepeated) {
  int status = RunToEnd("segv_local");
  ASSERT_TRUE(WIFSIGNALED(status));
  std::string marker = root_ + "/app.crash.naming";
  blackbox::testing::WriteFile(marker, "");
  ASSERT_EQ(RunToEnd("run"), 0);

  std::vector<fb::CrashT> crashes = Crashes();
  ASSERT_EQ(crashes.size(), 1u);
  ASSERT_FALSE(crashes[0].frames.empty());
  // Module and offset, as backtrace_symbols_fd wrote it: no name, no line.
  EXPECT_EQ(crashes[0].frames[0].find("crash_in_local_function"), std::string::npos)
      << crashes[0].frames[0];
  EXPECT_NE(crashes[0].frames[0].find("crashy_child+0x"), std::string::npos)
      << crashes[0].frames[0];
  EXPECT_FALSE(fs::exists(marker));
  // Without the marker the next crash is named again.
  ASSERT_TRUE(WIFSIGNALED(RunToEnd("segv_local")));
  ASSERT_EQ(RunToEnd("run"), 0);
  crashes = Crashes();
  ASSERT_EQ(crashes.size(), 2u);
  EXPECT_NE(crashes[1].frames[0].find("crash_in_local_function"), std::string::npos)
      << crashes[1].frames[0];
  EXPECT_FALSE(fs::exists(marker));
}

// The program is replaced between the crash and the next start (a deploy
// that keeps the files' old times, as tar and rsync -a do): its frames must
// not be named from the new file. The crashed build's ID is in the spill.
TEST_F(ProcessTest, FramesAreNotNamedFromAnotherBuildAtTheSamePath) {
  std::string app = (dir_ / "trader").string();
  fs::copy_file(CRASHY_CHILD, app);
  fs::permissions(app, fs::perms::owner_all);
  ASSERT_TRUE(WIFSIGNALED(RunToEnd("segv_local", app)));

  // Another build at the same path, older than the crash.
  fs::copy_file("/proc/self/exe", app, fs::copy_options::overwrite_existing);
  fs::last_write_time(app, fs::file_time_type::clock::now() - std::chrono::hours(24 * 365));
  ASSERT_EQ(RunToEnd("run"), 0);

  std::vector<fb::CrashT> crashes = Crashes();
  ASSERT_EQ(crashes.size(), 1u);
  ASSERT_FALSE(crashes[0].frames.empty());
  // Frame 0 is in a local function (unnamed without the file); main is named
  // by the handler, but gets no line from the wrong file.
  EXPECT_EQ(crashes[0].frames[0].rfind("trader+0x", 0), 0u) << crashes[0].frames[0];
  for (const std::string& frame : crashes[0].frames) {
    if (frame.find("trader") == std::string::npos) continue;
    EXPECT_EQ(frame.find(" at "), std::string::npos) << frame;
  }
}

// A stack overflow leaves no stack for the handler: it runs on the thread's
// alternate stack, on the main thread and on a thread the application
// prepared with RecoveryManager::prepare_thread().
TEST_F(ProcessTest, StackOverflowIsJournaledByTheNextStart) {
  for (const char* mode : {"overflow", "thread_overflow"}) {
    SCOPED_TRACE(mode);
    fs::remove_all(root_);
    std::vector<fb::CrashT> crashes = CrashAndRestart(mode, SIGSEGV);
    ASSERT_EQ(crashes.size(), 1u);
    EXPECT_EQ(crashes[0].signal, SIGSEGV);
    ASSERT_FALSE(crashes[0].frames.empty());
    EXPECT_NE(crashes[0].frames[0].find("recurse_forever"), std::string::npos)
        << crashes[0].frames[0];
  }
}

TEST_F(ProcessTest, TerminateRecordsTheUncaughtExceptionsTypeAndMessage) {
  int status = RunToEnd("terminate");
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
  ASSERT_EQ(RunToEnd("run"), 0);

  std::vector<fb::CrashT> crashes = Crashes();
  ASSERT_EQ(crashes.size(), 1u);  // one record, not one per handler
  EXPECT_EQ(crashes[0].origin, fb::CrashOrigin::Terminate);
  EXPECT_EQ(crashes[0].exception_type, "std::runtime_error");
  EXPECT_EQ(crashes[0].exception_message, "order book corrupted");
  EXPECT_EQ(crashes[0].signal, SIGABRT);
  // The frames start in the application (throw_order_error; a sanitizer's
  // landing pad there has no name), not inside the C++ runtime's terminate
  // and unwind machinery.
  ASSERT_FALSE(crashes[0].frames.empty());
  EXPECT_NE(crashes[0].frames[0].find("crashy_child"), std::string::npos) << crashes[0].frames[0];
  SystemState s = Load();
  ASSERT_TRUE(s.last_crash.has_value());
  EXPECT_EQ(s.last_crash->exception_message, "order book corrupted");
}

TEST_F(ProcessTest, SigkillIsCountedAsARestartByTheNextStart) {
  ASSERT_EQ(RunToEnd("run"), 0);
  EXPECT_EQ(Load().restart_count, 0);
  Child c = Spawn("hang");
  WaitReady(c);
  kill(c.pid, SIGKILL);
  int status = Wait(c);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(RunToEnd("run"), 0);
  SystemState s = Load();
  EXPECT_EQ(s.restart_count, 1);
  EXPECT_EQ(s.crash_count, 0u);  // nothing was caught in-process: SIGKILL cannot be
  // A clean run after it adds nothing.
  ASSERT_EQ(RunToEnd("run"), 0);
  EXPECT_EQ(Load().restart_count, 1);
}

TEST_F(ProcessTest, SigtermRunsCleanupCallbacksAndExitsZero) {
  Child c = Spawn("sigterm");
  WaitReady(c);
  kill(c.pid, SIGTERM);
  int status = Wait(c);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::ifstream marker(marker_);
  std::string line;
  std::getline(marker, line);
  EXPECT_EQ(line, "cleanup ran");

  SystemState s = Load();
  EXPECT_EQ(s.status, fb::Phase::Stopped);
  EXPECT_EQ(s.restart_count, 0);
  // The state file was written at shutdown, atomically, with the seed's shape.
  std::ifstream state_file(dir_ / "system_state.json");
  std::string text((std::istreambuf_iterator<char>(state_file)), {});
  EXPECT_NE(text.find("\"status\": \"stopped\""), std::string::npos) << text;
}

TEST_F(ProcessTest, ExhaustedRecoveriesShutDownWithANonZeroStatus) {
  int status = RunToEnd("recover_fail");
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 70);
  std::ifstream marker(marker_);
  EXPECT_TRUE(marker.good()) << "cleanup callbacks run before giving up";
  SystemState s = Load();
  EXPECT_EQ(s.status, fb::Phase::Failed);
  EXPECT_EQ(s.recovery_attempts, 3);
  EXPECT_EQ(s.error_count, 3u);
  // A controlled stop: the next start does not count a crash.
  ASSERT_EQ(RunToEnd("run"), 0);
  EXPECT_EQ(Load().restart_count, 0);
}

// The fsync and fdatasync calls the child `mode` makes between its two marker
// calls (see crashy_child's handled_error), counted by strace over all of its
// threads; -1 when the markers are missing from the trace.
int SyncsBetweenMarkers(const std::string& mode, const std::string& root, const std::string& marker,
                        const fs::path& trace) {
  const std::vector<std::string> argv = {
      "/usr/bin/strace", "-f", "-qq", "-o",  trace.string(), "-e", "trace=fsync,fdatasync,access",
      CRASHY_CHILD,      mode, root,  marker};
  // LeakSanitizer cannot run under a tracer (an ASan build's child would die
  // at exit); the leak check is not what this test is about.
  blackbox::testing::RunOptions options;
  options.extra_env = {"ASAN_OPTIONS=detect_leaks=0"};
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_t pid = blackbox::testing::StartProcess(argv, options, STDIN_FILENO, null, STDERR_FILENO);
  close(null);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  std::istringstream lines(blackbox::testing::ReadFile(trace.string()));
  const std::regex sync_call(R"(\b(fsync|fdatasync)\()");
  bool inside = false, ended = false;
  int syncs = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("/begin\"") != std::string::npos) inside = true;
    if (line.find("/end\"") != std::string::npos) ended = inside;
    if (inside && !ended && std::regex_search(line, sync_call)) ++syncs;
    if (ended) break;
  }
  return ended ? syncs : -1;
}

// A handled error is durable when exception_handler returns, at the cost of
// one fsync: the error, the recovering phase and the callbacks' results are
// written buffered, and the last record's sync covers them.
TEST_F(ProcessTest, AHandledErrorCostsOneFsyncWithOrWithoutCallbacks) {
  if (access("/usr/bin/strace", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/strace";
  EXPECT_EQ(SyncsBetweenMarkers("handled_error", root_, marker_, dir_ / "trace0"), 1);
  EXPECT_EQ(SyncsBetweenMarkers("handled_error_3", root_, marker_, dir_ / "trace3"), 1);
  SystemState s = Load();
  EXPECT_EQ(s.error_count, 2u);
  ASSERT_TRUE(s.last_error.has_value());
  EXPECT_EQ(s.last_error->message, "order book corrupted");
  EXPECT_EQ(s.status, fb::Phase::Stopped);
}

// The records of the app stream from its Error of context "handled" on, one
// line each ("error handled", "lifecycle Recovering", "callback reload ok"),
// with a "gap" line where seqs are not consecutive; the journal must verify
// clean.
std::vector<std::string> RecordsOfTheHandledError(const std::string& root) {
  std::vector<std::string> out;
  auto reader = Reader::Open(root, kAppStream);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return out;
  std::vector<std::string> bad;
  auto verified = (*reader)->Verify([&](const BadRecord& b) { bad.push_back(b.reason); });
  EXPECT_TRUE(verified.ok());
  EXPECT_TRUE(bad.empty()) << bad.front();
  uint64_t previous = 0;
  (*reader)->Scan({}, [&](const Record& r) {
    const fb::Event& e = *r.event;
    if (const auto* err = e.payload_as_Error(); err && err->context()->string_view() == "handled") {
      out.push_back("error handled");
    } else if (out.empty()) {
      return true;
    } else if (r.seq != previous + 1) {
      out.push_back("gap");
    } else if (const auto* l = e.payload_as_Lifecycle()) {
      out.push_back(fmt::format("lifecycle {}", fb::EnumNamePhase(l->phase())));
    } else if (const auto* c = e.payload_as_Callback()) {
      out.push_back(
          fmt::format("callback {} {}", c->name()->string_view(), c->ok() ? "ok" : "failed"));
    } else {
      out.push_back(fmt::format("other {}", fb::EnumNamePayload(e.payload_type())));
    }
    previous = r.seq;
    return true;
  });
  return out;
}

// Durable when it returns: a child handles an error with three recovery
// callbacks, says "returned", and is killed at once; every record of that
// error is in the journal it leaves behind.
TEST_F(ProcessTest, EveryRecordOfAHandledErrorSurvivesASigkillRightAfterTheHandlerReturns) {
  Child c = Spawn("returned");
  std::string got;
  char ch;
  while (got.find("returned\n") == std::string::npos && read(c.out, &ch, 1) == 1) got += ch;
  ASSERT_NE(got.find("returned\n"), std::string::npos) << got;
  kill(c.pid, SIGKILL);
  int status = Wait(c);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  EXPECT_EQ(
      RecordsOfTheHandledError(root_),
      (std::vector<std::string>{"error handled", "lifecycle Recovering", "callback reconnect ok",
                                "callback reload ok", "callback resync ok", "lifecycle Running"}));
  SystemState s = Load();
  EXPECT_EQ(s.error_count, 1u);
  EXPECT_EQ(s.status, fb::Phase::Running);
}

// Killed in the middle of its recovery, a process leaves a prefix of the
// handled error's records and a journal that folds: the next start counts
// an unclean restart and goes on.
TEST_F(ProcessTest, AProcessKilledInARecoveryCallbackLeavesAPrefixThatFolds) {
  int status = RunToEnd("killed_in_callback");
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  EXPECT_EQ(
      RecordsOfTheHandledError(root_),
      (std::vector<std::string>{"error handled", "lifecycle Recovering", "callback reconnect ok"}));
  ASSERT_EQ(RunToEnd("run"), 0);
  SystemState s = Load();
  EXPECT_EQ(s.error_count, 1u);
  EXPECT_EQ(s.restart_count, 1);
  EXPECT_EQ(s.status, fb::Phase::Stopped);
}

}  // namespace
}  // namespace blackbox
