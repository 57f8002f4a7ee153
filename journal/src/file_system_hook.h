// A test hook, not installed and not part of the API: the filesystem under
// every journal database opened from now on in this process (writers and
// readers alike). The fault-injection tests (tests/faults/fault_fs.h) put a
// filesystem here that fails chosen writes, syncs and renames. Files are
// still made owner-only on top of it.
#pragma once

#include <rocksdb/file_system.h>

#include <memory>

namespace blackbox::internal {

// Databases already open keep the filesystem they were opened with; nullptr
// restores RocksDB's default. Thread-safe.
void SetBaseFileSystemForTesting(std::shared_ptr<rocksdb::FileSystem> base);

}  // namespace blackbox::internal
