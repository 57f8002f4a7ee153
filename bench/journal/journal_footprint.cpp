// How much memory an open journal adds to its process.
//
//   journal_footprint [--events N] [--ring-bytes B] [--ring-lanes L] [--manager]
//
// Prints VmRSS before opening, after opening, after N buffered appends (with
// the memtable flushed several times over), and after a full verified scan.
// --ring-bytes runs the journal in ring mode (JournalOptions::ring_bytes),
// --ring-lanes with that many ring lanes (JournalOptions::ring_lanes; not
// with --manager);
// the ring's pages are the RING file's page cache, mapped, and count in
// VmRSS once touched (RssFile, printed too). --manager appends through a
// RecoveryManager (set_gauge, RecoveryOptions::journal_ring_bytes) instead
// of a bare Journal, and leaves out the scan.
#include <fmt/format.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "blackbox/journal.h"
#include "blackbox/recovery.h"

namespace {

// A field of /proc/self/status, in MB.
double StatusMb(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(field.size())) / 1024.0;
  }
  return 0;
}

double RssMb() { return StatusMb("VmRSS:"); }

}  // namespace

int main(int argc, char** argv) {
  long events = 200'000;
  size_t ring_bytes = 0;
  size_t ring_lanes = 0;
  bool manager = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--events" && i + 1 < argc) {
      events = std::atol(argv[++i]);
    } else if (arg == "--ring-bytes" && i + 1 < argc) {
      ring_bytes = std::strtoul(argv[++i], nullptr, 10);
    } else if (arg == "--ring-lanes" && i + 1 < argc) {
      ring_lanes = std::strtoul(argv[++i], nullptr, 10);
    } else if (arg == "--manager") {
      manager = true;
    } else {
      fmt::print(stderr, "usage: {} [--events N] [--ring-bytes B] [--ring-lanes L] [--manager]\n",
                 argv[0]);
      return 2;
    }
  }
  if (manager && ring_lanes != 0) {
    fmt::print(stderr, "{}: --ring-lanes is a Journal option, not the manager's\n", argv[0]);
    return 2;
  }

  std::string dir = (std::filesystem::temp_directory_path() / "journal-footprint-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return 1;

  const double before = RssMb();
  std::unique_ptr<blackbox::Journal> journal;
  std::unique_ptr<blackbox::RecoveryManager> rm;
  if (manager) {
    blackbox::RecoveryOptions o;
    o.journal_dir = dir;
    o.state_file = "";
    o.handle_signals = false;
    o.capture_crashes = false;
    o.journal_ring_bytes = ring_bytes;
    rm = std::make_unique<blackbox::RecoveryManager>(o);
    if (rm->journal_failures() != 0) {
      fmt::print(stderr, "the manager could not journal\n");
      return 1;
    }
  } else {
    blackbox::JournalOptions o;
    o.ring_bytes = ring_bytes;
    o.ring_lanes = ring_lanes;
    auto j = blackbox::Journal::Open(dir, "app", o);
    if (!j.ok()) {
      fmt::print(stderr, "{}\n", j.status().ToString());
      return 1;
    }
    journal = std::move(*j);
  }
  const double opened = RssMb();
  // A ring refuses appends while it is full (the loop outruns the drain):
  // each refused one is retried after a pause, so that every run journals N
  // events. `refused` counts the retries.
  flatbuffers::FlatBufferBuilder fbb(256);
  long refused = 0;
  for (long i = 0; i < events; ++i) {
    if (rm) {
      const uint64_t failures = rm->journal_failures();
      rm->set_gauge("active_positions", static_cast<double>(i));
      if (rm->journal_failures() != failures) {
        ++refused;
        --i;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      continue;
    }
    fbb.Clear();
    auto g = blackbox::fb::CreateGaugeDirect(fbb, "active_positions", static_cast<double>(i));
    blackbox::FinishEvent(fbb, "app", blackbox::fb::Severity::Info, blackbox::fb::Payload::Gauge,
                          g.Union());
    while (!journal->Append(blackbox::Bytes(fbb), blackbox::Durability::kBuffered).ok()) {
      ++refused;
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  const double written = RssMb();
  const double written_file = StatusMb("RssFile:");
  fmt::print("{}, ring {} bytes, {} lanes\n", manager ? "RecoveryManager" : "Journal", ring_bytes,
             ring_lanes);
  fmt::print("VmRSS before open          {:6.1f} MB\n", before);
  fmt::print("after open                 {:6.1f} MB  (+{:.1f})\n", opened, opened - before);
  fmt::print(
      "after {} appends      {:6.1f} MB  (+{:.1f}; RssFile {:.1f}; {} refused and retried)\n",
      events, written, written - before, written_file, refused);
  if (journal) {
    long seen = 0;
    journal->Scan({}, [&](const blackbox::Record&) {
      ++seen;
      return true;
    });
    const double scanned = RssMb();
    fmt::print("after scanning {} events  {:6.1f} MB  (+{:.1f})\n", seen, scanned,
               scanned - before);
  }
  rm.reset();
  journal.reset();
  fmt::print("journal size on disk       {:6.1f} MB\n",
             blackbox::DirectorySize(dir) / (1024.0 * 1024.0));
  std::filesystem::remove_all(dir);
  return 0;
}
