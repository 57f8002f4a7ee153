// The habits journalctl users bring to `blackbox replay`: -r, -p, --pid, -o,
// --utc, run against the real binary on the fixture journal.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

using nlohmann::json;

class ReplayOptions : public ::testing::Test {
 protected:
  void SetUp() override { WriteFixtureJournal(root()); }
  std::string root() const { return dir_ / "journal"; }
  ToolResult Run(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {"--journal", root()});
    return RunTool(args, "", env);
  }
  std::vector<json> Events(std::vector<std::string> args) {
    args.insert(args.begin(), {"replay", "-o", "json"});
    ToolResult r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> out;
    for (const auto& line : Lines(r.out)) out.push_back(json::parse(line));
    return out;
  }
  TempDir dir_;
};

TEST_F(ReplayOptions, ReverseIsNewestFirstAndWithLinesTheNewestN) {
  std::vector<json> forward = Events({});
  std::vector<json> reverse = Events({"-r"});
  ASSERT_EQ(forward.size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  std::reverse(forward.begin(), forward.end());
  EXPECT_EQ(reverse, forward);

  std::vector<json> newest = Events({"--reverse", "-n", "2"});
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0], forward[0]);  // the watchdog's stop, the very last event
  EXPECT_EQ(newest[1], forward[1]);
  EXPECT_EQ(newest[0]["stream"], "watchdog");
  EXPECT_EQ(newest[1]["stream"], "app");

  ToolResult follow = Run({"replay", "-r", "-f"});
  EXPECT_EQ(follow.exit_code, 2);
  EXPECT_NE(follow.err.find("--reverse"), std::string::npos) << follow.err;
}

TEST_F(ReplayOptions, PriorityShowsThatSeverityAndEveryMoreSevereOne) {
  auto severities = [](const std::vector<json>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e["severity"]);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  };
  std::vector<json> err = Events({"-p", "err"});
  EXPECT_EQ(err.size(), 5u);  // 2 errors, 2 crashes, the failed cleanup
  EXPECT_EQ(severities(err), (std::vector<std::string>{"critical", "error"}));
  EXPECT_EQ(Events({"--priority", "error"}), err);
  EXPECT_EQ(Events({"-p", "3"}), err);  // syslog's number for err

  std::vector<json> warning = Events({"-p", "warning"});
  EXPECT_EQ(warning.size(), 9u);
  EXPECT_EQ(severities(warning), (std::vector<std::string>{"critical", "error", "warning"}));
  EXPECT_EQ(Events({"-p", "crit"}).size(), 2u);
  EXPECT_EQ(Events({"-p", "debug"}).size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  EXPECT_EQ(severities(Events({"-p", "warning..err"})),
            (std::vector<std::string>{"error", "warning"}));

  ToolResult bad = Run({"replay", "-p", "loud"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_NE(bad.err.find("unknown priority 'loud'"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("debug, info, warning, error, critical"), std::string::npos) << bad.err;
}

TEST_F(ReplayOptions, PidShowsTheEventsThatProcessWrote) {
  std::vector<json> first_run = Events({"--pid", "4242"});
  EXPECT_EQ(first_run.size(), 9u);
  for (const auto& e : first_run) EXPECT_EQ(e["pid"], 4242) << e;
  EXPECT_EQ(Events({"--pid", "100"}).size(), size_t{kFixtureWatchdogEvents});
  EXPECT_EQ(Events({"--pid", "4242", "--pid", "100"}).size(), 9u + kFixtureWatchdogEvents);
  EXPECT_TRUE(Events({"--pid", "1"}).empty());
  EXPECT_EQ(Run({"replay", "--pid", "x"}).exit_code, 2);
}

TEST_F(ReplayOptions, OutputFormats) {
  ToolResult json_lines = Run({"replay", "-o", "json"});
  ToolResult json_flag = Run({"replay", "--json"});
  ASSERT_EQ(json_lines.exit_code, 0) << json_lines.err;
  EXPECT_EQ(json_lines.out, json_flag.out);  // --json is -o json

  ToolResult cat = Run({"replay", "-o", "cat", "--type", "error"});
  ASSERT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_EQ(cat.out,
            "order_execution: std::invalid_argument: price out of range: \"-1.5\"\n"
            "data_processing: std::out_of_range: map::at: 'bid'\n");

  ToolResult pretty = Run({"replay", "--output", "json-pretty"});
  ASSERT_EQ(pretty.exit_code, 0) << pretty.err;
  std::vector<json> objects;
  std::string object;
  for (const auto& line : Lines(pretty.out)) {
    object += line + "\n";
    if (line == "}") {
      objects.push_back(json::parse(object));
      object.clear();
    }
  }
  EXPECT_EQ(object, "");
  std::vector<json> compact = Events({});
  EXPECT_EQ(objects, compact);
  EXPECT_GT(Lines(pretty.out).size(), compact.size() * 5);  // one field a line

  ToolResult bad = Run({"replay", "-o", "verbose"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("short, json, json-pretty, cat"), std::string::npos) << bad.err;
  ToolResult both = Run({"replay", "--json", "-o", "cat"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("--json"), std::string::npos) << both.err;
}

TEST_F(ReplayOptions, UtcShowsTimesInUtcWhateverTheLocalZone) {
  const std::vector<std::string> tokyo{"TZ=JST-9"};
  ToolResult local = Run({"replay", "-n", "1", "--stream", "watchdog"}, tokyo);
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_EQ(local.out.rfind("2026-01-15 19:30:40.100 ", 0), 0u) << local.out;
  ToolResult utc = Run({"replay", "-n", "1", "--stream", "watchdog", "--utc"}, tokyo);
  ASSERT_EQ(utc.exit_code, 0) << utc.err;
  EXPECT_EQ(utc.out.rfind("2026-01-15 10:30:40.100 ", 0), 0u) << utc.out;
}

// The fixture's one incident: the segfault of 10:30:04.950 (the in-process
// capture, app seq 11, its main record), which the watchdog saw at 10:30:05.000
// (watchdog seq 5).
TEST_F(ReplayOptions, CrashesTakeSinceAndUntilAndKeepTheirNumbers) {
  ToolResult late = Run({"crashes", "--since", "2026-01-15T10:30:04.990Z"});
  ASSERT_EQ(late.exit_code, 0) << late.err;
  EXPECT_NE(late.out.find("no crashes"), std::string::npos) << late.out;

  ToolResult early = Run({"crashes", "--until", "2026-01-15 10:30:04.990", "--json"});
  ASSERT_EQ(early.exit_code, 0) << early.err;
  ASSERT_EQ(Lines(early.out).size(), 1u) << early.out;
  EXPECT_EQ(nlohmann::json::parse(early.out)["number"], 1);

  ToolResult by_seq = Run({"crashes", "--since", "app:11", "--until", "app:11", "--json"});
  ASSERT_EQ(by_seq.exit_code, 0) << by_seq.err;
  ASSERT_EQ(Lines(by_seq.out).size(), 1u) << by_seq.out;
  EXPECT_EQ(nlohmann::json::parse(by_seq.out)["crash"]["origin"], "signal");

  ToolResult none = Run({"crashes", "--since", "today"});  // the fixture is from January
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.out.find("no crashes"), std::string::npos) << none.out;

  ToolResult swapped = Run({"crashes", "--since", "today", "--until", "yesterday"});
  EXPECT_EQ(swapped.exit_code, 2);
  EXPECT_NE(swapped.err.find("--since today is after --until yesterday"), std::string::npos)
      << swapped.err;
  ToolResult bad = Run({"crashes", "--since", "last tuesday"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("cannot parse time 'last tuesday'"), std::string::npos) << bad.err;

  // `crashes show N` goes on working, with the numbers the list shows.
  ToolResult show = Run({"crashes", "show", "1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(show.out.rfind("crash 1 of 1: segfault\n", 0), 0u) << show.out;
}

TEST_F(ReplayOptions, ReplayTakesTimeWords) {
  // Every event of the fixture is from before today, and after a year ago.
  ToolResult today = Run({"replay", "--since", "today"});
  ASSERT_EQ(today.exit_code, 0) << today.err;
  EXPECT_EQ(today.out, "");
  ToolResult all = Run({"replay", "--since", "-52weeks", "--until", "+5min"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(Lines(all.out).size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  ToolResult before_today = Run({"replay", "--until", "yesterday", "-o", "cat", "-n", "1"});
  ASSERT_EQ(before_today.exit_code, 0) << before_today.err;
  EXPECT_EQ(before_today.out, "stopped: shutdown\n");
}

}  // namespace
}  // namespace blackbox::tools::testing
