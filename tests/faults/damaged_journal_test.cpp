// Applications started on a damaged journal: the real demo (blackbox-demo) on
// a journal whose files were damaged after a snapshot was stored. The demo
// must journal its whole run, numbered above every event the journal ever
// held, and say once that events were lost.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "fault_support.h"

namespace blackbox::faults {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Event {
  uint64_t seq = 0;
  int pid = 0;
  std::string type;
  std::string phase;
};

// The app stream as `blackbox replay --json` shows it.
std::vector<Event> AppEvents(const std::string& root) {
  ProcessResult r = RunProcess(
      {BLACKBOX_TOOL, "--journal", root, "replay", "--json", "--stream", "app"}, WithTimeout(60s));
  std::vector<Event> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    Event e;
    e.seq = j.value("seq", uint64_t{0});
    e.pid = j.value("pid", 0);
    e.type = j.value("type", "");
    e.phase = j.value("phase", "");
    out.push_back(e);
  }
  return out;
}

ProcessResult RunDemo(const std::string& root) {
  return RunProcess({BLACKBOX_DEMO, "--journal", root, "--orders", "40", "--interval-ms", "1",
                     "--error-every", "5"},
                    WithTimeout(60s));
}

std::vector<std::string> FilesOf(const std::string& dir, const std::string& extension) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == extension) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Overwrite(const std::string& path, std::streamoff offset, size_t n) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekp(offset);
  std::string junk(n, '\xff');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  ASSERT_TRUE(f) << path;
}

size_t CountOf(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class DamagedJournal : public ::testing::Test {
 protected:
  // Two runs of the demo: the second start flushed the first run's log into
  // table files (its events in one, its snapshot in another); the second
  // run's events and snapshot are in the live log.
  void SetUp() override {
    root_ = dir_.path() + "/j";
    for (int run = 0; run < 2; ++run) {
      ProcessResult demo = RunDemo(root_);
      ASSERT_EQ(demo.exit_code, 0) << demo.err;
    }
    for (const Event& e : AppEvents(root_)) {
      before_max_ = std::max(before_max_, e.seq);
      before_pids_.insert(e.pid);
    }
    ASSERT_GT(before_max_, 100u);
  }

  // Runs the demo on the damaged journal and checks that its whole run is
  // journaled above every seq seen before, and that the loss is told once.
  void ExpectTheNextRunJournalsEverything() {
    ProcessResult demo = RunDemo(root_);
    ASSERT_EQ(demo.exit_code, 0) << demo.err;
    EXPECT_EQ(demo.err.find("cannot write the journal"), std::string::npos) << demo.err;
    size_t told = 0;
    for (size_t at = demo.err.find("blackbox: warning: the journal stream");
         at != std::string::npos;
         at = demo.err.find("blackbox: warning: the journal stream", at + 1)) {
      ++told;
    }
    EXPECT_EQ(told, 1u) << demo.err;

    std::vector<Event> after = AppEvents(root_);
    std::vector<Event> run;
    for (const Event& e : after) {
      if (before_pids_.count(e.pid) == 0) run.push_back(e);
    }
    ASSERT_FALSE(run.empty()) << "the run journaled nothing";
    // Its first and last lifecycle events, and at least one per order.
    EXPECT_TRUE(
        std::any_of(run.begin(), run.end(), [](const Event& e) { return e.phase == "starting"; }));
    EXPECT_EQ(run.back().phase, "stopped");
    EXPECT_GE(run.size(), 40u);
    for (const Event& e : run) EXPECT_GT(e.seq, before_max_) << "seq " << e.seq << " reused";
    // The warning is journaled as an event of the run.
    EXPECT_TRUE(
        std::any_of(run.begin(), run.end(), [](const Event& e) { return e.type == "error"; }));
    // `state` folds the new run: its pid, and it stopped cleanly.
    ProcessResult state =
        RunProcess({BLACKBOX_TOOL, "--journal", root_, "state", "--json"}, WithTimeout(60s));
    auto j = nlohmann::json::parse(state.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << state.out << state.err;
    EXPECT_EQ(j.value("pid", 0), run.front().pid) << state.out;
  }

  TempDir dir_;
  std::string root_;
  uint64_t before_max_ = 0;
  std::set<int> before_pids_;
};

TEST_F(DamagedJournal, DemoOnADamagedLogJournalsItsRunAboveEverySeqBefore) {
  std::vector<std::string> logs = FilesOf(root_ + "/app", ".log");
  ASSERT_EQ(logs.size(), 1u);
  Overwrite(logs[0], static_cast<std::streamoff>(fs::file_size(logs[0]) / 2), 8);
  std::ifstream in(logs[0], std::ios::binary);
  const std::string damaged_log((std::istreambuf_iterator<char>(in)), {});
  ExpectTheNextRunJournalsEverything();

  // Nothing of the damaged log is dropped: the stream is set aside whole,
  // the log byte for byte as it was.
  std::vector<std::string> aside;
  for (const auto& e : fs::directory_iterator(root_)) {
    if (e.path().filename().string().rfind("app.damaged-", 0) == 0) {
      aside.push_back(e.path().string());
    }
  }
  ASSERT_EQ(aside.size(), 1u);
  std::vector<std::string> kept = FilesOf(aside[0], ".log");
  ASSERT_EQ(kept.size(), 1u);
  std::ifstream kept_in(kept[0], std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(kept_in)), {}), damaged_log);
}

TEST_F(DamagedJournal, DemoOnADamagedTableFileJournalsItsRunAboveTheSnapshot) {
  // The first run's events; its snapshot, in the other table file, is intact.
  std::vector<std::string> tables = FilesOf(root_ + "/app", ".sst");
  ASSERT_EQ(tables.size(), 2u);
  const std::string events_table =
      fs::file_size(tables[0]) > fs::file_size(tables[1]) ? tables[0] : tables[1];
  Overwrite(events_table, 600, 12);
  ExpectTheNextRunJournalsEverything();
}

TEST_F(DamagedJournal, DemoOnAStreamThatCannotBeOpenedMovesItAsideAndGoesOn) {
  // A truncated table file: RocksDB refuses to open the stream for writing.
  std::vector<std::string> tables = FilesOf(root_ + "/app", ".sst");
  ASSERT_EQ(tables.size(), 2u);
  const std::string events_table =
      fs::file_size(tables[0]) > fs::file_size(tables[1]) ? tables[0] : tables[1];
  ASSERT_EQ(::truncate(events_table.c_str(), 1000), 0);
  const auto damaged_files =
      FilesOf(root_ + "/app", ".sst").size() + FilesOf(root_ + "/app", ".log").size();
  ExpectTheNextRunJournalsEverything();

  // The damaged stream is beside the fresh one, intact, under its new name.
  std::vector<std::string> aside;
  for (const auto& e : fs::directory_iterator(root_)) {
    if (e.path().filename().string().rfind("app.damaged-", 0) == 0) {
      aside.push_back(e.path().string());
    }
  }
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(FilesOf(aside[0], ".sst").size() + FilesOf(aside[0], ".log").size(), damaged_files);
  EXPECT_EQ(fs::file_size(FilesOf(aside[0], ".sst")[events_table == tables[0] ? 0 : 1]), 1000u);
  // The tools read it as a stream of its own: the second run's events (in the
  // log) are there.
  const std::string name = fs::path(aside[0]).filename().string();
  ProcessResult replay =
      RunProcess({BLACKBOX_TOOL, "--journal", root_, "replay", "--json"}, WithTimeout(60s));
  EXPECT_NE(replay.out.find(fmt::format("\"stream\":\"{}\"", name)), std::string::npos)
      << replay.err;
}

// The watchdog on its own damaged stream: it sets the stream aside whole,
// says so once on stderr and journals it as a warning of its run, numbered
// above every event the damaged stream held.
TEST(DamagedWatchdogJournal, AWatchdogOnADamagedLogSetsItAsideAndJournalsTheWarning) {
  TempDir dir;
  const std::string root = dir.path() + "/j";
  auto run_watchdog = [&] {
    RunOptions options;
    options.timeout = 30s;
    options.extra_env = {"BLACKBOX_JOURNAL="};
    // A child that exits cleanly ends the watchdog (--restart on-failure).
    return RunProcess({BLACKBOX_WATCHDOG, "--journal", root, "--state-dir", dir.path() + "/wd",
                       "--health-check-interval", "60", "--", "/bin/true"},
                      options);
  };
  auto watchdog_events = [&] {
    ProcessResult r =
        RunProcess({BLACKBOX_TOOL, "--journal", root, "replay", "--json", "--stream", "watchdog"},
                   WithTimeout(60s));
    std::vector<nlohmann::json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object()) out.push_back(j);
    }
    return out;
  };
  for (int run = 0; run < 2; ++run) {
    ProcessResult r = run_watchdog();
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  uint64_t before_max = 0;
  for (const auto& e : watchdog_events()) before_max = std::max(before_max, e.value("seq", 0ul));
  ASSERT_GT(before_max, 0u);
  std::vector<std::string> logs = FilesOf(root + "/watchdog", ".log");
  ASSERT_EQ(logs.size(), 1u);
  ASSERT_GT(fs::file_size(logs[0]), 200u);
  Overwrite(logs[0], static_cast<std::streamoff>(fs::file_size(logs[0]) / 2), 8);

  ProcessResult r = run_watchdog();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CountOf(r.err, "blackbox-watchdog: warning: the journal stream"), 1u) << r.err;

  bool aside = false;
  for (const auto& e : fs::directory_iterator(root)) {
    aside |= e.path().filename().string().rfind("watchdog.damaged-", 0) == 0;
  }
  EXPECT_TRUE(aside);
  // The warning is an event of the fresh stream, above every seq before.
  size_t journaled = 0;
  for (const auto& e : watchdog_events()) {
    if (e.value("stream", "") != "watchdog") continue;
    EXPECT_GT(e.value("seq", 0ul), before_max);
    if (e.value("type", "") == "error" && e.value("severity", "") == "warning" &&
        e.value("context", "") == "journal" &&
        e.value("message", "").find("is damaged") != std::string::npos) {
      ++journaled;
    }
  }
  EXPECT_EQ(journaled, 1u);
}

}  // namespace
}  // namespace blackbox::faults
