// The `blackbox` tool on damaged journals: what can be read is shown, what
// cannot is reported on stderr, and the exit status says that something was
// skipped. Damage is done to the real files of a journal the test wrote.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kPerRun = 30;  // app events per writer session
constexpr int kWatchdogEvents = 20;

// Three writer sessions on "app" (each reopen flushes the previous session's
// WAL into a table file: two .sst files and a live WAL) and one on "watchdog".
void WriteJournal(const std::string& root) {
  for (int run = 0; run < 3; ++run) {
    AppendHealthEvents(root, "app", kPerRun, kT0 + run * kSec);
  }
  AppendHealthEvents(root, "watchdog", kWatchdogEvents, kT0 + 10 * kSec);
}

// The table files of a stream, oldest (lowest file number) first.
std::vector<std::string> TableFiles(const std::string& stream_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(stream_dir)) {
    if (e.path().extension() == ".sst") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Overwrite(const std::string& path, off_t offset, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekp(offset);
  std::string junk(n, '\xff');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  ASSERT_TRUE(f) << path;
}

size_t CountStream(const std::string& replay_json, const std::string& stream) {
  size_t n = 0;
  for (const auto& line : Lines(replay_json)) {
    if (line.find("\"stream\":\"" + stream + "\"") != std::string::npos) ++n;
  }
  return n;
}

class DamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/j";
    WriteJournal(root_);
    tables_ = TableFiles(root_ + "/app");
    ASSERT_EQ(tables_.size(), 2u) << "the journal should hold two app table files";
  }
  TempDir dir_;
  std::string root_;
  std::vector<std::string> tables_;
};

TEST_F(DamageTest, ReplaySkipsADamagedBlockAndExitsOne) {
  Overwrite(tables_.front(), 600, 12);  // inside the file's first data block
  ToolResult r = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  // The damaged file's events are lost; the other file, the WAL and the other
  // stream are all shown.
  EXPECT_EQ(CountStream(r.out, "app"), 2u * kPerRun) << r.err;
  EXPECT_EQ(CountStream(r.out, "watchdog"), static_cast<size_t>(kWatchdogEvents));
  EXPECT_NE(r.err.find(fs::path(tables_.front()).filename().string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("damaged record(s) skipped"), std::string::npos) << r.err;
}

TEST_F(DamageTest, ReplaySkipsATruncatedTableFile) {
  ASSERT_EQ(truncate(tables_.back().c_str(), 1000), 0);
  ToolResult r = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(CountStream(r.out, "app"), 2u * kPerRun) << r.err;
  EXPECT_EQ(CountStream(r.out, "watchdog"), static_cast<size_t>(kWatchdogEvents)) << r.err;
}

TEST_F(DamageTest, StateExitsOneWhenItSkippedDamage) {
  Overwrite(tables_.front(), 600, 12);
  ToolResult r = RunTool({"--journal", root_, "state"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("damaged record(s) skipped"), std::string::npos) << r.err;
}

TEST_F(DamageTest, AnIntactJournalExitsZero) {
  ToolResult r = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CountStream(r.out, "app"), 3u * kPerRun);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

}  // namespace
}  // namespace blackbox::tools::testing
