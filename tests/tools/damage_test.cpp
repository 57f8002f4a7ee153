// The `blackbox` tool on damaged journals: what can be read is shown, what
// cannot is reported on stderr, and the exit status says that something was
// skipped. Damage is done to the real files of a journal the test wrote.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ring_hold_writer.h"
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

// The files of a stream with this extension, oldest (lowest file number) first.
std::vector<std::string> FilesOf(const std::string& stream_dir, const std::string& extension) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(stream_dir)) {
    if (e.path().extension() == extension) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<std::string> TableFiles(const std::string& stream_dir) {
  return FilesOf(stream_dir, ".sst");
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

std::string Key(uint64_t seq) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) k[i] = static_cast<char>(seq >> (56 - 8 * i));
  return k;
}

// Deletes seqs first..last from a stream with RocksDB directly: the gap a
// damaged write-ahead log leaves once a writer has reopened the stream (it
// keeps what came before the damage and numbers on after its high-water mark).
void EraseSeqs(const std::string& stream_path, uint64_t first, uint64_t last) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), stream_path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), stream_path, families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  const std::string from = Key(first), to = Key(last + 1);
  ASSERT_TRUE(db->DeleteRange(rocksdb::WriteOptions(), handles[0], from, to).ok());
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
}

// The first line of `text` holding every one of `parts`, or "".
std::string LineWith(const std::string& text, const std::vector<std::string>& parts) {
  for (const auto& line : Lines(text)) {
    if (std::all_of(parts.begin(), parts.end(),
                    [&](const std::string& p) { return line.find(p) != std::string::npos; })) {
      return line;
    }
  }
  return "";
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

// 8 bytes overwritten in the middle of the app's live write-ahead log (the
// third session's 30 events): RocksDB's point-in-time recovery stops at the
// damaged record and drops every record after it when the stream is opened.
class LogDamageTest : public DamageTest {
 protected:
  void SetUp() override {
    DamageTest::SetUp();
    std::vector<std::string> logs = FilesOf(root_ + "/app", ".log");
    ASSERT_EQ(logs.size(), 1u);
    Overwrite(logs[0], static_cast<off_t>(fs::file_size(logs[0]) / 2), 8);
    ToolResult shown = RunTool({"--journal", root_, "replay", "--json"});
    shown_ = CountStream(shown.out, "app");
    ASSERT_LT(shown_, 3u * kPerRun) << "the damage should hide the log's later records";
    ASSERT_GT(shown_, 2u * kPerRun) << "the log's records before the damage should be read";
  }
  size_t shown_ = 0;  // app events a reader sees
};

TEST_F(LogDamageTest, VerifySaysHowManyRecordsWereDroppedAtOpen) {
  const std::string dropped = std::to_string(3 * kPerRun - shown_);
  ToolResult r = RunTool({"--journal", root_, "verify"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(LineWith(r.out, {"app", dropped + " record(s) dropped at open", ".log"}), "") << r.out;
  // The summary line names the stream and the count too.
  EXPECT_NE(LineWith(r.out, {"DAMAGED", "1 problem(s)", "(app: " + dropped + " record(s) lost)"}),
            "")
      << r.out;
}

TEST_F(LogDamageTest, ReplayAndStateSayRecordsWereLostAndExitOne) {
  const std::string dropped = std::to_string(3 * kPerRun - shown_);
  ToolResult replay = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(replay.exit_code, 1) << replay.err;
  EXPECT_EQ(CountStream(replay.out, "watchdog"), static_cast<size_t>(kWatchdogEvents));
  EXPECT_NE(LineWith(replay.err, {"app", dropped + " record(s) dropped at open", ".log"}), "")
      << replay.err;
  // Told once, not again as a gap in the numbering.
  EXPECT_NE(LineWith(replay.err, {dropped + " damaged record(s) skipped, in 1 place(s)"}), "")
      << replay.err;
  ToolResult state = RunTool({"--journal", root_, "state"});
  EXPECT_EQ(state.exit_code, 1) << state.err;
  EXPECT_NE(LineWith(state.err, {"app", dropped + " record(s) dropped at open"}), "") << state.err;
}

TEST_F(DamageTest, VerifyReportsAGapWithItsSeqsAndCount) {
  EraseSeqs(root_ + "/app", 40, 45);
  ToolResult r = RunTool({"--journal", root_, "verify"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(LineWith(r.out, {"app seq 40", "sequence gap: seqs 40..45 are missing (6 record(s))"}),
            "")
      << r.out;
  EXPECT_NE(LineWith(r.out, {"DAMAGED", "1 problem(s)", "app: 6 record(s) lost"}), "") << r.out;
}

TEST_F(DamageTest, ReplayAndStateReportAGapAndExitOne) {
  EraseSeqs(root_ + "/app", 40, 45);
  ToolResult replay = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(replay.exit_code, 1) << replay.err;
  EXPECT_EQ(CountStream(replay.out, "app"), 3u * kPerRun - 6);
  EXPECT_NE(LineWith(replay.err, {"app seq 40", "seqs 40..45 are missing"}), "") << replay.err;
  EXPECT_NE(LineWith(replay.err, {"6 damaged record(s) skipped"}), "") << replay.err;
  ToolResult state = RunTool({"--journal", root_, "state"});
  EXPECT_EQ(state.exit_code, 1) << state.err;
  EXPECT_NE(LineWith(state.err, {"app seq 40", "seqs 40..45 are missing"}), "") << state.err;
}

// A stream whose CURRENT (the name of its MANIFEST) is cut short cannot be
// opened at all; the other streams are still read.
TEST_F(DamageTest, AStreamThatCannotBeOpenedIsNamedAndTheOthersRead) {
  ASSERT_EQ(truncate((root_ + "/watchdog/CURRENT").c_str(), 3), 0);
  ToolResult replay = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(replay.exit_code, 1) << replay.err;
  EXPECT_EQ(CountStream(replay.out, "app"), 3u * kPerRun) << replay.err;
  EXPECT_NE(LineWith(replay.err, {"watchdog", "cannot open the stream"}), "") << replay.err;
  ToolResult state = RunTool({"--journal", root_, "state"});
  EXPECT_EQ(state.exit_code, 1) << state.err;
  EXPECT_NE(LineWith(state.err, {"watchdog", "cannot open the stream"}), "") << state.err;
  EXPECT_NE(LineWith(state.out, {"events", std::to_string(3 * kPerRun)}), "") << state.out;
}

TEST_F(DamageTest, VerifyNamesAStreamWhoseManifestIsTruncated) {
  std::vector<std::string> manifests;
  for (const auto& e : fs::directory_iterator(root_ + "/watchdog")) {
    if (e.path().filename().string().starts_with("MANIFEST-")) manifests.push_back(e.path());
  }
  ASSERT_EQ(manifests.size(), 1u);
  ASSERT_EQ(truncate(manifests[0].c_str(), 10), 0);
  ToolResult r = RunTool({"--journal", root_, "verify"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(LineWith(r.out, {"watchdog: cannot open the stream"}), "") << r.out;
  EXPECT_NE(LineWith(r.out, {"DAMAGED", std::to_string(3 * kPerRun) + " records in 2 streams",
                             "watchdog: unreadable"}),
            "")
      << r.out;
}

// What a crash in the middle of a write leaves: not damage, nothing to report.
TEST_F(DamageTest, ATornLastLogRecordIsNotReported) {
  std::vector<std::string> logs = FilesOf(root_ + "/app", ".log");
  ASSERT_EQ(logs.size(), 1u);
  ASSERT_EQ(truncate(logs[0].c_str(), static_cast<off_t>(fs::file_size(logs[0]) - 5)), 0);
  ToolResult verify = RunTool({"--journal", root_, "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  ToolResult replay = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_EQ(CountStream(replay.out, "app"), 3u * kPerRun - 1);
}

TEST_F(DamageTest, AnIntactJournalExitsZero) {
  ToolResult r = RunTool({"--journal", root_, "replay", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CountStream(r.out, "app"), 3u * kPerRun);
  EXPECT_TRUE(r.err.empty()) << r.err;
}

// The write-ahead log files of a stream.
std::vector<std::string> LogFiles(const std::string& stream_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(stream_dir)) {
    if (e.path().extension() == ".log") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct WriterRun {
  int exit_code = -1;
  std::vector<uint64_t> seqs;  // acknowledged
  std::vector<std::string> warnings;
  std::string err;
};

// Runs tools_test_writer (a separate process) for `count` events.
WriterRun RunWriter(const std::string& root, const std::string& stream, int count) {
  ::blackbox::testing::RunOptions options;
  options.timeout = kToolTimeout;
  auto r = ::blackbox::testing::RunProcess(
      {TOOLS_TEST_WRITER, root, stream, std::to_string(count), "0", "--print-seqs"}, options);
  WriterRun run;
  run.exit_code = r.exit_code;
  run.err = r.err;
  for (const auto& line : Lines(r.out)) {
    if (line.rfind("seq ", 0) == 0) run.seqs.push_back(std::stoull(line.substr(4)));
    if (line.rfind("warning ", 0) == 0) run.warnings.push_back(line.substr(8));
  }
  return run;
}

// 8 bytes corrupted in the middle of the log: RocksDB keeps the records
// before the damage and drops the rest, so the highest seq on disk goes back.
// The next writer must still number above every seq it acknowledged before.
TEST(DamagedLog, NextWriterNeverReusesASequenceNumber) {
  TempDir dir;
  const std::string root = dir.path() + "/j";
  WriterRun first = RunWriter(root, "app", 300);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(first.seqs.size(), 300u);
  std::vector<std::string> logs = LogFiles(root + "/app");
  ASSERT_EQ(logs.size(), 1u);
  const auto size = fs::file_size(logs[0]);
  Overwrite(logs[0], static_cast<off_t>(size / 2), 8);

  WriterRun second = RunWriter(root, "app", 50);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  ASSERT_EQ(second.seqs.size(), 50u);
  const uint64_t highest_before = *std::max_element(first.seqs.begin(), first.seqs.end());
  EXPECT_GT(*std::min_element(second.seqs.begin(), second.seqs.end()), highest_before);
  // The writer says what it found.
  ASSERT_EQ(second.warnings.size(), 1u);
  EXPECT_NE(second.warnings[0].find("damaged"), std::string::npos) << second.warnings[0];

  // And again: a third writer on the repaired stream continues without a gap
  // and still above everything acknowledged.
  WriterRun third = RunWriter(root, "app", 10);
  ASSERT_EQ(third.exit_code, 0) << third.err;
  ASSERT_EQ(third.seqs.size(), 10u);
  EXPECT_EQ(third.seqs.front(), second.seqs.back() + 1);
  EXPECT_TRUE(third.warnings.empty());
}

// After the jump, readers count as lost only the records the damaged log
// held: the numbers reserved ahead and never given out are not losses.
// A read-only view can see records past the damage (RocksDB resumes after
// the damaged block): the ones missing between are told once, as dropped at
// open, not a second time as a gap in the numbering.
TEST(DamagedLog, RecordsDroppedAtOpenAreCountedOnce) {
  TempDir dir;
  const std::string root = dir.path() + "/j";
  WriterRun first = RunWriter(root, "app", 300);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::vector<std::string> logs = LogFiles(root + "/app");
  ASSERT_EQ(logs.size(), 1u);
  Overwrite(logs[0], static_cast<off_t>(fs::file_size(logs[0]) / 2), 8);
  ToolResult replay = RunTool({"--journal", root, "replay", "--json"});
  EXPECT_EQ(replay.exit_code, 1) << replay.err;
  const size_t visible = CountStream(replay.out, "app");
  ASSERT_LT(visible, 300u);
  const std::string lost = std::to_string(300 - visible);
  EXPECT_NE(LineWith(replay.err, {lost + " damaged record(s) skipped, in 1 place(s)"}), "")
      << replay.err;
  ToolResult r = RunTool({"--journal", root, "verify"});
  EXPECT_NE(LineWith(r.out, {"DAMAGED", "1 problem(s)", "(app: " + lost + " record(s) lost)"}), "")
      << r.out;
}

TEST(DamagedLog, TheGapAfterTheJumpCountsOnlyTheRecordsTheLogLost) {
  TempDir dir;
  const std::string root = dir.path() + "/j";
  WriterRun first = RunWriter(root, "app", 300);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::vector<std::string> logs = LogFiles(root + "/app");
  ASSERT_EQ(logs.size(), 1u);
  Overwrite(logs[0], static_cast<off_t>(fs::file_size(logs[0]) / 2), 8);

  WriterRun second = RunWriter(root, "app", 50);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  ToolResult replay = RunTool({"--journal", root, "replay", "--json"});
  EXPECT_EQ(replay.exit_code, 1) << replay.err;
  size_t kept = 0;  // the first run's records still there
  for (const auto& line : Lines(replay.out)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("seq", uint64_t{0}) <= 300) ++kept;
  }
  ASSERT_LT(kept, 300u) << "the damage should have cost records";
  ASSERT_GT(kept, 0u);
  const std::string lost = std::to_string(300 - kept);
  EXPECT_NE(LineWith(replay.err, {lost + " damaged record(s) skipped"}), "") << replay.err;

  ToolResult r = RunTool({"--journal", root, "verify"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(LineWith(r.out, {"DAMAGED", "app: " + lost + " record(s) lost"}), "") << r.out;
  EXPECT_NE(LineWith(r.out, {"sequence gap", "(" + lost + " record(s)", "never given out"}), "")
      << r.out;
}

// Where what was written to a file ends: after its last non-zero byte (a
// killed writer's log is preallocated and ends in zeros).
uint64_t WrittenEnd(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t last = bytes.find_last_not_of('\0');
  return last == std::string::npos ? 0 : last + 1;
}

// A ring-mode writer killed with 50 events still in its ring, its log then
// damaged: the next writer ingests them under their seqs, inside the range
// the damaged open found never given out. Records of them lost afterwards
// are counted as lost, not as numbers never given out.
TEST(DamagedLog, RingEventsIngestedAfterTheDamageAreCountedWhenLost) {
  TempDir dir;
  const std::string root = dir.path() + "/j";
  {
    ::blackbox::testing::RunOptions options;
    options.env = ToolEnvironment();
    ::blackbox::testing::RingHoldWriter writer(RING_HOLD_CHILD, root, "app", "held", options);
    ASSERT_EQ(writer.Command("release"), 0u);
    ASSERT_EQ(writer.Command("D 300"), 300u);  // drained and synced: in the log
    ASSERT_EQ(writer.Command("hold"), 0u);
    ASSERT_EQ(writer.Append(50), 350u);  // in the ring only
    writer.Kill();
  }
  std::vector<std::string> logs = LogFiles(root + "/app");
  ASSERT_EQ(logs.size(), 1u);
  const uint64_t end = WrittenEnd(logs[0]);
  ASSERT_GT(end, 0u);
  Overwrite(logs[0], static_cast<off_t>(end / 2), 8);

  WriterRun next = RunWriter(root, "app", 10);
  ASSERT_EQ(next.exit_code, 0) << next.err;
  ASSERT_EQ(next.seqs.size(), 10u);
  EXPECT_GT(next.seqs.front(), 350u);
  ASSERT_EQ(next.warnings.size(), 2u) << next.err;
  EXPECT_NE(next.warnings[0].find("damaged"), std::string::npos) << next.warnings[0];
  EXPECT_NE(next.warnings[1].find("held 50 event(s)"), std::string::npos) << next.warnings[1];

  // The damage cost some of 1..300; 301..350 came from the ring.
  ToolResult replay = RunTool({"--journal", root, "replay", "--json"});
  size_t kept = 0, from_ring = 0;
  for (const auto& line : Lines(replay.out)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    const uint64_t seq = j.value("seq", uint64_t{0});
    if (seq >= 1 && seq <= 300) ++kept;
    if (seq >= 301 && seq <= 350) ++from_ring;
  }
  ASSERT_LT(kept, 300u) << "the damage should have cost records";
  ASSERT_EQ(from_ring, 50u) << replay.err;

  EraseSeqs(root + "/app", 320, 330);
  ToolResult r = RunTool({"--journal", root, "verify"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(LineWith(r.out, {"seqs 320..330 are missing (11 record(s)"}), "") << r.out;
  const std::string lost = std::to_string(300 - kept + 11);
  EXPECT_NE(LineWith(r.out, {"DAMAGED", "app: " + lost + " record(s) lost"}), "") << r.out;
}

// Without damage, a restart continues right after the last event: the
// reservation ahead never shows as a gap.
TEST(DamagedLog, RestartWithoutDamageLeavesNoGap) {
  TempDir dir;
  const std::string root = dir.path() + "/j";
  WriterRun first = RunWriter(root, "app", 20);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  WriterRun second = RunWriter(root, "app", 5);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  ASSERT_FALSE(second.seqs.empty());
  EXPECT_EQ(second.seqs.front(), first.seqs.back() + 1);
  EXPECT_TRUE(second.warnings.empty());
  EXPECT_TRUE(fs::exists(root + "/app/HIGH_WATER"));
}

}  // namespace
}  // namespace blackbox::tools::testing
