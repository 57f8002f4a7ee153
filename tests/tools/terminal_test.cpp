// `blackbox` on a terminal: the pager and colour. The tool runs with a real
// pseudo-terminal as its stdout; fake pagers (shell scripts) record what they
// were given and with which environment.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

// The tool's environment for a terminal: no pager or colour setting of the
// person running the tests, plus `extra` ("KEY=VALUE").
std::vector<std::string> TerminalEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (const std::string& kv : ToolEnvironment()) {
    if (kv.starts_with("NO_COLOR=") || kv.starts_with("PAGER=") ||
        kv.starts_with("BLACKBOX_PAGER=") || kv.starts_with("LESS=") ||
        kv.starts_with("LESSCHARSET=")) {
      continue;
    }
    env.push_back(kv);
  }
  for (const std::string& kv : extra) {
    std::string key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.starts_with(key); });
    env.push_back(kv);
  }
  return env;
}

// Runs the tool with a pseudo-terminal as stdout (stdin /dev/null, stderr a
// pipe) and collects both until every holder of the terminal (the tool and
// its pager) is gone. `out` is what reached the terminal. With `stop_at`, the
// tool gets SIGTERM once the terminal showed that text (for --follow).
ToolResult RunOnTerminal(const std::vector<std::string>& args,
                         const std::vector<std::string>& extra_env, const std::string& stop_at = "",
                         const std::string& program = BLACKBOX_TOOL) {
  int master = -1, slave = -1;
  if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) {
    throw std::runtime_error("openpty failed");
  }
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

  std::vector<std::string> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  ::blackbox::testing::RunOptions options;
  options.env = TerminalEnvironment(extra_env);
  pid_t pid = ::blackbox::testing::StartProcess(argv, options, devnull, slave, err_pipe[1]);
  close(slave);
  close(err_pipe[1]);
  close(devnull);

  ToolResult result;
  auto deadline = std::chrono::steady_clock::now() + kToolTimeout;
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? master : -1, POLLIN, 0}, {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, 2, static_cast<int>(left.count())) < 0) continue;
    if (out_open && fds[0].revents != 0) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) {
        result.out.append(buf, static_cast<size_t>(n));
        if (!stop_at.empty() && result.out.find(stop_at) != std::string::npos) kill(pid, SIGTERM);
      } else {
        out_open = false;  // EIO: no one holds the terminal any more
      }
    }
    if (err_open && fds[1].revents != 0) {
      ssize_t n = read(err_pipe[0], buf, sizeof buf);
      if (n > 0) {
        result.err.append(buf, static_cast<size_t>(n));
      } else {
        err_open = false;
      }
    }
  }
  close(master);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  // A terminal turns "\n" into "\r\n".
  std::string cooked;
  for (size_t i = 0; i < result.out.size(); ++i) {
    if (result.out[i] == '\r' && i + 1 < result.out.size() && result.out[i + 1] == '\n') continue;
    cooked += result.out[i];
  }
  result.out = cooked;
  return result;
}

class Terminal : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFixtureJournal(root());
    // A pager that records its arguments, its environment, whether its
    // stdout is the terminal, and everything it read.
    WriteScript("fake-pager",
                "printf '%s\\n' \"$@\" > \"$DIR/args\"\n"
                "env > \"$DIR/env\"\n"
                "if [ -t 1 ]; then echo yes > \"$DIR/tty\"; fi\n"
                "cat > \"$DIR/got\"\n");
  }
  std::string root() const { return dir_ / "journal"; }
  std::string Path(const std::string& name) const { return dir_ / name; }
  void WriteScript(const std::string& name, const std::string& body) {
    WriteFile(Path(name), "#!/bin/sh\nPATH=/usr/bin:/bin\nDIR='" + dir_.path() + "'\n" + body);
    chmod(Path(name).c_str(), 0755);
  }
  bool Exists(const std::string& name) const { return std::filesystem::exists(Path(name)); }
  // Without colour unless `colour`, so that the output compares with Piped().
  ToolResult Run(std::vector<std::string> args, const std::vector<std::string>& env,
                 bool colour = false) {
    args.insert(args.begin(), {"--journal", root()});
    std::vector<std::string> full_env;
    if (!colour) full_env.push_back("NO_COLOR=1");
    full_env.insert(full_env.end(), env.begin(), env.end());
    return RunOnTerminal(args, full_env);
  }
  // The same command with stdout a pipe: what the pager should receive.
  std::string Piped(std::vector<std::string> args) {
    args.insert(args.begin(), {"--journal", root()});
    ToolResult r = RunTool(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  TempDir dir_;
};

TEST_F(Terminal, ReplayCrashesAndStateGoThroughThePager) {
  const std::vector<std::string> env{"BLACKBOX_PAGER=" + Path("fake-pager")};
  for (std::vector<std::string> args :
       {std::vector<std::string>{"replay"}, {"crashes"}, {"crashes", "show", "1"}, {"state"}}) {
    SCOPED_TRACE(args[0] + (args.size() > 1 ? " " + args[1] : ""));
    std::filesystem::remove(Path("got"));
    ToolResult r = Run(args, env);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out, "");  // everything went to the pager
    EXPECT_EQ(ReadFile(Path("got")), Piped(args));
    EXPECT_TRUE(Exists("tty")) << "the pager draws on the terminal";
  }
  // less's options, unless the user set their own.
  std::string pager_env = ReadFile(Path("env"));
  EXPECT_NE(pager_env.find("LESS=FRSXM\n"), std::string::npos) << pager_env;
  EXPECT_NE(pager_env.find("LESSCHARSET=utf-8\n"), std::string::npos) << pager_env;
  Run({"state"}, {"BLACKBOX_PAGER=" + Path("fake-pager"), "LESS=R"});
  EXPECT_NE(ReadFile(Path("env")).find("LESS=R\n"), std::string::npos);
}

TEST_F(Terminal, NoPagerWhenStdoutIsNotATerminalOrWhenTurnedOff) {
  const std::string pager = "BLACKBOX_PAGER=" + Path("fake-pager");
  ToolResult piped = RunTool({"--journal", root(), "replay"}, "", {pager});
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_FALSE(Exists("got"));

  const std::string replay_text = Piped({"replay"});
  for (const std::vector<std::string>& env : {std::vector<std::string>{pager},
                                              {"BLACKBOX_PAGER=", "PAGER=" + Path("fake-pager")},
                                              {"BLACKBOX_PAGER=cat", "PAGER=" + Path("fake-pager")},
                                              {"PAGER=  "}}) {
    bool flag = env.size() == 1 && env[0] == pager;  // this one is turned off with --no-pager
    std::vector<std::string> args{"replay"};
    if (flag) args.insert(args.begin(), "--no-pager");
    ToolResult r = Run(args, {env.begin(), env.end()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, replay_text) << env.back();
    EXPECT_FALSE(Exists("got")) << env.back();
  }
}

TEST_F(Terminal, FollowIsWatchedLiveWithoutAPager) {
  const std::string last_event = "stopped: shutdown";
  ToolResult r = RunOnTerminal({"--journal", root(), "replay", "--follow"},
                               {"NO_COLOR=1", "BLACKBOX_PAGER=" + Path("fake-pager")}, last_event);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_NE(r.out.find(last_event), std::string::npos) << r.out;
  EXPECT_FALSE(Exists("got"));
}

TEST_F(Terminal, PagerIsPagerElseLessOnThePath) {
  ToolResult from_pager = Run({"state"}, {"PAGER=" + Path("fake-pager")});
  ASSERT_EQ(from_pager.exit_code, 0) << from_pager.err;
  EXPECT_TRUE(Exists("got"));
  std::filesystem::remove(Path("got"));

  // Neither variable: `less -FRSXM` from the PATH.
  std::filesystem::create_directory(Path("bin"));
  std::filesystem::copy_file(Path("fake-pager"), Path("bin/less"));
  ToolResult less = Run({"state"}, {"PATH=" + Path("bin")});
  ASSERT_EQ(less.exit_code, 0) << less.err;
  EXPECT_EQ(ReadFile(Path("args")), "-FRSXM\n");
  EXPECT_EQ(ReadFile(Path("got")), Piped({"state"}));
  std::filesystem::remove(Path("got"));

  // No less on the PATH: no pager.
  std::filesystem::create_directory(Path("empty"));
  ToolResult none = Run({"state"}, {"PATH=" + Path("empty")});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.out, Piped({"state"}));
  EXPECT_FALSE(Exists("got"));
}

TEST_F(Terminal, APagerWithArgumentsRunsDirectlyAndOneWithMetacharactersUnderSh) {
  ToolResult direct = Run({"state"}, {"BLACKBOX_PAGER=" + Path("fake-pager") + "  -x --y"});
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_EQ(ReadFile(Path("args")), "-x\n--y\n");

  ToolResult shell = Run({"state"}, {"BLACKBOX_PAGER=cat > '" + Path("via-sh") + "'"});
  ASSERT_EQ(shell.exit_code, 0) << shell.err;
  EXPECT_EQ(ReadFile(Path("via-sh")), Piped({"state"}));
}

TEST_F(Terminal, APagerThatQuitsEarlyEndsTheToolQuietly) {
  AppendHealthEvents(root(), "app", 30000, kT0 + 100 * kSec);  // megabytes of output
  WriteScript("quitter", "read line\necho \"$line\" > \"$DIR/first\"\n");
  ToolResult r = Run({"replay"}, {"BLACKBOX_PAGER=" + Path("quitter")});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(ReadFile(Path("first")), Lines(Piped({"replay"}))[0] + "\n");
}

TEST_F(Terminal, APagerThatCannotStartIsReportedAndTheOutputShown) {
  ToolResult r = Run({"state"}, {"BLACKBOX_PAGER=" + Path("no-such-pager")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("cannot run the pager"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, Piped({"state"}));
}

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(Terminal, StateColoursThePhaseAndTheCrash) {
  // At app seq 2 the app has just said it runs.
  ToolResult running = Run({"--no-pager", "state", "--at", "app:2"}, {}, /*colour=*/true);
  ASSERT_EQ(running.exit_code, 0) << running.err;
  EXPECT_TRUE(Has(running.out, "status         \033[32mrunning\033[0m\n")) << running.out;

  ToolResult now = Run({"--no-pager", "state"}, {}, true);
  ASSERT_EQ(now.exit_code, 0) << now.err;
  EXPECT_TRUE(Has(now.out, "\033[31mSIGSEGV\033[0m")) << now.out;     // the last crash
  EXPECT_TRUE(Has(now.out, "\033[31mdata_processing: ")) << now.out;  // the last error
  EXPECT_TRUE(Has(now.out, "status         stopped\n")) << now.out;   // no colour

  for (const char* at : {"app:2", "now"}) {
    ToolResult plain = Run({"--no-pager", "state", "--at", at}, {"NO_COLOR=1"}, true);
    EXPECT_FALSE(Has(plain.out, "\033")) << plain.out;
  }
}

TEST_F(Terminal, CrashesColourTheCrashRed) {
  ToolResult list = Run({"--no-pager", "crashes"}, {}, true);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(Has(list.out, "\033[31mSIGSEGV ")) << list.out;
  ToolResult show = Run({"--no-pager", "crashes", "show", "1"}, {}, true);
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_TRUE(Has(show.out, "\033[31mcrash 1 of 1: segfault\033[0m")) << show.out;
  EXPECT_TRUE(Has(show.out, "\033[31mSIGSEGV\033[0m (11)")) << show.out;

  for (std::vector<std::string> args :
       {std::vector<std::string>{"crashes"}, {"crashes", "show", "1"}}) {
    args.insert(args.begin(), "--no-pager");
    ToolResult plain = Run(args, {"NO_COLOR=1"}, true);
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    EXPECT_FALSE(Has(plain.out, "\033")) << plain.out;
    args.erase(args.begin());
    EXPECT_EQ(plain.out, Piped(args));
  }
}

TEST_F(Terminal, WatchdogStatusColoursThePhase) {
  // A watchdog of its own name under a state root of the test's.
  const std::string state_root = "BLACKBOX_STATE_ROOT=" + Path("run");
  ::blackbox::testing::RunOptions options;
  options.extra_env = {state_root, "BLACKBOX_JOURNAL=" + Path("wd-journal")};
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  ASSERT_GE(null, 0);
  pid_t watchdog = ::blackbox::testing::StartProcess(
      {BLACKBOX_WATCHDOG_BIN, "--name", "svc", "--", "/bin/sleep", "60"}, options, null, null,
      null);
  close(null);
  auto status = [&](std::vector<std::string> args, std::vector<std::string> env) {
    env.push_back(state_root);
    args.insert(args.begin(), "--status");
    return RunOnTerminal(args, env, "", BLACKBOX_WATCHDOG_BIN);
  };
  bool running = false;
  for (int i = 0; i < 100 && !running; ++i) {
    running = Has(status({"svc"}, {"NO_COLOR=1"}).out, "state       running");
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(running);
  ToolResult block = status({"svc"}, {});
  EXPECT_TRUE(Has(block.out, "state       \033[32mrunning\033[0m")) << block.out;
  ToolResult list = status({}, {});
  EXPECT_TRUE(Has(list.out, "svc   \033[32mrunning\033[0m")) << list.out;
  for (const auto& args : {std::vector<std::string>{"svc"}, std::vector<std::string>{}}) {
    EXPECT_FALSE(Has(status(args, {"NO_COLOR=1"}).out, "\033")) << args.size();
  }
  kill(watchdog, SIGTERM);
  int wstatus = 0;
  ASSERT_EQ(waitpid(watchdog, &wstatus, 0), watchdog);
}

TEST_F(Terminal, ColourReachesThePagerAsItWouldTheTerminal) {
  ToolResult r = Run({"crashes"}, {"BLACKBOX_PAGER=" + Path("fake-pager")}, true);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Has(ReadFile(Path("got")), "\033[31m")) << ReadFile(Path("got"));
  r = Run({"replay"}, {"BLACKBOX_PAGER=" + Path("fake-pager"), "NO_COLOR=1"}, true);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(Has(ReadFile(Path("got")), "\033"));
}

}  // namespace
}  // namespace blackbox::tools::testing
