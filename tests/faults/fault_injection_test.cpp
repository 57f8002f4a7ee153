// The fault-injection suite: every write, sync, rename, directory fsync and
// file creation of a scenario failed in turn, each in a process of its own
// (faults_inject_child, over tests/faults/fault_fs.h), against the RocksDB
// the project links (Debian's, built with assertions on).
//
// For each scenario (inject_child.cpp: the app's use of the journal, the real
// recovery manager, the watchdog's JournalWriter, Sync racing appends) a first run without faults
// counts the operations of each kind. Then for each kind and each N in
// 1..count (every N behind the label "long", a sample of them in the default
// run) the N-th operation fails, once (burst 1), as a disk that stays full
// from there on (burst 0), and as a disk that fills and empties again
// (burst 8). After each run:
//   - the process exited normally: a fault never aborts its host;
//   - reopened without faults, the journal verifies, has no gap, and holds
//     every acknowledged event with its payload: no acknowledged event is
//     lost, and no sequence number was given to two events;
//   - every append was either acknowledged or counted in failed_appends().
// BLACKBOX_FAULTS_STRIDE=k runs every k-th N (1 = all). The test prints how
// many injection points it covered.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "blackbox/journal.h"
#include "fault_fs.h"
#include "fault_support.h"

namespace blackbox::faults {
namespace {

using namespace std::chrono_literals;

uint64_t StrideFromEnvironment() {
  const char* text = std::getenv("BLACKBOX_FAULTS_STRIDE");
  if (text == nullptr || *text == '\0') return 0;  // the default: a sample (see Points)
  return std::max<uint64_t>(1, std::strtoull(text, nullptr, 10));
}

struct Ops {
  std::map<std::string, uint64_t> counts;  // kind name -> operations
  uint64_t attempts = 0, acked = 0, failed = 0, injected = 0;
};

std::optional<Ops> ParseOps(const std::string& out) {
  size_t at = out.rfind("ops ");
  if (at == std::string::npos) return std::nullopt;
  std::istringstream in(out.substr(at + 4));
  Ops ops;
  for (std::string word; in >> word;) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) return std::nullopt;
    const std::string key = word.substr(0, eq);
    const uint64_t value = std::strtoull(word.c_str() + eq + 1, nullptr, 10);
    if (key == "attempts") {
      ops.attempts = value;
    } else if (key == "acked") {
      ops.acked = value;
    } else if (key == "failed") {
      ops.failed = value;
    } else if (key == "injected") {
      ops.injected = value;
    } else {
      ops.counts[key] = value;
    }
  }
  return ops;
}

// The Ns to try for a kind with `count` operations: all of them with stride
// 1; by default about `sample` spread over the run, always the first and the last
// (a failed background flush costs RocksDB's 1 s retry pause at the next
// close, which bounds how many cases the default run can afford).
std::vector<uint64_t> Points(uint64_t count, uint64_t stride, uint64_t sample) {
  std::vector<uint64_t> points;
  if (count == 0) return points;
  if (stride == 0) stride = std::max<uint64_t>(1, count / sample);
  for (uint64_t n = 1; n <= count; n += stride) points.push_back(n);
  if (points.back() != count) points.push_back(count);
  return points;
}

// Checks a journal written under faults; returns the problems found.
std::vector<std::string> CheckJournal(const std::string& root, const std::string& acks_text) {
  std::vector<std::string> problems;
  // stream -> seq -> payload, from the acknowledgements.
  std::map<std::string, std::map<uint64_t, std::string>> acked;
  std::istringstream lines(acks_text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    std::string stream, durability, payload;
    uint64_t seq = 0;
    if (!(in >> stream >> seq >> durability >> payload)) {
      problems.push_back("bad ack line: " + line);
      continue;
    }
    auto [it, inserted] = acked[stream].emplace(seq, payload);
    if (!inserted && it->second != payload) {
      problems.push_back(
          fmt::format("{} seq {} acknowledged twice: {} and {}", stream, seq, it->second, payload));
    }
  }
  auto streams = ListStreams(root);
  if (!streams.ok()) {
    if (!acked.empty()) problems.push_back("cannot list streams: " + streams.status().ToString());
    return problems;
  }
  for (const std::string& stream : *streams) {
    auto reader = Reader::Open(root, stream);
    if (!reader.ok()) {
      problems.push_back(fmt::format("cannot open {}: {}", stream, reader.status().ToString()));
      continue;
    }
    auto checked = (*reader)->Verify([&](const BadRecord& b) {
      problems.push_back(fmt::format("{} seq {}: {}", b.stream, b.seq, b.reason));
    });
    if (!checked.ok()) problems.push_back(checked.status().ToString());
    std::map<uint64_t, std::string> stored;
    uint64_t expected = (*reader)->first_seq();
    Status s = (*reader)->Scan({}, [&](const Record& r) {
      if (r.seq != expected) {
        problems.push_back(fmt::format("{}: seq {} follows {}", stream, r.seq, expected - 1));
      }
      expected = r.seq + 1;
      const fb::Error* e = r.event->payload_as_Error();
      stored[r.seq] = e != nullptr && e->message() ? e->message()->str() : "-";
      return true;
    });
    if (!s.ok()) problems.push_back(s.ToString());
    const uint64_t first = (*reader)->first_seq();
    for (const auto& [seq, payload] : acked[stream]) {
      if (seq < first) continue;  // compacted away, on purpose
      auto it = stored.find(seq);
      if (it == stored.end()) {
        problems.push_back(
            fmt::format("{}: acknowledged seq {} ({}) is lost", stream, seq, payload));
      } else if (it->second != payload) {
        problems.push_back(
            fmt::format("{}: acknowledged seq {} ({}) holds {}", stream, seq, payload, it->second));
      }
    }
  }
  return problems;
}

struct Coverage {
  uint64_t cases = 0;
  uint64_t failures = 0;
  std::map<std::string, std::set<uint64_t>> points;  // kind -> Ns tried
};

// `sample`: the injection points per kind in the default run.
// `on_tmpfs`: the journals live on a tmpfs (when one can be mounted), where
// an fsync costs nothing: the faults are injected, the disk's speed is not
// what is tested, and a busy disk would make the run slow.
void RunScenario(const std::string& scenario, Coverage& coverage, uint64_t sample = 6,
                 bool on_tmpfs = true) {
  TempDir temp;
  std::unique_ptr<TmpfsMount> mount;
  if (on_tmpfs) mount = std::make_unique<TmpfsMount>(temp / "tmpfs", 256 << 20);
  const std::filesystem::path dir = mount && mount->ok() ? std::filesystem::path(mount->path())
                                                         : std::filesystem::path(temp.path());
  ProcessResult count =
      RunProcess({INJECT_CHILD, scenario, dir / "count", dir / "count.acks", "none", "0", "0"},
                 WithTimeout(60s));
  ASSERT_EQ(count.exit_code, 0) << count.err;
  std::optional<Ops> ops = ParseOps(count.out);
  ASSERT_TRUE(ops.has_value()) << count.out;
  if (scenario != "manager") {
    ASSERT_GT(ops->acked, 0u);
  }
  EXPECT_EQ(ops->failed, 0u);
  EXPECT_TRUE(CheckJournal(dir / "count", ReadFile(dir / "count.acks")).empty());
  fmt::print("{}: operations without faults:", scenario);
  for (const auto& [kind, n] : ops->counts) fmt::print(" {}={}", kind, n);
  fmt::print("\n");

  const uint64_t stride = StrideFromEnvironment();
  int case_no = 0;
  for (const auto& [kind, n_ops] : ops->counts) {
    for (uint64_t n : Points(n_ops, stride, sample)) {
      for (uint64_t burst : {1, 0, 8}) {
        const std::string root = dir / fmt::format("c{}", case_no);
        const std::string acks = dir / fmt::format("c{}.acks", case_no);
        ++case_no;
        const std::string what =
            fmt::format("{}: {} #{} failed (burst {})", scenario, kind, n, burst);
        ProcessResult r = RunProcess(
            {INJECT_CHILD, scenario, root, acks, kind, std::to_string(n), std::to_string(burst)},
            WithTimeout(60s));
        ++coverage.cases;
        coverage.points[scenario + " " + kind].insert(n);
        // Every case runs, so that one report shows every failing point.
        auto fail = [&](const std::string& why) {
          ++coverage.failures;
          ADD_FAILURE() << what << ": " << why << "\nstderr: " << r.err.substr(0, 2000);
        };
        if (r.timed_out) {
          fail("hung");
          continue;
        }
        if (r.signal != 0) {
          fail(fmt::format("killed by signal {}", r.signal));
          continue;
        }
        if (r.exit_code != 0) {
          fail(fmt::format("exit status {}", r.exit_code));
          continue;
        }
        std::optional<Ops> got = ParseOps(r.out);
        if (!got) {
          fail("no summary line: " + r.out);
          continue;
        }
        if (scenario != "manager" && got->attempts != got->acked + got->failed) {
          fail(fmt::format("{} appends, {} acknowledged, {} counted as failed", got->attempts,
                           got->acked, got->failed));
        }
        std::vector<std::string> problems = CheckJournal(root, ReadFile(acks));
        if (!problems.empty()) fail(fmt::format("{}", fmt::join(problems, "\n")));
        std::filesystem::remove_all(root);
      }
    }
  }
}

void Report(const Coverage& c) {
  uint64_t points = 0;
  for (const auto& [kind, ns] : c.points) points += ns.size();
  fmt::print("fault injection: {} runs ({} failed), {} injection points:", c.cases, c.failures,
             points);
  for (const auto& [kind, ns] : c.points) fmt::print(" [{}: {}]", kind, ns.size());
  fmt::print("\n");
}

TEST(FaultInjection, AppJournalSurvivesEveryFailedWriteSyncAndRename) {
  Coverage c;
  RunScenario("app", c);
  Report(c);
}

TEST(FaultInjection, RecoveryManagerSurvivesEveryFailedWriteSyncAndRename) {
  Coverage c;
  RunScenario("manager", c);
  Report(c);
}

// Journal::Sync racing appends whose write fails: RocksDB's SyncWAL on a log
// writer that has just failed used to abort the process.
TEST(FaultInjection, SyncRacingAFailedAppendNeverAbortsItsHost) {
  Coverage c;
  // A race: each case catches it only sometimes, so the default run samples
  // more densely.
  RunScenario("sync", c, 12);
  Report(c);
}

TEST(FaultInjection, WatchdogWriterSurvivesEveryFailedWriteSyncAndRename) {
  Coverage c;
  RunScenario("watchdog", c);
  Report(c);
}

}  // namespace
}  // namespace blackbox::faults
