// Reader::Impl, shared by reader.cpp and merged_reader.cpp. Not installed.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blackbox/journal.h"
#include "ring.h"

namespace blackbox {

class Reader::Impl {
 public:
  ~Impl() { Close(); }
  // Opens the database read-only, then reads the ring (ReadRing); when the
  // ring has moved past the database as opened, opens the database once more.
  Status Open();
  Status OpenReadOnly();
  void Close();

  enum class RingFit {
    kNone,    // no ring, an unreadable one, or nothing in it past `after`
    kFits,    // records after `after` (maybe none) appended to `ring`
    kBehind,  // the ring's records start past after + 1: the database has moved on
  };
  // Appends to `ring` the records of <path>/RING that continue the view from
  // `after` (its last seq): the consecutive ones from after + 1 on, each an
  // intact event of this stream, up to the first that is not. Sets has_ring.
  RingFit ReadRing(uint64_t after);
  // The last seq of the database as opened (0 when empty). Read once per
  // open: a read-only database does not change, and each read is an
  // iterator, which sorts the memtable the log was replayed into.
  uint64_t DbLastSeq() const;

  std::string root;
  std::string stream;
  std::string path;
  JournalOptions options;
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* events_cf = nullptr;     // owned by db
  rocksdb::ColumnFamilyHandle* snapshots_cf = nullptr;  // ours; null when absent
  // The writer's ring records not in the database as opened: consecutive
  // seqs from DbLastSeq() + 1, verified. Shown after the database's records.
  std::vector<internal::RingRecord> ring;
  bool has_ring = false;                    // <path>/RING existed at the last read
  mutable std::optional<uint64_t> db_last;  // DbLastSeq() once read; reset by Close
};

}  // namespace blackbox
