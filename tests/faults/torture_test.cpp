// kill -9 torture: an application using the recovery manager appends durable
// and buffered events from several threads and is SIGKILLed at random
// moments, many times in a row on the same journal. After every kill:
//   - `blackbox verify` (the real tool) exits 0 and the streams have no gap;
//   - every event acknowledged before the kill is present and intact (the
//     durable ones by promise; the buffered ones too, since a process crash
//     does not lose what reached RocksDB's log);
//   - the next start of the manager counts the restart: its folded
//     restart_count is the offline fold's + 1.
// The disk-full variant does the same with the journal on a small tmpfs that
// the test fills up and empties again at random moments while the writer
// runs: appends fail and succeed again between the kills. There the writer
// acknowledges only what was written, a restart may fail to be journaled
// (so restarts are not counted), and the same checks hold, plus: no sequence
// number is ever acknowledged for two different events.
// With BLACKBOX_TORTURE_RING_BYTES the writer runs both streams in ring mode
// (RecoveryOptions::journal_ring_bytes): buffered events are copied into a
// mapped RING file and drained later. Each kill then leaves a ring behind;
// `blackbox verify` runs over it as it is, and the checks run after a
// writer's open has ingested it (what the next start does), so that a slot
// torn by the kill (numbered as a placeholder) cannot hide the acknowledged
// events after it.
// BLACKBOX_TORTURE_KILLS sets the number of kills (default 12). Each run ends
// with the line "kills=N events_acknowledged=M events_lost=L seqs_reused=R".
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "blackbox/journal.h"
#include "blackbox/state_io.h"
#include "fault_support.h"

namespace blackbox::faults {
namespace {

using namespace std::chrono_literals;

int KillsFromEnvironment() {
  const char* text = std::getenv("BLACKBOX_TORTURE_KILLS");
  if (text == nullptr || *text == '\0') return 12;
  return std::max(1, std::atoi(text));
}

// What the children acknowledged, over all runs.
struct Acknowledged {
  std::set<std::string> errors;                                // "ack <t> <n>" messages
  std::map<uint64_t, std::pair<std::string, double>> torture;  // seq -> (name, value)

  uint64_t reused = 0;  // seqs acknowledged for two different events

  size_t size() const { return errors.size() + torture.size(); }

  // Parses one acknowledgement line; false for anything else.
  bool Add(const std::string& line) {
    std::istringstream in(line);
    std::string kind;
    in >> kind;
    if (kind == "E") {
      int t;
      long n;
      if (!(in >> t >> n)) return false;
      errors.insert(fmt::format("ack {} {}", t, n));
      return true;
    }
    if (kind == "D" || kind == "B") {
      uint64_t seq;
      int t;
      long n;
      if (!(in >> seq >> t >> n)) return false;
      std::pair<std::string, double> event{fmt::format("t{}", t), static_cast<double>(n)};
      auto [it, inserted] = torture.emplace(seq, event);
      if (!inserted && it->second != event) {
        ++reused;
        ADD_FAILURE() << "seq " << seq << " acknowledged for " << it->second.first << " "
                      << it->second.second << " and for " << event.first << " " << event.second;
      }
      return true;
    }
    return false;
  }
};

// One stream read back: gap-free, every record verified.
struct StreamContents {
  uint64_t first = 0, last = 0, count = 0;
  std::vector<std::string> problems;
};

StreamContents CheckStream(const std::string& root, const std::string& stream,
                           const std::function<void(const Record&)>& each) {
  StreamContents c;
  auto reader = Reader::Open(root, stream);
  if (!reader.ok()) {
    c.problems.push_back("cannot open " + stream + ": " + reader.status().ToString());
    return c;
  }
  auto checked = (*reader)->Verify([&](const BadRecord& b) {
    c.problems.push_back(fmt::format("{} seq {}: {}", b.stream, b.seq, b.reason));
  });
  if (!checked.ok()) c.problems.push_back(checked.status().ToString());
  c.first = (*reader)->first_seq();
  c.last = (*reader)->last_seq();
  uint64_t expected = c.first;
  Status s = (*reader)->Scan({}, [&](const Record& r) {
    if (r.seq != expected) {
      c.problems.push_back(fmt::format("{}: seq {} follows {}", stream, r.seq, expected - 1));
    }
    expected = r.seq + 1;
    ++c.count;
    each(r);
    return true;
  });
  if (!s.ok()) c.problems.push_back(s.ToString());
  if (c.count != c.last + 1 - c.first) {
    c.problems.push_back(
        fmt::format("{}: {} records between seq {} and {}", stream, c.count, c.first, c.last));
  }
  return c;
}

bool RingMode() {
  const char* text = std::getenv("BLACKBOX_TORTURE_RING_BYTES");
  return text != nullptr && *text != '\0' && std::string_view(text) != "0";
}

// Opens (and closes) a writer on each stream, as the next start would: a
// RING the killed writer left is ingested. Returns the placeholders numbered
// for slots the kill tore.
int IngestRings(const std::string& root) {
  int placeholders = 0;
  for (const char* stream : {"app", "torture"}) {
    if (!std::filesystem::exists(root + "/" + stream + "/RING")) continue;
    auto journal = Journal::Open(root, stream);
    EXPECT_TRUE(journal.ok()) << stream << ": " << journal.status().ToString();
    if (!journal.ok()) continue;
    for (const std::string& w : (*journal)->TakeWarnings()) {
      int torn = 0, unpublished = 0;
      if (auto at = w.find(" torn, "); at != std::string::npos) {
        std::sscanf(w.c_str() + w.rfind('(', at), "(%d torn, %d never", &torn, &unpublished);
      }
      placeholders += torn + unpublished;
    }
  }
  return placeholders;
}

// What takes the space of `root`: per entry, its bytes and, for a stream,
// its files by kind (extension); then what is left on its filesystem. For
// failure messages.
std::string SpaceReport(const std::string& root) {
  namespace fs = std::filesystem;
  std::string out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    uintmax_t bytes = e.is_regular_file() ? e.file_size() : 0;
    std::map<std::string, std::pair<int, uintmax_t>> by_kind;  // files, bytes
    if (e.is_directory()) {
      for (const auto& f : fs::recursive_directory_iterator(e.path(), ec)) {
        if (!f.is_regular_file()) continue;
        auto& [n, b] = by_kind[f.path().extension().string()];
        ++n;
        b += f.file_size();
        bytes += f.file_size();
      }
    }
    out += fmt::format("\n  {} {} bytes", e.path().filename().string(), bytes);
    for (const auto& [kind, nb] : by_kind) {
      out +=
          fmt::format(" [{}: {} files, {} bytes]", kind.empty() ? "-" : kind, nb.first, nb.second);
    }
  }
  out += fmt::format("\n  free: {} bytes", fs::space(root, ec).available);
  return out;
}

int FoldedRestartCount(const std::string& root) {
  auto state = LoadState(root);
  EXPECT_TRUE(state.ok()) << state.status().ToString();
  return state.ok() ? state->restart_count : -1;
}

// "start restart_count=<R> failures=<F>" -> (R, F).
std::optional<std::pair<int, uint64_t>> ParseStart(const std::string& line) {
  int r = 0;
  unsigned long long f = 0;
  if (std::sscanf(line.c_str(), "start restart_count=%d failures=%llu", &r, &f) != 2) {
    return std::nullopt;
  }
  return std::make_pair(r, static_cast<uint64_t>(f));
}

// Fills the filesystem of `path` to the last byte (the file `path`).
void FillUp(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string chunk(64 * 1024, '\0');
  for (size_t size = chunk.size(); size >= 1; size /= 2) {
    while (write(fd, chunk.data(), size) > 0) {
    }
  }
  close(fd);
}

// With a disk: the tmpfs the journal lives on, filled and emptied at random.
struct Disk {
  std::unique_ptr<TmpfsMount> mount;
  std::string filler;
  bool full = false;
  int fills = 0;
  void Toggle() {
    if (full) {
      unlink(filler.c_str());
    } else {
      FillUp(filler);
      ++fills;
    }
    full = !full;
  }
};

void Torture(bool with_disk) {
  const int kills = KillsFromEnvironment();
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  ::testing::Test::RecordProperty("seed", static_cast<int>(seed));
  TempDir dir;
  Disk disk;
  std::string root = dir / "journal";
  if (with_disk) {
    // Big enough for the journal of every run; the filler takes the rest.
    // In ring mode the runs append faster: 200 of them journal about 60 MB
    // (measured: 341 table files, 42 MB, of the app's stream alone).
    const size_t disk_bytes = RingMode() ? size_t{192} << 20 : size_t{64} << 20;
    disk.mount = std::make_unique<TmpfsMount>(dir / "disk", disk_bytes);
    if (!disk.mount->ok()) GTEST_SKIP() << "disk-full torture skipped: " << disk.mount->reason();
    root = disk.mount->path() + "/journal";
    disk.filler = disk.mount->path() + "/filler";
  }
  const std::string state_file = dir / "system_state.json";
  Acknowledged acked;
  uint64_t lost = 0;
  int starts_checked = 0;
  const bool ring = RingMode();
  int placeholders = 0;

  for (int kill_no = 1; kill_no <= kills; ++kill_no) {
    SCOPED_TRACE(fmt::format("kill {} of {} (seed {})", kill_no, kills, seed));
    const int folded_before = kill_no == 1 || with_disk ? 0 : FoldedRestartCount(root);
    std::vector<std::string> argv = {TORTURE_CHILD, root, state_file};
    if (with_disk) argv.push_back("tolerate");
    Child child(argv, dir / "child.err");
    // Most kills land while the threads append; every fourth one lands
    // anywhere in the start-up (journal open, fold, first events).
    const bool early = kill_no > 1 && kill_no % 4 == 0;
    std::optional<std::string> line;
    if (!early) {
      line = child.ReadLine(30s);
      ASSERT_TRUE(line.has_value()) << "no start line; stderr: " << ReadFile(dir / "child.err");
    } else {
      usleep(std::uniform_int_distribution<int>(0, 40000)(rng));
      line = child.ReadLine(0ms);
    }
    auto check_start = [&](const std::string& l) {
      auto start = ParseStart(l);
      ASSERT_TRUE(start.has_value()) << l;
      if (with_disk) return;  // a full disk may fail the start's events
      EXPECT_EQ(start->second, 0u) << "the journal did not open after the previous kill";
      if (kill_no > 1) {
        EXPECT_EQ(start->first, folded_before + 1) << "the restart after the kill was not counted";
        ++starts_checked;
      }
    };
    if (line) check_start(*line);
    if (!early) {
      const auto now = std::chrono::steady_clock::now();
      const auto until =
          now + std::chrono::milliseconds(std::uniform_int_distribution<int>(5, 400)(rng));
      // The disk fills up (or empties) at a random moment while the threads append.
      auto toggle_at = now + (until - now) * std::uniform_int_distribution<int>(0, 100)(rng) / 100;
      while (std::chrono::steady_clock::now() < until) {
        if (with_disk && std::chrono::steady_clock::now() >= toggle_at) {
          disk.Toggle();
          toggle_at = until + std::chrono::hours(1);
        }
        // Wakes up for the toggle even when a full disk keeps the writer silent.
        auto l = child.ReadLine(std::chrono::duration_cast<std::chrono::milliseconds>(
            std::min(until, toggle_at) - std::chrono::steady_clock::now()));
        if (!l) continue;  // a timeout (or EOF: then the kill below says why)
        ASSERT_TRUE(acked.Add(*l)) << "unexpected line: " << *l;
      }
    }
    const int status = child.Kill();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer died on its own (status " << status
        << "); stderr: " << ReadFile(dir / "child.err");
    // Lines complete in the pipe when the writer died were acknowledged too.
    while (auto l = child.ReadLine(1s)) {
      if (ParseStart(*l)) {
        check_start(*l);
      } else {
        ASSERT_TRUE(acked.Add(*l)) << "unexpected line: " << *l;
      }
    }

    ProcessResult verify = RunProcess({BLACKBOX_TOOL, "--journal", root, "verify"});
    ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    if (ring) placeholders += IngestRings(root);

    std::set<std::string> errors;
    StreamContents app = CheckStream(root, "app", [&](const Record& r) {
      if (const fb::Error* e = r.event->payload_as_Error(); e != nullptr && e->message()) {
        errors.insert(e->message()->str());
      }
    });
    EXPECT_TRUE(app.problems.empty()) << fmt::format("{}", fmt::join(app.problems, "\n"));
    for (const std::string& m : acked.errors) {
      if (!errors.contains(m)) {
        ++lost;
        ADD_FAILURE() << "acknowledged error '" << m << "' is missing";
      }
    }
    if (!acked.torture.empty()) {
      std::map<uint64_t, std::pair<std::string, double>> stored;
      StreamContents torture = CheckStream(root, "torture", [&](const Record& r) {
        const fb::Gauge* g = r.event->payload_as_Gauge();
        if (g != nullptr && g->name()) stored[r.seq] = {g->name()->str(), g->value()};
      });
      EXPECT_TRUE(torture.problems.empty()) << fmt::format("{}", fmt::join(torture.problems, "\n"));
      for (const auto& [seq, event] : acked.torture) {
        auto it = stored.find(seq);
        if (it == stored.end() || it->second != event) {
          ++lost;
          ADD_FAILURE() << "acknowledged event seq " << seq << " (" << event.first << " "
                        << event.second << ") is missing or changed";
        }
      }
    }
    ASSERT_EQ(lost, 0u);
  }

  if (with_disk) {
    // Space returns for good: the next start writes again.
    if (disk.full) disk.Toggle();
    EXPECT_GT(disk.fills, 0);
  }
  // One more start after the last kill: it too counts the restart, then
  // leaves cleanly.
  const int folded_before = FoldedRestartCount(root);
  ProcessResult probe = RunProcess({TORTURE_CHILD, root, state_file, "probe"});
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  auto start = ParseStart(probe.out);
  ASSERT_TRUE(start.has_value()) << probe.out;
  EXPECT_EQ(start->first, folded_before + 1);
  EXPECT_EQ(start->second, 0u) << probe.err << SpaceReport(root);
  ++starts_checked;
  EXPECT_EQ(RunProcess({BLACKBOX_TOOL, "--journal", root, "verify"}).exit_code, 0);

  EXPECT_GT(acked.errors.size(), 0u);
  EXPECT_GT(acked.torture.size(), 0u);
  // Summary for the README (ctest -L long -V shows it).
  EXPECT_EQ(acked.reused, 0u);
  fmt::print("kills={} events_acknowledged={} events_lost={} seqs_reused={}{}\n", kills,
             acked.size(), lost, acked.reused,
             with_disk ? fmt::format(" disk_filled={}", disk.fills) : "");
  fmt::print("(restarts counted at {} starts; seed {})\n", starts_checked, seed);
  if (ring) fmt::print("ring mode: {} placeholder(s) for torn slots\n", placeholders);
}

TEST(KillNineTorture, EveryAcknowledgedEventSurvivesAndEveryRestartIsCounted) { Torture(false); }

TEST(KillNineTorture, DiskFillingAndEmptyingLosesNoAcknowledgedEventAndReusesNoSeq) {
  Torture(true);
}

}  // namespace
}  // namespace blackbox::faults
