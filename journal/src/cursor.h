// A pull-style walk over one stream's events: the building block of every scan
// (the writer's, a reader's, and the merged reader's k-way merge).
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <vector>

#include "blackbox/journal.h"

namespace blackbox::internal {

class Cursor {
 public:
  // Positions at the first record of `stream` that passes `options`.
  // `db` and `cf` must outlive the cursor.
  Cursor(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string stream, ScanOptions options);

  bool Valid() const { return valid_; }
  // REQUIRES: Valid(). The views stay valid until Next().
  const Record& record() const { return record_; }
  void Next();

 private:
  // Moves forward from the iterator's position to the next record that is
  // intact and passes the filters; reports (and skips) damaged ones.
  void Settle();
  // After the iterator failed (e.g. a block checksum mismatch), reports the
  // damage and seeks past it.
  bool Resume();
  void Report(uint64_t seq, std::string reason);

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  std::string stream_;
  ScanOptions options_;
  rocksdb::ReadOptions read_options_;
  std::unique_ptr<rocksdb::Iterator> it_;
  uint64_t last_seq_seen_ = 0;
  uint64_t stream_last_seq_ = 0;
  int resumes_ = 0;
  bool valid_ = false;
  Record record_;
  // RocksDB values carry no alignment guarantee; FlatBuffers needs 8.
  std::vector<uint64_t> aligned_;
};

}  // namespace blackbox::internal
