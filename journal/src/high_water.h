// A stream's sequence high-water mark, kept outside RocksDB in
// <stream dir>/HIGH_WATER. Not installed.
//
// Why: numbering continues after the highest sequence number found in the
// database at open. When a write-ahead log is damaged in the middle, RocksDB's
// point-in-time recovery drops every record after the damage, so that number
// goes back and the next events would reuse numbers already acknowledged for
// others. The file keeps what a damaged log cannot take back:
//   - reserved: no sequence number above it was ever given out. The writer
//     raises it (durably, before writing) in chunks of kHighWaterChunk, so
//     an append almost never pays for it;
//   - floor: numbering never starts below it again. Set to reserved + 1 when
//     an open finds the log damaged, before RocksDB drops the damaged part.
// Normal operation never reads `reserved` (a restart continues after the last
// event, without a gap); only damage makes numbering jump above it. The gap
// then holds the records the damage lost and the numbers reserved ahead that
// were never given out; the open that jumps records the latter as an
//   - unused range: first..last, numbers no event ever had, so that readers
//     count as lost only the records that really were (at most
//     kHighWaterUnusedKept ranges, the newest; an older jump then reads as
//     its whole gap lost, an overcount, never an undercount). Numbers of a
//     range that are written after all (a live ring keeps its own numbering
//     across the jump; a dead writer's ring is ingested under its seqs)
//     leave it, durably, before they are written.
//
// The file is replaced atomically: written to a fresh mkstemp file (0600) in
// the stream directory, fsync'd, renamed over HIGH_WATER, and the directory
// fsync'd. Temporaries a crash left behind are removed at the next open.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/status.h"

namespace blackbox::internal {

inline constexpr const char* kHighWaterFile = "HIGH_WATER";
inline constexpr uint64_t kHighWaterChunk = 4096;
inline constexpr size_t kHighWaterUnusedKept = 16;

struct SeqRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};

struct HighWater {
  uint64_t reserved = 0;         // no seq above this was ever given out
  uint64_t floor = 0;            // the next seq is never below this
  std::vector<SeqRange> unused;  // numbers skipped by a jump, never given out
};

// Reads <dir>/HIGH_WATER. A missing file is {0, 0}; a file that cannot be
// read or parsed is an error (its content is then unknown).
Result<HighWater> ReadHighWater(const std::string& dir);

// Replaces <dir>/HIGH_WATER with `mark`, durably. On failure the old file is
// left as it was.
Status WriteHighWater(const std::string& dir, const HighWater& mark);

// Removes the temporaries of WriteHighWater that a crash left in `dir`.
void RemoveHighWaterTemporaries(const std::string& dir);

// Removes every entry of `dir` whose name starts with `prefix` (files a
// crash left half made; a symlink is removed, never followed).
void RemoveTemporaries(const std::string& dir, std::string_view prefix);

}  // namespace blackbox::internal
