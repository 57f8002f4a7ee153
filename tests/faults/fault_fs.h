// A rocksdb::FileSystem that fails chosen operations, for the fault-injection
// suite (fault_injection_test.cpp). It wraps RocksDB's own filesystem and
// counts, per kind, every operation that could fail on a real disk:
//
//   kAppend    FSWritableFile::Append / PositionedAppend (WAL, SST, MANIFEST,
//              info LOG, OPTIONS...): fails like a full disk, with NoSpace;
//              every other failure writes half of the data first (a torn write,
//              as write(2) leaves it when the disk fills mid-record)
//   kSync      FSWritableFile::Sync / Fsync / RangeSync: fails with IOError
//   kRename    FileSystem::RenameFile (CURRENT, OPTIONS): IOError, nothing renamed
//   kDirSync   FSDirectory::Fsync / FsyncWithDirOptions: IOError
//   kCreate    NewWritableFile / ReopenWritableFile / ReuseWritableFile: NoSpace
//
// Arm(kind, n, burst) makes the n-th operation of that kind (1-based, counted
// from process start) and the burst-1 after it fail; burst 0 means every one
// from the n-th on until Disarm() (a disk that stays full). Thread-safe.
#pragma once

#include <rocksdb/file_system.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace blackbox::faults {

enum class FaultKind { kAppend, kSync, kRename, kDirSync, kCreate };
inline constexpr int kFaultKinds = 5;
std::string_view FaultKindName(FaultKind kind);
// "append" -> kAppend, ...; false for an unknown name.
bool ParseFaultKind(std::string_view name, FaultKind* kind);

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> target);

  static const char* kClassName() { return "BlackboxFaultFileSystem"; }
  const char* Name() const override { return kClassName(); }

  void Arm(FaultKind kind, uint64_t n, uint64_t burst);
  void Disarm();
  // Operations of `kind` seen so far, and how many of them were failed.
  uint64_t count(FaultKind kind) const;
  uint64_t injected() const { return injected_.load(); }

  // Counts one operation of `kind`; true when it must fail.
  bool Hit(FaultKind kind);

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* d) override;

 private:
  rocksdb::IOStatus Wrap(rocksdb::IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* r);

  std::array<std::atomic<uint64_t>, kFaultKinds> counts_{};
  std::atomic<int> armed_kind_{-1};
  std::atomic<uint64_t> first_{0};
  std::atomic<uint64_t> burst_{0};
  std::atomic<uint64_t> injected_{0};
};

}  // namespace blackbox::faults
