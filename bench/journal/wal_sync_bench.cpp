// What a durable append costs the filesystem, and whether RocksDB would let
// the journal make it cheaper.
//
//   wal_sync_bench [--dir DIR] [--repeat R] [--scale X]
//
// 1. fdatasync after a small write, three ways, interleaved write by write so
//    that each median is of the same moment: appending to a growing file,
//    appending into a region fallocate()d with FALLOC_FL_KEEP_SIZE (what
//    RocksDB does to a write-ahead log), appending into a region fallocate()d
//    with its size (mode 0: RocksDB's FileOptions::fallocate_with_keep_size
//    = false), and overwriting blocks written and synced before (what a
//    recycled log does). On ext4 the first two change the inode (size,
//    extents), which the sync must write too (a journal commit, or without a
//    journal the inode's block); the third only once per new block (the
//    extent goes from unwritten to written); the fourth does not.
// 2. RocksDB's recycle_log_file_num under each WALRecoveryMode: the value a
//    database opened with 4 keeps.
#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bench_support.h"

namespace {

using blackbox::bench::Median;

double NowUs() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SyncCosts(const std::filesystem::path& dir, int writes, size_t record) {
  const off_t span = static_cast<off_t>(writes) * static_cast<off_t>(record) + (1 << 20);
  constexpr int kCases = 4;
  const char* names[kCases] = {"append, growing file", "append, fallocate'd (RocksDB)",
                               "append, fallocate'd with size", "overwrite written blocks"};
  int fds[kCases];
  for (int k = 0; k < kCases; ++k) {
    const std::string path = (dir / fmt::format("sync{}", k)).string();
    fds[k] = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fds[k] < 0) throw std::runtime_error("open " + path);
    if (k == 1 && fallocate(fds[k], FALLOC_FL_KEEP_SIZE, 0, span) != 0) {
      throw std::runtime_error("fallocate");
    }
    if (k == 2 && fallocate(fds[k], 0, 0, span) != 0) throw std::runtime_error("fallocate");
    if (k == 3) {
      const std::string zeros(1 << 20, '\0');
      for (off_t done = 0; done < span; done += static_cast<off_t>(zeros.size())) {
        if (write(fds[k], zeros.data(), zeros.size()) != static_cast<ssize_t>(zeros.size())) {
          throw std::runtime_error("write");
        }
      }
      lseek(fds[k], 0, SEEK_SET);
    }
    fsync(fds[k]);
  }
  const std::string bytes(record, 'x');
  std::vector<double> took[kCases];
  for (int i = 0; i < writes; ++i) {
    for (int k = 0; k < kCases; ++k) {
      const double t0 = NowUs();
      if (write(fds[k], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
          fdatasync(fds[k]) != 0) {
        throw std::runtime_error("write or fdatasync");
      }
      took[k].push_back(NowUs() - t0);
    }
  }
  fmt::print("{}-byte write + fdatasync, medians of {} (interleaved):\n", record, writes);
  for (int k = 0; k < kCases; ++k) {
    close(fds[k]);
    fmt::print("  {:<32} {:8.1f} us  ({:.2f}x the growing file)\n", names[k], Median(took[k]),
               Median(took[0]) / Median(took[k]));
  }
}

void RecyclingAllowed(const std::filesystem::path& dir) {
  const std::pair<rocksdb::WALRecoveryMode, const char*> modes[] = {
      {rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords, "kTolerateCorruptedTailRecords"},
      {rocksdb::WALRecoveryMode::kAbsoluteConsistency, "kAbsoluteConsistency"},
      {rocksdb::WALRecoveryMode::kPointInTimeRecovery, "kPointInTimeRecovery"},
      {rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords, "kSkipAnyCorruptedRecords"}};
  fmt::print("recycle_log_file_num = 4 asked, kept by RocksDB {}.{}:\n", ROCKSDB_MAJOR,
             ROCKSDB_MINOR);
  for (const auto& [mode, name] : modes) {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.recycle_log_file_num = 4;
    o.wal_recovery_mode = mode;
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(o, (dir / name).string(), &raw);
    if (!s.ok()) throw std::runtime_error(s.ToString());
    std::unique_ptr<rocksdb::DB> db(raw);
    fmt::print("  {:<32} {}\n", name, db->GetDBOptions().recycle_log_file_num);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const blackbox::bench::BenchArgs args =
      blackbox::bench::ParseBenchArgs(argc, argv, "wal_sync_bench");
  const std::filesystem::path dir = args.base;
  std::filesystem::create_directories(dir);
  const int writes = std::max(10, static_cast<int>(500 * args.scale));
  for (int r = 0; r < args.repeat; ++r) SyncCosts(dir, writes, 400);
  RecyclingAllowed(dir);
  std::filesystem::remove_all(dir);
  return 0;
}
