// The promise at the top of schemas/events.fbs: a journal written by an older
// build stays readable. tests/fixtures/v1-journal.tar.gz holds a journal that
// the demo's tour wrote under the watchdog (a segfault, an uncaught exception,
// a hang, a memory stop) with the build of the schema before its first
// appended field; beside it, what the tools printed for it at that time.
//
// How the goldens are compared: a JSON golden must be contained in what the
// tool prints now, key by key and element by element (every key of the golden
// present with an equal value; arrays the same length). New keys may be added
// to the output; nothing the old tools printed may change or go. `verify` is
// compared line by line, exactly.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

using nlohmann::json;

// Every key of `golden` is in `actual` with a value that contains it.
::testing::AssertionResult Contains(const json& golden, const json& actual,
                                    const std::string& where) {
  if (golden.is_object()) {
    if (!actual.is_object()) return ::testing::AssertionFailure() << where << ": not an object";
    for (const auto& [key, value] : golden.items()) {
      if (!actual.contains(key))
        return ::testing::AssertionFailure() << where << "." << key << " gone";
      auto r = Contains(value, actual[key], where + "." + key);
      if (!r) return r;
    }
    return ::testing::AssertionSuccess();
  }
  if (golden.is_array()) {
    if (!actual.is_array() || actual.size() != golden.size()) {
      return ::testing::AssertionFailure() << where << ": array changed: " << actual.dump();
    }
    for (size_t i = 0; i < golden.size(); ++i) {
      auto r = Contains(golden[i], actual[i], where + "[" + std::to_string(i) + "]");
      if (!r) return r;
    }
    return ::testing::AssertionSuccess();
  }
  if (golden != actual) {
    return ::testing::AssertionFailure()
           << where << ": was " << golden.dump() << ", now " << actual.dump();
  }
  return ::testing::AssertionSuccess();
}

class OldJournal : public ::testing::Test {
 protected:
  void SetUp() override {
    ::blackbox::testing::RunOptions quiet;
    auto untar = ::blackbox::testing::RunProcess(
        {"/bin/tar", "-xzf", std::string(FIXTURES_DIR) + "/v1-journal.tar.gz", "-C", dir_.path()},
        quiet);
    ASSERT_EQ(untar.exit_code, 0) << untar.err;
  }
  ToolResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--journal", dir_ / "journal"});
    return RunTool(args);
  }
  static std::string Golden(const std::string& name) {
    return ReadFile(std::string(FIXTURES_DIR) + "/v1-journal/" + name);
  }
  // Each line of the golden contained in the same line of the output.
  void ExpectLinesContained(const std::string& golden, const ToolResult& now) {
    ASSERT_EQ(now.exit_code, 0) << now.err;
    std::vector<std::string> want = Lines(golden);
    std::vector<std::string> got = Lines(now.out);
    ASSERT_FALSE(want.empty());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_TRUE(
          Contains(json::parse(want[i]), json::parse(got[i]), "line " + std::to_string(i + 1)));
    }
  }
  TempDir dir_;
};

TEST_F(OldJournal, ReplayPrintsEveryEventAsTheOldToolsDid) {
  ExpectLinesContained(Golden("replay.jsonl"), Run({"replay", "--json"}));
}

TEST_F(OldJournal, StateFoldsToTheSameState) {
  ToolResult now = Run({"state", "--json"});
  ASSERT_EQ(now.exit_code, 0) << now.err;
  EXPECT_TRUE(Contains(json::parse(Golden("state.json")), json::parse(now.out), "state"));
}

// The old tools listed every crash record (the app's capture and the
// watchdog's observation of the same death were two lines); today's list one
// incident per death. Each old line must be a source of exactly one incident,
// and when it is the incident's main record, its old JSON is contained in the
// incident's "crash".
TEST_F(OldJournal, CrashesListsEveryOldCrashRecordInOneIncident) {
  ToolResult now = Run({"crashes", "--json"});
  ASSERT_EQ(now.exit_code, 0) << now.err;
  std::vector<json> incidents;
  for (const auto& line : Lines(now.out)) incidents.push_back(json::parse(line));
  std::vector<std::string> reasons;
  for (const auto& i : incidents) reasons.push_back(i["reason"]);
  EXPECT_EQ(reasons, (std::vector<std::string>{"segfault", "terminate", "hang", "memory"}));
  std::vector<std::string> old = Lines(Golden("crashes.jsonl"));
  ASSERT_EQ(old.size(), 6u);
  for (const auto& line : old) {
    json crash = json::parse(line);
    int holders = 0;
    for (const auto& i : incidents) {
      for (const auto& src : i["sources"]) {
        if (src["stream"] != crash["stream"] || src["seq"] != crash["seq"]) continue;
        ++holders;
        if (i["crash"]["seq"] == crash["seq"] && i["crash"]["stream"] == crash["stream"]) {
          EXPECT_TRUE(Contains(crash, i["crash"], "crash"));
        }
      }
    }
    EXPECT_EQ(holders, 1) << line;
  }
}

// crashes --group over the same journal: one row per signature, the counts
// adding up to the incidents that have one, each example one of them; and
// --signature lists exactly the incidents a row counts.
TEST_F(OldJournal, GroupCountsAddUpToTheIncidentsWithASignature) {
  ToolResult list = Run({"crashes", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::map<std::string, int> want;
  std::map<int, std::string> by_number;
  for (const auto& line : Lines(list.out)) {
    json i = json::parse(line);
    ASSERT_TRUE(i.contains("signature"));
    if (i["signature"].is_null()) continue;
    ++want[i["signature"]];
    by_number[i["number"]] = i["signature"];
  }
  ASSERT_FALSE(want.empty());
  ToolResult group = Run({"crashes", "--group", "--json"});
  ASSERT_EQ(group.exit_code, 0) << group.err;
  std::map<std::string, int> got;
  for (const auto& line : Lines(group.out)) {
    json g = json::parse(line);
    std::string sig = g["signature"];
    EXPECT_EQ(got.count(sig), 0u) << "two rows for " << sig;
    got[sig] = g["count"];
    EXPECT_EQ(by_number[g["example"]], sig);
    ToolResult only = Run({"crashes", "--json", "--signature", sig});
    ASSERT_EQ(only.exit_code, 0) << only.err;
    EXPECT_EQ(static_cast<int>(Lines(only.out).size()), g["count"].get<int>());
  }
  EXPECT_EQ(got, want);
}

TEST_F(OldJournal, VerifyFindsItIntact) {
  ToolResult now = Run({"verify"});
  EXPECT_EQ(now.exit_code, 0) << now.err;
  EXPECT_EQ(Lines(now.out), Lines(Golden("verify.txt")));
}

}  // namespace
}  // namespace blackbox::tools::testing
