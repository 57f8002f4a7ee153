// Pieces shared by the writer and the readers. Not installed.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/status.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "blackbox/journal.h"
#include "blackbox/status.h"

namespace blackbox::internal {

inline constexpr const char* kSnapshotsColumnFamily = "snapshots";
inline constexpr size_t kKeySize = 8;

// Keys are 8-byte big-endian sequence numbers, so RocksDB's bytewise order is
// numeric order.
inline std::array<char, kKeySize> EncodeKey(uint64_t seq) {
  std::array<char, kKeySize> k{};
  for (size_t i = 0; i < kKeySize; ++i) k[i] = static_cast<char>(seq >> (56 - 8 * i));
  return k;
}
inline bool DecodeKey(std::string_view key, uint64_t* seq) {
  if (key.size() != kKeySize) return false;
  uint64_t v = 0;
  for (char c : key) v = (v << 8) | static_cast<uint8_t>(c);
  *seq = v;
  return true;
}
inline rocksdb::Slice KeySlice(const std::array<char, kKeySize>& k) { return {k.data(), k.size()}; }

// Translates a RocksDB status into ours, prefixing `what` (e.g. the path).
Status FromRocks(const rocksdb::Status& s, std::string_view what);

// The process-wide Env whose files are created owner-only (0600).
rocksdb::Env* OwnerOnlyEnv();

// The info log of a writer's database: <dir>/LOG, written so that a failed
// write never reaches RocksDB (see info_log.cpp).
std::shared_ptr<rocksdb::Logger> OpenInfoLog(const std::string& dir, rocksdb::InfoLogLevel level,
                                             size_t max_size);

// The tuned options for a journal database (see README, "Footprint").
rocksdb::DBOptions MakeDBOptions(const JournalOptions& options);
rocksdb::ColumnFamilyOptions MakeColumnFamilyOptions(const JournalOptions& options);

std::string StreamPath(std::string_view root, std::string_view stream);

// Reads the first and last seq of the default column family with `it`.
void SeqBounds(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, uint64_t* first, uint64_t* last);

// Shared by the writer and the readers: walks events in seq order, verifying
// each record, honouring ScanOptions.
Status ScanEvents(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& stream,
                  const ScanOptions& options, const RecordFn& fn);

Result<std::optional<Snapshot>> LatestSnapshotOf(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf);

// Closes `db` (when open) after destroying the snapshots handle; the events
// handle is the default column family's, owned by the DB. Resets all three.
void CloseJournalDb(std::unique_ptr<rocksdb::DB>& db, rocksdb::ColumnFamilyHandle*& events_cf,
                    rocksdb::ColumnFamilyHandle*& snapshots_cf);

}  // namespace blackbox::internal
