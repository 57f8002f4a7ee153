// The watchdog's pure parts: restart policy, option parsing and the saved
// configuration, notify datagrams, output line scanning.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "instance_name.h"
#include "notify_socket.h"
#include "options.h"
#include "output.h"
#include "restart_policy.h"
#include "temp_dir.h"

namespace {

using namespace blackbox::watchdog;
constexpr int64_t kSec = 1'000'000'000;

TEST(RestartPolicy, AllowsExactlyMaxRestartsInTheWholeRun) {
  RestartPolicy policy({.max_restarts = 3, .window_ns = 0, .delay_ns = kSec});
  for (int i = 1; i <= 3; ++i) {
    RestartDecision d = policy.Decide(i * 1000 * kSec);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.attempt, i);
    EXPECT_EQ(d.delay_ns, kSec);
  }
  EXPECT_FALSE(policy.Decide(100000 * kSec).allowed);
}

TEST(RestartPolicy, ZeroMaxRestartsNeverRestarts) {
  RestartPolicy policy({.max_restarts = 0});
  EXPECT_FALSE(policy.Decide(kSec).allowed);
}

TEST(RestartPolicy, RestartsOlderThanTheWindowExpire) {
  RestartPolicy policy({.max_restarts = 2, .window_ns = 10 * kSec});
  EXPECT_TRUE(policy.Decide(0).allowed);
  EXPECT_TRUE(policy.Decide(5 * kSec).allowed);
  EXPECT_FALSE(policy.Decide(9 * kSec).allowed);
  // A stable run: the window has passed since every earlier restart.
  RestartDecision d = policy.Decide(30 * kSec);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.attempt, 1);
}

TEST(RestartPolicy, BackoffDoublesUpToTheCapAndResetsWithTheWindow) {
  RestartPolicy policy({.max_restarts = 10,
                        .window_ns = 100 * kSec,
                        .delay_ns = kSec,
                        .backoff = true,
                        .backoff_max_ns = 5 * kSec});
  std::vector<int64_t> delays;
  for (int i = 0; i < 5; ++i) delays.push_back(policy.Decide(i * kSec).delay_ns);
  EXPECT_EQ(delays, (std::vector<int64_t>{kSec, 2 * kSec, 4 * kSec, 5 * kSec, 5 * kSec}));
  EXPECT_EQ(policy.Decide(1000 * kSec).delay_ns, kSec);
}

TEST(Options, SecondsAcceptFractionsAndRejectTheRest) {
  EXPECT_EQ(ParseSeconds("0.05"), 0.05);
  EXPECT_EQ(ParseSeconds("30"), 30.0);
  EXPECT_EQ(ParseSeconds("0"), 0.0);
  for (const char* bad : {"", "-1", "abc", "1s", "nan", "inf", "1e10", " 1"}) {
    EXPECT_FALSE(ParseSeconds(bad).has_value()) << bad;
  }
}

TEST(Options, SetOptionValidatesEachKind) {
  Options o;
  EXPECT_FALSE(SetOption(o, "max_restarts", "15"));
  EXPECT_EQ(o.max_restarts, 15);
  EXPECT_TRUE(SetOption(o, "max_restarts", "1.5"));
  EXPECT_TRUE(SetOption(o, "limit_cycles", "0"));
  EXPECT_FALSE(SetOption(o, "restart", "always"));
  EXPECT_EQ(o.restart, RestartMode::kAlways);
  EXPECT_TRUE(SetOption(o, "restart", "never"));
  EXPECT_TRUE(SetOption(o, "max_cpu_percent", "-5"));
  EXPECT_TRUE(SetOption(o, "no_such_key", "1"));
  EXPECT_EQ(FlagName("restart_delay"), "--restart-delay");
  EXPECT_EQ(FlagName("max_memory_mb"), "--max-memory");
}

TEST(InstanceName, DefaultIsTheProgramsBaseNameMadeSafe) {
  EXPECT_EQ(DefaultName("/opt/trader/bin/trader"), "trader");
  EXPECT_EQ(DefaultName("./main.py"), "main.py");
  EXPECT_EQ(DefaultName("my app"), "my_app");
  EXPECT_EQ(DefaultName(".hidden"), "hidden");
  EXPECT_FALSE(CheckName("trader@eu-1"));
  for (const char* bad : {"", ".", "..", "a/b", "a b", ".x"}) EXPECT_TRUE(CheckName(bad)) << bad;
  EXPECT_TRUE(CheckName(std::string(65, 'a')));
  Options o;
  EXPECT_TRUE(SetOption(o, "name", "../x"));
  EXPECT_FALSE(SetOption(o, "name", "trader"));
  EXPECT_EQ(o.name, "trader");
}

// Root's watchdogs live under /run/blackbox, another user's under
// $XDG_RUNTIME_DIR/blackbox or, without it, /tmp/blackbox-UID; an absolute
// $BLACKBOX_STATE_ROOT wins.
TEST(InstanceName, StateRootFollowsTheUserAndTheEnvironment) {
  const char* saved_root = std::getenv("BLACKBOX_STATE_ROOT");
  const std::string keep_root = saved_root != nullptr ? saved_root : "";
  const char* saved_xdg = std::getenv("XDG_RUNTIME_DIR");
  const std::string keep_xdg = saved_xdg != nullptr ? saved_xdg : "";
  ::unsetenv("BLACKBOX_STATE_ROOT");
  ::setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
  const std::string with_xdg = StateRoot();
  ::setenv("XDG_RUNTIME_DIR", "relative", 1);
  const std::string relative_xdg = StateRoot();
  ::unsetenv("XDG_RUNTIME_DIR");
  const std::string without_xdg = StateRoot();
  ::setenv("BLACKBOX_STATE_ROOT", "/srv/wd", 1);
  const std::string overridden = StateRoot();
  ::setenv("BLACKBOX_STATE_ROOT", "srv/wd", 1);
  const std::string relative_override = StateRoot();
  if (saved_root != nullptr) {
    ::setenv("BLACKBOX_STATE_ROOT", keep_root.c_str(), 1);
  } else {
    ::unsetenv("BLACKBOX_STATE_ROOT");
  }
  if (saved_xdg != nullptr) ::setenv("XDG_RUNTIME_DIR", keep_xdg.c_str(), 1);

  EXPECT_EQ(overridden, "/srv/wd");
  if (::geteuid() == 0) {
    EXPECT_EQ(with_xdg, "/run/blackbox");
    EXPECT_EQ(without_xdg, "/run/blackbox");
    EXPECT_EQ(relative_override, "/run/blackbox");
  } else {
    EXPECT_EQ(with_xdg, "/run/user/4242/blackbox");
    const std::string tmp = "/tmp/blackbox-" + std::to_string(::geteuid());
    EXPECT_EQ(relative_xdg, tmp);
    EXPECT_EQ(without_xdg, tmp);
    EXPECT_EQ(relative_override, tmp);
  }
}

class OptionsFile : public ::testing::Test {
 protected:
  blackbox::testing::TempDir dir_;
};

TEST_F(OptionsFile, SavedConfigurationRoundTripsWithMode0600) {
  Options o;
  o.command = {"/usr/bin/app", "with space", "it's \"quoted\"", ""};
  o.restart_delay = 0.05;
  o.max_restarts = 4;
  o.backoff = true;
  o.restart = RestartMode::kAlways;
  o.error_patterns = {"panic", "ERROR|FATAL"};
  o.log_file = "/var/log/app.log";
  o.notify_access = NotifyAccess::kMain;
  const std::string path = dir_ / "watchdog.toml";
  ASSERT_FALSE(SaveOptionsFile(path, o));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Options loaded;
  ASSERT_FALSE(LoadOptionsFile(path, loaded));
  EXPECT_EQ(OptionEntries(loaded), OptionEntries(o));
}

TEST_F(OptionsFile, SeedKeysAreAccepted) {
  const std::string path = dir_ / "seed.toml";
  std::ofstream(path) << "app_script = \"main.py\"\nmax_memory = 2048\nmax_cpu = 85\n"
                         "max_restarts = 15\nrestart_delay = 45\n";
  Options o;
  ASSERT_FALSE(LoadOptionsFile(path, o));
  EXPECT_EQ(o.command, std::vector<std::string>{"main.py"});
  EXPECT_EQ(o.max_memory_mb, 2048);
  EXPECT_EQ(o.max_cpu_percent, 85);
  EXPECT_EQ(o.max_restarts, 15);
  EXPECT_EQ(o.restart_delay, 45);
}

TEST_F(OptionsFile, BadFilesNameTheKeyOrLineAndChangeNothing) {
  const std::string path = dir_ / "bad.toml";
  std::ofstream(path) << "max_restarts = 3\nrestart_delay = \"soon\"\n";
  Options o;
  std::optional<std::string> error = LoadOptionsFile(path, o);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("restart_delay"), std::string::npos) << *error;
  EXPECT_EQ(o.max_restarts, 10);

  std::ofstream(path) << "max_restarts = = 3\n";
  error = LoadOptionsFile(path, o);
  ASSERT_TRUE(error);
  EXPECT_NE(error->find(":1"), std::string::npos) << *error;
}

TEST(Notify, ParsesTheUnderstoodAssignments) {
  NotifyMessage m = ParseNotify("READY=1\nSTATUS=warming up\nWATCHDOG=1\nMAINPID=4\n");
  EXPECT_TRUE(m.ready);
  EXPECT_TRUE(m.watchdog);
  EXPECT_FALSE(m.stopping);
  EXPECT_FALSE(m.watchdog_trigger);
  EXPECT_EQ(m.status, "warming up");
  m = ParseNotify("STOPPING=1");
  EXPECT_TRUE(m.stopping);
  EXPECT_FALSE(m.status);
  EXPECT_TRUE(ParseNotify("WATCHDOG=trigger").watchdog_trigger);
  EXPECT_FALSE(ParseNotify("READY=0\nWATCHDOG=2").ready);
}

class Scanner : public ::testing::Test {
 protected:
  Scanner() {
    std::string error;
    patterns_.push_back(Pattern::Compile("ERROR|FATAL", &error));
  }
  std::vector<std::unique_ptr<Pattern>> patterns_;
  std::vector<std::pair<std::string, uint32_t>> matches_;
  LineScanner::MatchFn collect_ = [this](const LineMatch& m) {
    matches_.emplace_back(std::string(m.line), m.suppressed);
  };
};

TEST_F(Scanner, MatchesLinesSplitAcrossReads) {
  LineScanner scanner(&patterns_);
  scanner.Feed("ok\nsome ERR", 0, collect_);
  scanner.Feed("OR here\r\nfine\nFATAL at end", 0, collect_);
  EXPECT_EQ(matches_.size(), 1u);
  scanner.Finish(0, collect_);
  ASSERT_EQ(matches_.size(), 2u);
  EXPECT_EQ(matches_[0].first, "some ERROR here");
  EXPECT_EQ(matches_[1].first, "FATAL at end");
}

TEST_F(Scanner, RateLimitCountsWhatItDrops) {
  LineScanner scanner(&patterns_, /*per_second=*/2);
  for (int i = 0; i < 5; ++i) scanner.Feed("ERROR\n", kSec, collect_);
  EXPECT_EQ(matches_.size(), 2u);
  EXPECT_EQ(scanner.suppressed(), 3u);
  scanner.Feed("ERROR late\n", 3 * kSec, collect_);
  ASSERT_EQ(matches_.size(), 3u);
  EXPECT_EQ(matches_[2].second, 3u);
  EXPECT_EQ(scanner.suppressed(), 0u);
}

TEST_F(Scanner, OverlongLinesAreMatchedInPieces) {
  LineScanner scanner(&patterns_);
  std::string huge(LineScanner::kMaxLine * 3, 'x');
  huge += "ERROR\n";
  scanner.Feed(huge, 0, collect_);
  ASSERT_EQ(matches_.size(), 1u);
  EXPECT_LE(matches_[0].first.size(), LineScanner::kMaxLine);
}

TEST(Pattern, InvalidExpressionReportsWhy) {
  std::string error;
  EXPECT_EQ(Pattern::Compile("(open", &error), nullptr);
  EXPECT_FALSE(error.empty());
}

}  // namespace
