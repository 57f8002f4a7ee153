// Reader::Impl, shared by reader.cpp and merged_reader.cpp. Not installed.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>

#include "blackbox/journal.h"

namespace blackbox {

class Reader::Impl {
 public:
  ~Impl() { Close(); }
  Status OpenReadOnly();
  void Close();

  std::string root;
  std::string stream;
  std::string path;
  JournalOptions options;
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* events_cf = nullptr;     // owned by db
  rocksdb::ColumnFamilyHandle* snapshots_cf = nullptr;  // ours; null when absent
};

}  // namespace blackbox
