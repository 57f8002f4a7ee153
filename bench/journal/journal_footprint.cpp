// How much memory an open journal adds to its process.
//
//   journal_footprint [--events N]
//
// Prints VmRSS before opening, after opening, after N buffered appends (with
// the memtable flushed several times over), and after a full verified scan.
#include <fmt/format.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "blackbox/journal.h"

namespace {

double RssMb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  long events = 200'000;
  if (argc == 3 && std::string(argv[1]) == "--events") events = std::atol(argv[2]);
  std::string dir = (std::filesystem::temp_directory_path() / "journal-footprint-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return 1;

  const double before = RssMb();
  auto j = blackbox::Journal::Open(dir, "app");
  if (!j.ok()) {
    fmt::print(stderr, "{}\n", j.status().ToString());
    return 1;
  }
  const double opened = RssMb();
  flatbuffers::FlatBufferBuilder fbb(256);
  for (long i = 0; i < events; ++i) {
    fbb.Clear();
    auto g = blackbox::fb::CreateGaugeDirect(fbb, "active_positions", static_cast<double>(i));
    blackbox::FinishEvent(fbb, "app", blackbox::fb::Severity::Info, blackbox::fb::Payload::Gauge,
                          g.Union());
    (*j)->Append(blackbox::Bytes(fbb), blackbox::Durability::kBuffered);
  }
  const double written = RssMb();
  long seen = 0;
  (*j)->Scan({}, [&](const blackbox::Record&) {
    ++seen;
    return true;
  });
  const double scanned = RssMb();
  fmt::print("VmRSS before open          {:6.1f} MB\n", before);
  fmt::print("after Journal::Open        {:6.1f} MB  (+{:.1f})\n", opened, opened - before);
  fmt::print("after {} appends      {:6.1f} MB  (+{:.1f})\n", events, written, written - before);
  fmt::print("after scanning {} events  {:6.1f} MB  (+{:.1f})\n", seen, scanned, scanned - before);
  fmt::print("journal size on disk       {:6.1f} MB\n",
             blackbox::DirectorySize(dir) / (1024.0 * 1024.0));
  j->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
