// RocksDB tuning for a journal: small, append-only, sequential keys.
//
// The journal lives inside the host process, so its footprint is a feature:
// the defaults of RocksDB (64 MB memtables, 8 MB block cache per database,
// 64-shard caches, info logs that grow without bound) would add tens of MB to
// a process that only journals a few events per second. See README,
// "Footprint", for the figures this gives.
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/env.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <mutex>

#include "internal.h"

namespace blackbox::internal {
namespace {

std::shared_ptr<rocksdb::Cache> SharedBlockCache(size_t capacity) {
  // One cache per process, shared by every journal database it opens (a tool
  // may open many streams); 1 shard bit: small caches do not need 64 shards.
  static std::mutex mu;
  static std::shared_ptr<rocksdb::Cache> cache;
  std::lock_guard lock(mu);
  if (!cache) cache = rocksdb::NewLRUCache(capacity, /*num_shard_bits=*/1);
  return cache;
}

rocksdb::CompressionType PickCompression() {
  auto supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t) != supported.end();
  };
  // Events are small and repetitive (field names are not stored, but stream
  // names, contexts and frames repeat): LZ4 is cheap enough for the writer.
  if (has(rocksdb::kLZ4Compression)) return rocksdb::kLZ4Compression;
  if (has(rocksdb::kSnappyCompression)) return rocksdb::kSnappyCompression;
  return rocksdb::kNoCompression;
}

}  // namespace

rocksdb::DBOptions MakeDBOptions(const JournalOptions& options) {
  rocksdb::DBOptions o;
  // Files 0600 (RocksDB creates 0644); see owner_only_fs.cpp.
  o.env = OwnerOnlyEnv();
  o.create_if_missing = options.create_if_missing;
  o.create_missing_column_families = true;
  // One flush and one compaction thread at most (RocksDB's process-wide pools).
  o.max_background_jobs = 2;
  o.max_subcompactions = 1;
  // One writer thread at a time (the group-commit leader), and the vector
  // memtable does not support concurrent inserts.
  o.allow_concurrent_memtable_write = false;
  o.max_open_files = 64;
  // Opening is not on anyone's hot path; a tool opening many streams should
  // not start a thread pool per database.
  o.max_file_opening_threads = 1;
  o.table_cache_numshardbits = 2;
  // Keep the WAL short: it is replayed on open, by the writer and by every
  // read-only reader.
  o.max_total_wal_size = 4 << 20;
  // A torn tail after a crash is cut at the last intact record; everything
  // before it is kept (the journal's durability promise is about that prefix).
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // After a failed write the journal closes and reopens the database
  // (journal.cpp); RocksDB's own automatic resume would race with that, and
  // closing a database waits for its retry interval (1 s) first.
  o.max_bgerror_resume_count = 0;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.max_log_file_size = 256 << 10;
  o.keep_log_file_num = 2;
  o.stats_dump_period_sec = 0;
  o.stats_persist_period_sec = 0;
  o.persist_stats_to_disk = false;
  return o;
}

rocksdb::ColumnFamilyOptions MakeColumnFamilyOptions(const JournalOptions& options) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = options.write_buffer_size;
  o.max_write_buffer_number = 2;
  o.min_write_buffer_number_to_merge = 1;
  o.target_file_size_base = 8 << 20;
  o.max_bytes_for_level_base = 32 << 20;
  o.level0_file_num_compaction_trigger = 4;
  o.compression = PickCompression();
  // Keys arrive in increasing order: an append-only vector beats a skiplist
  // (bench/journal: buffered append 1.08x raw Put with it, 0.7-0.8x without).
  o.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();

  rocksdb::BlockBasedTableOptions t;
  t.block_cache = SharedBlockCache(options.block_cache_size);
  t.block_size = 16 << 10;
  // Index blocks go through the (bounded) cache instead of living on the heap.
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

}  // namespace blackbox::internal
