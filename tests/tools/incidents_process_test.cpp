// The demo's tour under the real watchdog: every death is one incident with
// its reason, and a SIGKILL from outside is one more, of reason "unclean".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <thread>

#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

using nlohmann::json;

class TourIncidents : public ::testing::Test {
 protected:
  std::vector<json> Json(std::vector<std::string> args) {
    args.insert(args.begin(), {"--journal", dir_ / "journal"});
    ToolResult r = RunTool(args);
    std::vector<json> out;
    if (r.exit_code != 0) return out;
    for (const auto& line : Lines(r.out)) out.push_back(json::parse(line));
    return out;
  }
  // Waits (at most 60 s) for a watchdog restart that `match` accepts; its new pid.
  int WaitForRestart(const std::function<bool(const json&)>& match) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      for (const json& r :
           Json({"replay", "--json", "--type", "restart", "--stream", "watchdog"})) {
        if (match(r)) return r["child_pid"];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 0;
  }
  TempDir dir_;
};

TEST_F(TourIncidents, EachDeathIsOneIncidentWithItsReason) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The tour's memory limit (80 MB) is below what a sanitized demo holds at
  // rest, so its hang run is stopped for memory before it hangs.
  GTEST_SKIP() << "the tour's memory limit does not hold under a sanitizer";
#endif
  ::blackbox::testing::RunOptions options;
  options.extra_env = {"BLACKBOX_JOURNAL=" + (dir_ / "journal")};
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  ASSERT_GE(null, 0);
  pid_t watchdog = ::blackbox::testing::StartProcess(
      {// In the scratch directory: the demo writes its system_state.json there.
       "/usr/bin/env",
       "-C",
       dir_.path(),
       BLACKBOX_WATCHDOG_BIN,
       "--state-dir",
       dir_ / "wd",
       "--restart-delay",
       "0.2",
       "--max-restarts",
       "10",
       "--watchdog-timeout",
       "2",
       "--stop-timeout",
       "1",
       "--health-check-interval",
       "0.3",
       "--max-memory",
       "80",
       "--limit-cycles",
       "2",
       "--",
       BLACKBOX_DEMO_BIN,
       "--tour",
       "--interval-ms",
       "50"},
      options, null, null, null);
  close(null);
  int leaking = WaitForRestart([](const json& r) { return r["reason"] == "memory"; });
  ASSERT_NE(leaking, 0);
  // The next run leaks too; kill it from outside before its limit does.
  ASSERT_EQ(kill(leaking, SIGKILL), 0);
  EXPECT_NE(WaitForRestart([](const json& r) { return r["signal"] == SIGKILL; }), 0);
  ::blackbox::testing::RunProcess({BLACKBOX_WATCHDOG_BIN, "--stop", "--state-dir", dir_ / "wd"});
  int status = 0;
  ASSERT_EQ(waitpid(watchdog, &status, 0), watchdog);

  std::vector<json> incidents = Json({"crashes", "--json"});
  std::vector<std::string> reasons;
  for (const auto& i : incidents) reasons.push_back(i["reason"]);
  EXPECT_EQ(reasons,
            (std::vector<std::string>{"segfault", "terminate", "hang", "memory", "unclean"}));
  ASSERT_EQ(incidents.size(), 5u);
  EXPECT_EQ(incidents[4]["pid"], leaking);
  // The app captured the first three: their incidents carry its frames.
  for (size_t n = 0; n < 3; ++n) EXPECT_FALSE(incidents[n]["frames"].empty()) << n;
  EXPECT_EQ(incidents[1]["exception_type"], "std::logic_error");

  ToolResult newest = RunTool({"--journal", dir_ / "journal", "crashes", "show", "-1", "--json"});
  ASSERT_EQ(newest.exit_code, 0) << newest.err;
  EXPECT_EQ(json::parse(newest.out)["reason"], "unclean");
}

// Two builds of one program, the second with a function added above the
// crashing one: a crash in the same function is one signature seen in both
// builds; a crash in another function is another signature.
TEST_F(TourIncidents, ASignatureOutlivesARebuildThatMovesCode) {
  const std::string journal = dir_ / "journal";
  // The signal a run died of (0 when it exited 0, -1 otherwise).
  auto run = [&](const char* program, const char* mode) {
    auto r = ::blackbox::testing::RunProcess({program, mode, journal});
    return r.signal != 0 ? r.signal : r.exit_code == 0 ? 0 : -1;
  };
  // Each run journals the crash its predecessor left in the spill.
  EXPECT_EQ(run(SIGNATURE_CRASHER_A, "parse"), SIGSEGV);
  EXPECT_EQ(run(SIGNATURE_CRASHER_B, "parse"), SIGSEGV);
  EXPECT_EQ(run(SIGNATURE_CRASHER_B, "settle"), SIGSEGV);
  EXPECT_EQ(run(SIGNATURE_CRASHER_A, "run"), 0);

  std::vector<json> incidents = Json({"crashes", "--json"});
  ASSERT_EQ(incidents.size(), 3u);
  for (const auto& i : incidents) {
    ASSERT_FALSE(i["frames"].empty()) << i.dump();
    ASSERT_TRUE(i["build_id"].is_string()) << i.dump();
  }
  // The builds really differ, and the frames really moved.
  EXPECT_NE(incidents[0]["build_id"], incidents[1]["build_id"]);
  EXPECT_EQ(incidents[1]["build_id"], incidents[2]["build_id"]);
  // The same function at another source line (and in another module).
  auto line_of = [](const json& frame) {
    std::string f = frame.get<std::string>();
    return f.substr(f.rfind(':') + 1);
  };
  EXPECT_NE(line_of(incidents[0]["frames"][0]), line_of(incidents[1]["frames"][0]));
  EXPECT_NE(incidents[0]["frames"][0].get<std::string>().find("orders::parse_order"),
            std::string::npos)
      << incidents[0]["frames"];
  EXPECT_EQ(incidents[0]["signature"], incidents[1]["signature"]);
  EXPECT_NE(incidents[1]["signature"], incidents[2]["signature"]);

  std::vector<json> groups = Json({"crashes", "--group", "--json"});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0]["signature"], incidents[0]["signature"]);
  EXPECT_EQ(groups[0]["count"], 2);
  EXPECT_EQ(groups[0]["builds"],
            (json::array({incidents[0]["build_id"], incidents[1]["build_id"]})));
  EXPECT_EQ(groups[1]["count"], 1);
  EXPECT_EQ(groups[1]["builds"], json::array({incidents[2]["build_id"]}));
  size_t total = 0;
  for (const auto& g : groups) total += g["count"].get<size_t>();
  EXPECT_EQ(total, incidents.size());
}

// `state` says how the run ended beside its last exit, never the reason of
// a restart that came before it (or, with none, the first reason's name).
// `blackbox state` of a journal left by a watchdog whose child `sh -c
// "exit 3"` failed at once, with no restart allowed.
ToolResult StateAfterAFailedRun(const TempDir& dir) {
  const std::string journal = dir / "journal";
  auto wd = ::blackbox::testing::RunProcess({BLACKBOX_WATCHDOG_BIN, "--state-dir", dir / "wd",
                                             "--journal", journal, "--max-restarts", "0", "--",
                                             "/bin/sh", "-c", "exit 3"});
  EXPECT_EQ(wd.exit_code, 1) << wd.err;
  return RunTool({"--journal", journal, "state"});
}

TEST(StateAfterTheRun, TheLastExitSaysHowTheRunEnded) {
  TempDir dir;
  ToolResult r = StateAfterAFailedRun(dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("last exit      exit 3 (restarts spent: the watchdog gave up)\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("(crash)"), std::string::npos) << r.out;
}

// A journal with no health sample (the watchdog's `sh -c exit 3` is gone
// before its first one) says so, instead of printing zeros as if measured.
TEST(StateAfterTheRun, ARunWithoutAHealthSampleSaysSoInsteadOfZeros) {
  TempDir dir;
  ToolResult r = StateAfterAFailedRun(dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("health         not sampled\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("0.0 MB"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace blackbox::tools::testing
