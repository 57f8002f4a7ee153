// A pull-style walk over one stream's events: the building block of every scan
// (the writer's, a reader's, and the merged reader's k-way merge).
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/sst_file_reader.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "blackbox/journal.h"
#include "high_water.h"
#include "ring.h"

namespace blackbox::internal {

// How a gap in the numbering is reported: "sequence gap: seqs A..B are missing (N record(s))".
inline constexpr std::string_view kGapReason = "sequence gap";

class Cursor {
 public:
  // Positions at the first record of `stream` that passes `options`.
  // `db` and `cf` must outlive the cursor. A gap in the numbering counts as
  // lost only the seqs outside `reported` (damage the caller reported
  // already, such as records dropped from a damaged log) and outside the
  // ranges the stream's high-water mark records as never given out.
  // `ring` (a reader's view of the writer's ring, reader.cpp) follows the
  // database's records: seqs above them, verified already; it must outlive
  // the cursor. `ring_only`: the database holds nothing from
  // options.from_seq on (the caller knows its last seq), so only `ring` is
  // read and no database iterator is made.
  Cursor(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string stream, ScanOptions options,
         std::vector<SeqRange> reported = {}, std::span<const RingRecord> ring = {},
         bool ring_only = false);

  bool Valid() const { return valid_; }
  // REQUIRES: Valid(). The views stay valid until Next().
  const Record& record() const { return record_; }
  void Next();

 private:
  // Moves forward from the iterator's position to the next record that is
  // intact and passes the filters; reports (and skips) damaged ones.
  void Settle();
  // The same over `ring_`, once the database has no more records.
  void SettleRing();
  // Reports damage covering seqs first..last (as far as known).
  void Report(uint64_t first, uint64_t last, std::string reason);
  // Accounts for `seq`, the next key met: reports a gap in the numbering
  // between it and what was met or reported before.
  void Account(uint64_t seq);

  // Salvage mode. RocksDB's merged iterator fails every seek that reaches a
  // damaged L0 file (the index of a file's last block covers every key past
  // it) or a file that cannot be opened, so one bad file would hide the whole
  // stream (and probing forward past the damage would skip good records of
  // the other files). On the first iterator error the cursor reads
  // instead each live table file on its own (rocksdb::SstFileReader) and the
  // memtable (what the WAL held), merges them by key, and reports each
  // damaged file or block once, with the seqs it covered.
  struct Source {
    std::string name;                                // the file, or "memtable"
    std::unique_ptr<rocksdb::SstFileReader> reader;  // null for the memtable
    std::unique_ptr<rocksdb::Iterator> it;           // null once given up
    uint64_t last_good = 0;                          // last seq read from it
    uint64_t largest = 0;                            // its highest seq
  };
  void StartSalvage();
  // Moves `s` past damage (probing forward) until it is valid or exhausted.
  void SettleSource(Source& s);
  // The source holding the smallest key above the last one returned, or null.
  Source* PickSource();
  bool RawValid();
  rocksdb::Slice RawKey() const;
  rocksdb::Slice RawValue() const;
  void RawNext();
  bool salvage_ = false;
  std::vector<Source> sources_;
  Source* current_ = nullptr;
  std::string last_key_;  // the last key returned in salvage mode

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  std::string stream_;
  ScanOptions options_;
  rocksdb::ReadOptions read_options_;
  std::unique_ptr<rocksdb::Iterator> it_;
  uint64_t last_seq_seen_ = 0;
  // The highest seq met or covered by a report; 0 before the first key.
  uint64_t accounted_ = 0;
  std::vector<SeqRange> reported_;  // see the constructor
  std::vector<SeqRange> unused_;    // never given out (high_water.h)
  std::span<const RingRecord> ring_;
  size_t ring_pos_ = 0;
  bool in_ring_ = false;  // the database's records are done
  bool valid_ = false;
  Record record_;
  // RocksDB values carry no alignment guarantee; FlatBuffers needs 8.
  std::vector<uint64_t> aligned_;
};

}  // namespace blackbox::internal
