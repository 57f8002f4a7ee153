// fuzz_ring: the ring files a dead writer left, read back.
//
// A writer in ring mode that dies leaves <stream>/RING behind, and with lanes
// <stream>/RING.lane-<i>; the next writer's open ingests what they hold
// (IngestLeftRing) and readers show it before that. The files may be damaged
// by anything that can write them. The input is
//   <flags byte> <file> SEPARATOR <file> SEPARATOR ...
// where the first file is RING and the next ones are RING.lane-0, -1, ...
// Each is given as the first 256 bytes of its header page (magic, sizes,
// tail, head, dropped), then its slots; the rest of the 4 KiB page is zeros.
// Flags: bit 0: the stream holds three durable events first (the ring's
// records then follow, or overlap, the database's); bit 1: the next writer
// opens with a ring; bit 2 with bit 1: and with 2 lanes. Then:
//   - ScanRing of each file fails with a reason, or returns records in
//     increasing seq order, each in [head, tail), no more than tail - head;
//   - a Reader opens (the database exists) and its Scan visits increasing
//     seqs, and Verify runs to the end;
//   - Journal::Open succeeds; a durable append after it gets a seq above
//     every seq the journal held, and a Reader reads it back last, unchanged;
//   - the next open finds nothing more to ingest.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "fuzz_check.h"
#include "fuzz_temp.h"
#include "ring.h"

namespace blackbox::fuzz {
namespace {

constexpr std::string_view kSeparator = "<<BBRING>>";
constexpr size_t kMaxFiles = 5;  // RING and four lanes
constexpr size_t kHeaderGiven = 256;
constexpr size_t kHeaderPage = 4096;

std::vector<std::string_view> SplitFiles(std::string_view text) {
  std::vector<std::string_view> out;
  while (out.size() < kMaxFiles) {
    size_t end = text.find(kSeparator);
    out.push_back(text.substr(0, end));
    if (end == text.npos) break;
    text.remove_prefix(end + kSeparator.size());
  }
  return out;
}

// Owner-only, as a writer makes them (anything else is refused unread).
void WriteFile(const std::string& path, std::string_view given) {
  std::string bytes(given.substr(0, kHeaderGiven));
  bytes.resize(kHeaderPage, '\0');
  if (given.size() > kHeaderGiven) bytes.append(given.substr(kHeaderGiven));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::string Gauge(double value) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto g = fb::CreateGaugeDirect(fbb, "fuzz", value);
  FinishEvent(fbb, kAppStream, fb::Severity::Info, fb::Payload::Gauge, g.Union());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

void CheckScan(const std::string& path) {
  auto scan = internal::ScanRing(path, 0);
  if (!scan.ok()) {
    FUZZ_CHECK(!scan.status().message().empty());
    return;
  }
  FUZZ_CHECK(scan->head <= scan->tail);
  FUZZ_CHECK(scan->records.size() <= scan->tail - scan->head);
  uint64_t previous = 0;
  for (const internal::RingRecord& r : scan->records) {
    FUZZ_CHECK(r.seq > previous && r.seq >= scan->head && r.seq < scan->tail);
    previous = r.seq;
  }
}

// The seqs a Reader visits, checked to increase; the last record's bytes.
uint64_t ReadBack(const std::string& root, std::string* last_bytes) {
  auto reader = Reader::Open(root, kAppStream);
  FUZZ_CHECK_MSG(reader.ok(), reader.status().ToString());
  uint64_t previous = 0;
  ScanOptions options;
  options.on_bad = [](const BadRecord& bad) { FUZZ_CHECK(!bad.reason.empty()); };
  FUZZ_CHECK((*reader)
                 ->Scan(options,
                        [&](const Record& r) {
                          FUZZ_CHECK(r.seq > previous);
                          previous = r.seq;
                          if (last_bytes != nullptr) *last_bytes = std::string(r.bytes);
                          return true;
                        })
                 .ok());
  auto checked = (*reader)->Verify([](const BadRecord& bad) { FUZZ_CHECK(!bad.reason.empty()); });
  FUZZ_CHECK_MSG(checked.ok(), checked.status().ToString());
  return previous;
}

void Run(uint8_t flags, const std::vector<std::string_view>& files, const std::string& root) {
  const bool with_db = flags & 1;
  JournalOptions next;
  if (flags & 2) {
    next.ring_bytes = 1 << 14;
    if (flags & 4) next.ring_lanes = 2;
  }
  const std::string stream_dir = root + "/" + std::string(kAppStream);
  if (with_db) {
    auto journal = Journal::Open(root, kAppStream);
    FUZZ_CHECK_MSG(journal.ok(), journal.status().ToString());
    for (int i = 0; i < 3; ++i) {
      const std::string e = Gauge(i);
      FUZZ_CHECK((*journal)->Append(Bytes(e), Durability::kDurable).ok());
    }
  } else {
    std::filesystem::create_directories(stream_dir);
  }
  std::vector<std::string> paths;
  for (size_t k = 0; k < files.size(); ++k) {
    paths.push_back(
        stream_dir + "/" +
        (k == 0 ? std::string(internal::kRingFile) : "RING.lane-" + std::to_string(k - 1)));
    WriteFile(paths.back(), files[k]);
  }
  for (const std::string& p : paths) CheckScan(p);
  if (with_db) ReadBack(root, nullptr);

  uint64_t appended = 0;
  const std::string last = Gauge(-1);
  {
    auto journal = Journal::Open(root, kAppStream, next);
    FUZZ_CHECK_MSG(journal.ok(), journal.status().ToString());
    for (const std::string& w : (*journal)->TakeWarnings()) FUZZ_CHECK(!w.empty());
    const uint64_t before = (*journal)->last_seq();
    auto seq = (*journal)->Append(Bytes(last), Durability::kDurable);
    FUZZ_CHECK_MSG(seq.ok(), seq.status().ToString());
    FUZZ_CHECK(*seq > before);
    appended = *seq;
  }
  std::string read_last;
  FUZZ_CHECK(ReadBack(root, &read_last) == appended);
  FUZZ_CHECK(read_last == last);
  {
    auto journal = Journal::Open(root, kAppStream, next);
    FUZZ_CHECK_MSG(journal.ok(), journal.status().ToString());
    FUZZ_CHECK((*journal)->last_seq() == appended);
  }
}

}  // namespace
}  // namespace blackbox::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  blackbox::fuzz::MakeTempBase("ring");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blackbox::fuzz;
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string root = NextRoot();
  Run(data[0], SplitFiles(text), root);
  RemoveRoot(root);
  return 0;
}
