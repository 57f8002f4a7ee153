// End-to-end tests of the `blackbox` binary on journals written by the tests.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "blackbox/journal.h"
#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

using nlohmann::json;

// Compares with tests/tools/golden/<name>. BLACKBOX_UPDATE_GOLDEN=1 rewrites
// the file instead (review the diff before committing it).
void ExpectMatchesGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(GOLDEN_DIR) + "/" + name;
  if (std::getenv("BLACKBOX_UPDATE_GOLDEN") != nullptr) {
    WriteFile(path, actual);
    return;
  }
  std::string expected = ReadFile(path);
  ASSERT_FALSE(expected.empty()) << "no golden file " << path
                                 << "; run with BLACKBOX_UPDATE_GOLDEN=1 to create it";
  EXPECT_EQ(actual, expected) << "differs from " << path;
}

// One line on stderr, nothing else: how every error must look.
void ExpectOneLineError(const ToolResult& r, int exit_code, const std::string& mentions) {
  EXPECT_EQ(r.exit_code, exit_code) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(mentions), std::string::npos) << r.err;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { WriteFixtureJournal(root()); }
  std::string root() const { return dir_ / "journal"; }
  ToolResult Run(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {"--journal", root()});
    return RunTool(args, "", env);
  }
  TempDir dir_;
};

TEST_F(Cli, ReplayJsonMatchesGolden) {
  ToolResult r = Run({"replay", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(Lines(r.out).size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  ExpectMatchesGolden("replay.jsonl", r.out);
}

TEST_F(Cli, StateJsonMatchesGolden) {
  ToolResult r = Run({"state", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectMatchesGolden("state.json", r.out);
}

TEST_F(Cli, ReplayMergesStreamsInTimeOrder) {
  ToolResult r = Run({"replay", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string previous;
  for (const auto& line : Lines(r.out)) {
    std::string time = json::parse(line)["time"];
    EXPECT_LE(previous, time);  // RFC 3339 UTC with fixed digits sorts as text
    previous = time;
  }
}

TEST_F(Cli, ReplayForPeopleIsOneAlignedLinePerEventInLocalTime) {
  ToolResult r = Run({"replay"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  EXPECT_EQ(lines[0].rfind("2026-01-15 10:30:00.000 watchdog #1 ", 0), 0u) << lines[0];
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << "no colour when stdout is a file";
  // Columns line up: seq and pid start at the same offset on every line.
  for (const auto& line : lines) {
    EXPECT_EQ(line.find(" #"), lines[0].find(" #")) << line;
    EXPECT_EQ(line.find(" pid "), lines[0].find(" pid ")) << line;
  }
}

TEST_F(Cli, ReplayFiltersByTypeStreamTimeAndText) {
  ToolResult errors = Run({"replay", "--json", "--type", "error", "--type", "crash"});
  ASSERT_EQ(errors.exit_code, 0) << errors.err;
  EXPECT_EQ(Lines(errors.out).size(), 4u);  // 2 errors, 2 crashes

  ToolResult wd = Run({"replay", "--json", "--stream", "watchdog"});
  EXPECT_EQ(Lines(wd.out).size(), size_t{kFixtureWatchdogEvents});

  ToolResult window = Run(
      {"replay", "--json", "--since", "2026-01-15T10:30:02Z", "--until", "2026-01-15 10:30:05"});
  std::vector<std::string> lines = Lines(window.out);
  ASSERT_EQ(lines.size(), 6u) << window.out;
  EXPECT_EQ(json::parse(lines.front())["message"], "price out of range: \"-1.5\"");

  ToolResult by_seq = Run({"replay", "--json", "--since", "app:7", "--until", "app:7"});
  ASSERT_EQ(Lines(by_seq.out).size(), 1u) << by_seq.out << by_seq.err;
  EXPECT_EQ(json::parse(by_seq.out)["seq"], 7);

  ToolResult grep = Run({"replay", "--json", "--grep", "BID"});  // capitals: exact case
  EXPECT_EQ(Lines(grep.out).size(), 0u);
  grep = Run({"replay", "--json", "--grep", "bid"});  // lower case: any case
  EXPECT_EQ(Lines(grep.out).size(), 2u) << grep.out;  // the error and the crash's frame

  ToolResult last = Run({"replay", "--json", "-n", "2"});
  lines = Lines(last.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(json::parse(lines[1])["phase"], "stopped");
}

TEST_F(Cli, StateAtTheTimeOfAnErrorShowsThatError) {
  ToolResult now = Run({"state", "--json"});
  ASSERT_EQ(now.exit_code, 0) << now.err;
  std::string first_error = "price out of range: \"-1.5\"";
  EXPECT_EQ(json::parse(now.out)["last_error"], "map::at: 'bid'") << now.out;

  for (std::string at : {"2026-01-15T10:30:02Z", "app:7", "7"}) {
    SCOPED_TRACE(at);
    ToolResult then = Run({"state", "--json", "--at", at});
    ASSERT_EQ(then.exit_code, 0) << then.err;
    json state = json::parse(then.out);
    EXPECT_EQ(state["last_error"], first_error) << then.out;
    EXPECT_EQ(state["error_count"], 1) << then.out;
  }
  // Just before the error, there was none.
  ToolResult before = Run({"state", "--json", "--at", "2026-01-15T10:30:01.999Z"});
  EXPECT_TRUE(json::parse(before.out)["last_error"].is_null()) << before.out;
}

TEST_F(Cli, ExportImportExportIsByteIdentical) {
  std::string first = dir_ / "first.jsonl";
  ToolResult r = Run({"export", "--history", first});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  TempDir copy;
  std::string copy_root = copy / "journal";
  r = RunTool({"--journal", copy_root, "import", first});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::string second = dir_ / "second.jsonl";
  r = RunTool({"--journal", copy_root, "export", "--history", second});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(first).size(), ReadFile(second).size());
  EXPECT_TRUE(ReadFile(first) == ReadFile(second));
  // And the imported journal folds to the same state.
  EXPECT_EQ(RunTool({"--journal", copy_root, "state", "--json"}).out, Run({"state", "--json"}).out);
}

TEST_F(Cli, ExportAsJsonArrayImportsToo) {
  ToolResult r = Run({"export", "--history", "-", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json array = json::parse(r.out);
  ASSERT_EQ(array.size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  WriteFile(dir_ / "history.json", r.out);
  TempDir copy;
  r = RunTool({"--journal", copy / "j", "import", dir_ / "history.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(RunTool({"--journal", copy / "j", "replay", "--json"}).out,
            Run({"replay", "--json"}).out);
}

TEST_F(Cli, ImportRefusesToRenumberUnlessAsked) {
  std::string history = dir_ / "h.jsonl";
  ASSERT_EQ(Run({"export", "--history", history}).exit_code, 0);
  // Importing into the journal it came from would shift every seq.
  ToolResult r = Run({"import", history});
  ExpectOneLineError(r, 2, "--renumber");
  EXPECT_EQ(Lines(Run({"replay", "--json"}).out).size(),
            size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
  r = Run({"import", "--renumber", history});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(Run({"replay", "--json"}).out).size(),
            2 * size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
}

TEST_F(Cli, ImportNamesTheLineOfAMalformedEventAndWritesNothing) {
  std::string history = dir_ / "h.jsonl";
  ASSERT_EQ(Run({"export", "--history", history}).exit_code, 0);
  std::string text = ReadFile(history);
  WriteFile(history, text + "{\"seq\": 99, \"stream\": \"app\", \"type\": \"meteor\"}\n");
  TempDir copy;
  ToolResult r = RunTool({"--journal", copy / "j", "import", history});
  ExpectOneLineError(r, 2, fmt::format(":{}:", kFixtureAppEvents + kFixtureWatchdogEvents + 1));
  EXPECT_FALSE(std::filesystem::exists(copy / "j/app"));
}

TEST_F(Cli, ExportStateWritesTheSeedsFileWithMode0600) {
  std::string path = dir_ / "system_state.json";
  ToolResult r = Run({"export", "--state", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  json state = json::parse(ReadFile(path));
  for (const char* key : {"timestamp", "status", "uptime", "memory_usage", "cpu_usage",
                          "active_connections", "active_positions", "last_error", "restart_count",
                          "max_restarts", "recovery_attempts", "max_recovery_attempts"}) {
    EXPECT_TRUE(state.contains(key)) << key;
  }
  EXPECT_EQ(state, json::parse(Run({"state", "--json"}).out));
  // No temporary left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()),
                          std::filesystem::directory_iterator()),
            2);  // journal/ and system_state.json
}

TEST_F(Cli, CompactionKeepsTheFoldedStateAndShrinksTheDirectory) {
  AppendHealthEvents(root(), "app", 20000, kT0 + 50 * kSec);
  std::string state_before = Run({"state", "--json"}).out;
  uint64_t bytes_before = DirectorySize(root());

  ToolResult r = Run({"compact", "--keep-events", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("events before"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total"), std::string::npos) << r.out;

  EXPECT_EQ(Run({"state", "--json"}).out, state_before);
  uint64_t bytes_after = DirectorySize(root());
  EXPECT_LT(bytes_after, bytes_before / 2) << bytes_before << " -> " << bytes_after;
  EXPECT_LE(Lines(Run({"replay", "--json", "--stream", "app"}).out).size(), 10u);
  EXPECT_EQ(Run({"verify"}).exit_code, 0);
}

TEST_F(Cli, CompactionRefusesWhileAWriterHoldsTheJournal) {
  auto writer = Journal::Open(root(), "app");
  ASSERT_TRUE(writer.ok());
  ToolResult r = Run({"compact"});
  ExpectOneLineError(r, 1, "running process");
}

// Overwrites one record of a stream with bytes that are not an Event, through
// RocksDB directly, the way a bug or a bad disk would.
void DamageRecord(const std::string& stream_path, uint64_t seq, bool erase) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), stream_path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), stream_path, families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  char key[8];
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(seq >> (56 - 8 * i));
  rocksdb::Slice k(key, 8);
  if (erase) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[0], k).ok());
  } else {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[0], k, "not a flatbuffer at all").ok());
  }
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
}

TEST_F(Cli, VerifyReportsADamagedRecordWhileReplayPrintsTheRest) {
  ASSERT_EQ(Run({"verify"}).exit_code, 0);
  DamageRecord(root() + "/app", 5, /*erase=*/false);

  ToolResult verify = Run({"verify"});
  EXPECT_EQ(verify.exit_code, 1) << verify.out;
  EXPECT_NE(verify.out.find("app seq 5:"), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find("DAMAGED"), std::string::npos) << verify.out;

  ToolResult replay = Run({"replay", "--json"});
  EXPECT_EQ(replay.signal, 0);
  // Everything else is shown, and the status says that something was not.
  EXPECT_EQ(replay.exit_code, 1) << replay.err;
  EXPECT_EQ(Lines(replay.out).size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents - 1});
  EXPECT_NE(replay.err.find("app seq 5"), std::string::npos) << replay.err;

  ToolResult human = Run({"replay"});
  EXPECT_EQ(human.exit_code, 1);
  EXPECT_EQ(Lines(human.out).size(), size_t{kFixtureAppEvents + kFixtureWatchdogEvents - 1});
  ToolResult state = Run({"state"});
  EXPECT_EQ(state.signal, 0);
  EXPECT_EQ(state.exit_code, 1) << state.err;
  for (const char* cmd : {"crashes", "stats"}) {
    ToolResult other = Run({cmd});
    EXPECT_EQ(other.signal, 0) << cmd;
    EXPECT_EQ(other.exit_code, 0) << cmd << ": " << other.err;
  }
}

TEST_F(Cli, VerifyReportsASequenceGap) {
  DamageRecord(root() + "/app", 8, /*erase=*/true);
  ToolResult verify = Run({"verify"});
  EXPECT_EQ(verify.exit_code, 1) << verify.out;
  EXPECT_NE(verify.out.find("app seq 8: sequence gap: seqs 8..8 are missing (1 record(s))"),
            std::string::npos)
      << verify.out;
}

TEST_F(Cli, CrashesListsOneIncidentPerDeath) {
  ToolResult r = Run({"crashes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  // The in-process capture and the watchdog's view of the same death are one.
  ASSERT_EQ(lines.size(), 1u) << r.out;
  json i = json::parse(lines[0]);
  EXPECT_EQ(i["reason"], "segfault");
  EXPECT_EQ(i["crash"]["origin"], "signal");  // the capture is the record shown
  ASSERT_EQ(i["sources"].size(), 3u) << lines[0];
  EXPECT_EQ(i["sources"][0]["kind"], "watchdog");
  EXPECT_EQ(i["sources"][1]["kind"], "restart");
  EXPECT_EQ(i["sources"][2]["kind"], "capture");
  EXPECT_EQ(i["core_dumped"], true);  // from the watchdog's record

  ToolResult human = Run({"crashes"});
  EXPECT_NE(human.out.find("SIGSEGV"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("segfault"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("Book::best_bid()"), std::string::npos) << human.out;

  ToolResult by_reason = Run({"crashes", "--json", "--reason", "hang"});
  ASSERT_EQ(by_reason.exit_code, 0) << by_reason.err;
  EXPECT_EQ(by_reason.out, "");
  ToolResult by_pid = Run({"crashes", "--json", "--pid", std::to_string(i["pid"].get<int>())});
  EXPECT_EQ(Lines(by_pid.out).size(), 1u) << by_pid.out;
}

TEST_F(Cli, CrashesShowIncludesTheSecondsBeforeTheCrash) {
  ToolResult r = Run({"crashes", "show", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("start_thread"), std::string::npos) << r.out;    // the last frame
  EXPECT_NE(r.out.find("map::at: 'bid'"), std::string::npos) << r.out;  // 50 ms before

  ToolResult j = Run({"crashes", "show", "-1", "--json", "--before", "1"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json out = json::parse(j.out);
  EXPECT_EQ(out["crash"]["signal_name"], "SIGSEGV");
  ASSERT_EQ(out["before"].size(), 2u) << j.out;  // the error and the limit warning
  EXPECT_EQ(out["before"][1]["message"], "map::at: 'bid'");

  EXPECT_FALSE(out["frames"].empty());  // -1: the newest, never a frameless duplicate
  ExpectOneLineError(Run({"crashes", "show", "2"}), 2, "no crash 2");
}

TEST_F(Cli, StatsCountsEventsPerTypeAndStream) {
  ToolResult r = Run({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json s = json::parse(r.out);
  EXPECT_EQ(s["events"], kFixtureAppEvents + kFixtureWatchdogEvents);
  EXPECT_EQ(s["types"]["error"], 2);
  EXPECT_EQ(s["types"]["crash"], 2);
  EXPECT_EQ(s["streams"]["watchdog"]["events"], kFixtureWatchdogEvents);
  EXPECT_EQ(s["streams"]["app"]["last_seq"], kFixtureAppEvents);
  EXPECT_EQ(s["first_time"], "2026-01-15T10:30:00.000000000Z");
  EXPECT_GT(s["bytes"].get<uint64_t>(), 0u);
}

TEST_F(Cli, BadArgumentsExitTwoWithOneLine) {
  ExpectOneLineError(Run({"replay", "--type", "meteor"}), 2, "unknown event type 'meteor'");
  ExpectOneLineError(Run({"replay", "--since", "last week"}), 2, "cannot parse time 'last week'");
  ExpectOneLineError(Run({"state", "--at", "app:999"}), 2, "holds no event 999");
  ExpectOneLineError(Run({"replay", "--stream", "nope"}), 2, "no stream 'nope'");
  ExpectOneLineError(Run({"replay", "--frobnicate"}), 2, "frobnicate");
  ExpectOneLineError(RunTool({}), 2, "blackbox");
  ExpectOneLineError(Run({"export"}), 2, "--history");
  ExpectOneLineError(Run({"compact", "--keep-events", "1", "--keep-days", "2"}), 2, "excludes");
  ExpectOneLineError(Run({"import", dir_ / "missing.jsonl"}), 2, "missing.jsonl");
}

TEST_F(Cli, AnUnreadableJournalExitsOneWithTheReason) {
  ToolResult r = RunTool({"--journal", dir_ / "does-not-exist", "replay"});
  ExpectOneLineError(r, 1, "does-not-exist");
  chmod(root().c_str(), 0777);  // others could plant events: refused
  ExpectOneLineError(Run({"state"}), 1, root());
  chmod(root().c_str(), 0700);
}

TEST_F(Cli, StateAtAMomentBeforeTheJournalSaysWhereItStarts) {
  // The fixture's first event is at kT0 (10:30:00Z); a minute earlier there
  // was nothing to fold, and an all-zero state would pass for a real one.
  for (std::string at : {"2026-01-15T10:29:00Z", "1970-01-01T00:00:00Z"}) {
    SCOPED_TRACE(at);
    ToolResult r = Run({"state", "--at", at});
    ExpectOneLineError(r, 1, "the journal starts at 2026-01-15T10:30:00");
    EXPECT_EQ(r.out, "");
  }
  // At the first event itself there is a state.
  EXPECT_EQ(Run({"state", "--at", "2026-01-15T10:30:00Z"}).exit_code, 0);
}

TEST_F(Cli, ADirectoryWithoutStreamsIsNotAnEmptyJournal) {
  std::string empty = dir_ / "empty";
  ASSERT_EQ(mkdir(empty.c_str(), 0700), 0);
  for (std::string cmd : {"replay", "state", "crashes", "stats", "verify", "compact"}) {
    SCOPED_TRACE(cmd);
    ExpectOneLineError(RunTool({"--journal", empty, cmd}), 1, "no journal streams in " + empty);
  }
}

TEST_F(Cli, AnUnknownCommandIsNamedWithTheListOfCommands) {
  ToolResult r = Run({"frobnicate"});
  ExpectOneLineError(r, 2, "unknown command 'frobnicate'");
  for (const char* cmd :
       {"replay", "crashes", "state", "export", "import", "compact", "verify", "stats"}) {
    EXPECT_NE(r.err.find(cmd), std::string::npos) << cmd << ": " << r.err;
  }
}

TEST_F(Cli, VersionIsPrintedWithoutACommand) {
  ToolResult r = Run({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("blackbox ", 0), 0u) << r.out;
}

TEST_F(Cli, NumberErrorsSayWhatANumberMustBe) {
  for (std::vector<std::string> args : {std::vector<std::string>{"replay", "-n", "-5"},
                                        {"replay", "-n", "1.5"},
                                        {"replay", "--lines", "many"},
                                        {"compact", "--keep-events", "-3"},
                                        {"crashes", "--frames", "-1"}}) {
    SCOPED_TRACE(fmt::format("{}", fmt::join(args, " ")));
    ToolResult r = Run(args);
    ExpectOneLineError(r, 2, "must be a whole number ≥ 0, not '" + args.back() + "'");
    EXPECT_EQ(r.err.find("not in range"), std::string::npos) << r.err;
  }
  ExpectOneLineError(Run({"compact", "--keep-days", "-2"}), 2, "must be a number ≥ 0, not '-2'");
  ExpectOneLineError(Run({"crashes", "show", "x"}), 2, "must be a whole number");
  ExpectOneLineError(Run({"crashes", "show", "1", "--before", "-1"}), 2, "must be a number ≥ 0");
  // Nothing was compacted by the refused -3.
  EXPECT_EQ(Lines(Run({"replay", "--json"}).out).size(),
            size_t{kFixtureAppEvents + kFixtureWatchdogEvents});
}

TEST_F(Cli, ASharedDirectoryIsRefusedWithoutAdviceToChangeIt) {
  ToolResult r = RunTool({"--journal", "/tmp", "verify"});
  ExpectOneLineError(r, 1, "writable by other users");
  EXPECT_NE(r.err.find("could plant"), std::string::npos) << r.err;  // why it is refused
  EXPECT_EQ(r.err.find("chmod"), std::string::npos) << r.err;
}

TEST_F(Cli, StateJsonTimesAreUtcAndAbsentValuesNull) {
  ToolResult r = Run({"state", "--json"}, {"TZ=Asia/Tokyo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json s = json::parse(r.out);
  EXPECT_EQ(s["last_crash"]["time"], "2026-01-15T10:30:04.950000000Z");
  EXPECT_EQ(s["last_error_detail"]["time"], "2026-01-15T10:30:04.900000000Z");
  EXPECT_TRUE(s["last_crash"]["exception_type"].is_null());
  EXPECT_EQ(s["watchdog"]["phase"], "stopped");

  // replay --json spells an absent text the same way: null, never "".
  ToolResult replay = Run({"replay", "--json"});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_EQ(replay.out.find(":\"\""), std::string::npos) << replay.out;
  for (const auto& line : Lines(replay.out)) {
    json e = json::parse(line);
    if (e["type"] == "crash") {
      EXPECT_TRUE(e["exception_type"].is_null()) << line;
    }
  }
}

TEST_F(Cli, StateSaysTheChildsStatusTextIsItsLastWordsOnceItStopped) {
  std::string history = dir_ / "h.jsonl";
  WriteFile(history,
            "{\"seq\":1,\"stream\":\"watchdog\",\"time\":\"2026-01-15T10:30:00Z\","
            "\"type\":\"lifecycle\",\"pid\":100,\"phase\":\"running\","
            "\"reason\":\"running: ready\",\"child_pid\":4242}\n"
            "{\"seq\":2,\"stream\":\"watchdog\",\"time\":\"2026-01-15T10:31:00Z\","
            "\"type\":\"lifecycle\",\"pid\":100,\"phase\":\"stopped\","
            "\"child_pid\":4242,\"exit_code\":0}\n");
  std::string journal = dir_ / "j";
  ASSERT_EQ(RunTool({"--journal", journal, "import", history}).exit_code, 0);
  ToolResult r = RunTool({"--journal", journal, "state"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("child status   running"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"running: ready\" (its last STATUS=, sent while it ran; the child is "
                       "stopped now)"),
            std::string::npos)
      << r.out;
}

TEST_F(Cli, ReplaySinceAfterUntilIsAnError) {
  ExpectOneLineError(
      Run({"replay", "--since", "2026-01-15T10:31:00Z", "--until", "2026-01-15T10:30:00Z"}), 2,
      "--since 2026-01-15T10:31:00Z is after --until 2026-01-15T10:30:00Z");
  ExpectOneLineError(Run({"replay", "--since", "app:9", "--until", "app:2"}), 2, "is after");
}

TEST_F(Cli, EveryCommandHasHelpWithAnExample) {
  for (std::string cmd :
       {"replay", "crashes", "state", "export", "import", "compact", "verify", "stats"}) {
    ToolResult r = RunTool({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("blackbox " + cmd), std::string::npos) << cmd << ":\n" << r.out;
  }
}

TEST_F(Cli, TheJournalComesFromTheEnvironmentByDefault) {
  ToolResult r = RunTool({"stats", "--json"}, "", {"BLACKBOX_JOURNAL=" + root()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["journal"], root());
  // Without it: ./blackbox-journal, which is not there.
  ExpectOneLineError(RunTool({"stats"}), 1, "'blackbox-journal'");
}

}  // namespace
}  // namespace blackbox::tools::testing
