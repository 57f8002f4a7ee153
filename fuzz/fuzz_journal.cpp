// fuzz_journal: arbitrary records through a real journal on disk.
//
// Journal::Append stores whatever bytes it is given, so a damaged or hostile
// record can sit in a stream; readers must report it and go on. The input is
//   <flags byte> <record> SEPARATOR <record> SEPARATOR ...
// and each record is appended to stream "app" of a fresh journal in a
// temporary directory. Then:
//   - Reader::Scan visits exactly the records VerifyEvent accepts, in seq
//     order, with their bytes unchanged, and reports every other record (by
//     its seq) to on_bad, once;
//   - Reader::Verify checks every record, and reports exactly the rejected
//     records plus the accepted ones that name another stream;
//   - LoadState folds the root to the same state as folding the accepted
//     records by hand, with or without a snapshot (flags), and after
//     compaction (flags).
// Flags: bit 0 durable appends; bit 1 store a snapshot of the folded state;
// bit 2 with bit 1: the snapshot covers only the first half, and the last
// record's raw bytes are stored as a newer snapshot (a damaged snapshot must
// be skipped); bit 3 with bit 1: compact under the (valid) snapshot.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "blackbox/state_io.h"
#include "fuzz_check.h"
#include "fuzz_temp.h"

namespace blackbox::fuzz {
namespace {

constexpr std::string_view kSeparator = "<<BBREC>>";
constexpr size_t kMaxRecords = 64;

// Records are copied out of the input: FlatBuffers reads need aligned
// buffers, and a std::string's bytes are (heap or in-object, 8 bytes at least).
std::vector<std::string> SplitRecords(std::string_view text) {
  std::vector<std::string> out;
  while (out.size() < kMaxRecords) {
    size_t end = text.find(kSeparator);
    out.emplace_back(text.substr(0, end));
    if (end == text.npos) break;
    text.remove_prefix(end + kSeparator.size());
  }
  return out;
}

// What folding the accepted records by hand gives, as snapshot bytes (bytes
// compare NaN gauges equal to themselves).
std::string FoldByHand(const std::vector<std::string>& records, size_t count) {
  SystemState state;
  for (size_t i = 0; i < count; ++i) {
    if (const fb::Event* e = VerifyEvent(Bytes(records[i]))) Fold(state, *e, kAppStream, i + 1);
  }
  return EncodeSnapshot(state);
}

void Run(uint8_t flags, const std::vector<std::string>& records, const std::string& root) {
  const bool durable = flags & 1;
  const bool snapshot = flags & 2;
  const bool raw_snapshot = flags & 4;
  const bool compact = flags & 8;
  const uint64_t n = records.size();

  uint64_t deleted_through = 0;
  {
    auto opened = Journal::Open(root, kAppStream);
    FUZZ_CHECK_MSG(opened.ok(), opened.status().ToString());
    Journal& journal = *opened.value();
    for (uint64_t i = 0; i < n; ++i) {
      auto seq =
          journal.Append(Bytes(records[i]), durable ? Durability::kDurable : Durability::kBuffered);
      FUZZ_CHECK_MSG(seq.ok(), seq.status().ToString());
      FUZZ_CHECK(seq.value() == i + 1);
    }
    if (snapshot) {
      // With a damaged snapshot on top, the valid one covers only the first
      // half, so that LoadState has to fall back to it and fold the rest.
      uint64_t covered = raw_snapshot && n > 1 ? (n + 1) / 2 : n;
      std::string state = FoldByHand(records, covered);
      FUZZ_CHECK(journal.PutSnapshot(covered, Bytes(state)).ok());
      // Bytes that happen to decode as a snapshot are not damage; skip them.
      bool damaged = covered < n && !DecodeSnapshot(Bytes(records[n - 1])).ok();
      if (damaged) FUZZ_CHECK(journal.PutSnapshot(n, Bytes(records[n - 1])).ok());
      // Compaction trusts the newest snapshot: only compact under a valid one.
      if (compact && !damaged) {
        auto stats = journal.Compact(Retention{.keep_events = 0, .keep_ns = std::nullopt});
        FUZZ_CHECK_MSG(stats.ok(), stats.status().ToString());
        deleted_through = stats.value().deleted_through;
        FUZZ_CHECK(deleted_through <= covered);
      }
    }
  }

  auto opened = Reader::Open(root, kAppStream);
  FUZZ_CHECK_MSG(opened.ok(), opened.status().ToString());
  const Reader& reader = *opened.value();

  // Scan: accepted records in order, rejected ones reported once each.
  uint64_t next = deleted_through + 1;  // next seq the scan should account for
  auto skip_to = [&](uint64_t seq, bool accepted) {
    for (; next < seq; ++next) {
      FUZZ_CHECK_MSG(VerifyEvent(Bytes(records[next - 1])) == nullptr,
                     "an accepted record was neither visited nor reported");
    }
    const bool verifies = VerifyEvent(Bytes(records[seq - 1])) != nullptr;
    FUZZ_CHECK_MSG(verifies == accepted, accepted ? "scan visited a record VerifyEvent rejects"
                                                  : "scan reported a record VerifyEvent accepts");
    next = seq + 1;
  };
  ScanOptions scan;
  uint64_t reported = 0;
  scan.on_bad = [&](const BadRecord& bad) {
    FUZZ_CHECK(!bad.reason.empty() && bad.stream == kAppStream);
    FUZZ_CHECK_MSG(bad.seq >= next && bad.seq <= n, bad.reason);
    skip_to(bad.seq, false);
    ++reported;
  };
  FUZZ_CHECK(reader
                 .Scan(scan,
                       [&](const Record& r) {
                         FUZZ_CHECK(r.seq >= next && r.seq <= n);
                         skip_to(r.seq, true);
                         FUZZ_CHECK(r.bytes == records[r.seq - 1] && r.event != nullptr);
                         return true;
                       })
                 .ok());
  FUZZ_CHECK_MSG(next == n + 1 || deleted_through == n, "scan stopped early");

  // Verify: every record checked, exactly the expected problems.
  uint64_t expected_problems = 0;
  for (uint64_t seq = deleted_through + 1; seq <= n; ++seq) {
    const fb::Event* e = VerifyEvent(Bytes(records[seq - 1]));
    if (e == nullptr || e->stream() == nullptr || e->stream()->string_view() != kAppStream) {
      ++expected_problems;
    }
  }
  uint64_t problems = 0;
  auto checked = reader.Verify([&](const BadRecord& bad) {
    FUZZ_CHECK(!bad.reason.empty());
    ++problems;
  });
  FUZZ_CHECK_MSG(checked.ok(), checked.status().ToString());
  FUZZ_CHECK(checked.value() == n - deleted_through);
  FUZZ_CHECK(problems == expected_problems);

  // LoadState: the snapshot (when usable) plus the tail equals the full fold.
  auto state = LoadState(root);
  FUZZ_CHECK_MSG(state.ok(), state.status().ToString());
  FUZZ_CHECK_MSG(EncodeSnapshot(state.value()) == FoldByHand(records, n),
                 "LoadState differs from folding the records by hand");
}

}  // namespace
}  // namespace blackbox::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  blackbox::fuzz::MakeTempBase("journal");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blackbox::fuzz;
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> records = SplitRecords(text);
  const std::string root = NextRoot();
  Run(data[0], records, root);
  RemoveRoot(root);
  return 0;
}
