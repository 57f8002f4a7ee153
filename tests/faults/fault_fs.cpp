#include "fault_fs.h"

#include <utility>

namespace blackbox::faults {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

constexpr std::array<std::string_view, kFaultKinds> kNames = {"append", "sync", "rename", "dirsync",
                                                              "create"};

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> target, FaultFileSystem* fs)
      : rocksdb::FSWritableFileOwnerWrapper(std::move(target)), fs_(fs) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kAppend)) return Torn(data, o, d);
    return target()->Append(data, o, d);
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                  IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kAppend)) return Torn(data, o, d);
    return target()->Append(data, o, v, d);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kAppend)) return NoSpace();
    return target()->PositionedAppend(data, offset, o, d);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& v, IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kAppend)) return NoSpace();
    return target()->PositionedAppend(data, offset, o, v, d);
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kSync)) return IOStatus::IOError("injected sync failure");
    return target()->Sync(o, d);
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kSync)) return IOStatus::IOError("injected fsync failure");
    return target()->Fsync(o, d);
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& o,
                     IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kSync)) return IOStatus::IOError("injected range sync failure");
    return target()->RangeSync(offset, nbytes, o, d);
  }

 private:
  static IOStatus NoSpace() { return IOStatus::NoSpace("injected: no space left on device"); }
  // Every other failed append leaves half of its data behind, as write(2)
  // does when the disk fills in the middle of a record.
  IOStatus Torn(const Slice& data, const IOOptions& o, IODebugContext* d) {
    if (++failures_ % 2 == 0 && data.size() > 1) {
      target()->Append(Slice(data.data(), data.size() / 2), o, d).PermitUncheckedError();
    }
    return NoSpace();
  }

  FaultFileSystem* fs_;
  uint64_t failures_ = 0;
};

class FaultDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> target, FaultFileSystem* fs)
      : rocksdb::FSDirectoryWrapper(std::move(target)), fs_(fs) {}
  IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
    if (fs_->Hit(FaultKind::kDirSync)) return IOStatus::IOError("injected directory fsync failure");
    return FSDirectoryWrapper::Fsync(o, d);
  }
  IOStatus FsyncWithDirOptions(const IOOptions& o, IODebugContext* d,
                               const rocksdb::DirFsyncOptions& options) override {
    if (fs_->Hit(FaultKind::kDirSync)) return IOStatus::IOError("injected directory fsync failure");
    return FSDirectoryWrapper::FsyncWithDirOptions(o, d, options);
  }

 private:
  FaultFileSystem* fs_;
};

}  // namespace

std::string_view FaultKindName(FaultKind kind) { return kNames[static_cast<size_t>(kind)]; }

bool ParseFaultKind(std::string_view name, FaultKind* kind) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) {
      *kind = static_cast<FaultKind>(i);
      return true;
    }
  }
  return false;
}

FaultFileSystem::FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> target)
    : rocksdb::FileSystemWrapper(std::move(target)) {}

void FaultFileSystem::Arm(FaultKind kind, uint64_t n, uint64_t burst) {
  first_.store(n);
  burst_.store(burst);
  armed_kind_.store(static_cast<int>(kind));
}

void FaultFileSystem::Disarm() { armed_kind_.store(-1); }

uint64_t FaultFileSystem::count(FaultKind kind) const {
  return counts_[static_cast<size_t>(kind)].load();
}

bool FaultFileSystem::Hit(FaultKind kind) {
  const uint64_t n = counts_[static_cast<size_t>(kind)].fetch_add(1) + 1;
  if (armed_kind_.load() != static_cast<int>(kind)) return false;
  const uint64_t first = first_.load(), burst = burst_.load();
  if (n < first || (burst != 0 && n >= first + burst)) return false;
  injected_.fetch_add(1);
  return true;
}

IOStatus FaultFileSystem::Wrap(IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* r) {
  if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(*r), this);
  return s;
}

IOStatus FaultFileSystem::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                          std::unique_ptr<rocksdb::FSWritableFile>* r,
                                          IODebugContext* d) {
  if (Hit(FaultKind::kCreate)) return IOStatus::NoSpace("injected: cannot create " + f);
  return Wrap(target()->NewWritableFile(f, o, r, d), r);
}

IOStatus FaultFileSystem::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                             std::unique_ptr<rocksdb::FSWritableFile>* r,
                                             IODebugContext* d) {
  if (Hit(FaultKind::kCreate)) return IOStatus::NoSpace("injected: cannot reopen " + f);
  return Wrap(target()->ReopenWritableFile(f, o, r, d), r);
}

IOStatus FaultFileSystem::ReuseWritableFile(const std::string& f, const std::string& old,
                                            const rocksdb::FileOptions& o,
                                            std::unique_ptr<rocksdb::FSWritableFile>* r,
                                            IODebugContext* d) {
  if (Hit(FaultKind::kCreate)) return IOStatus::NoSpace("injected: cannot reuse " + f);
  return Wrap(target()->ReuseWritableFile(f, old, o, r, d), r);
}

IOStatus FaultFileSystem::RenameFile(const std::string& src, const std::string& dst,
                                     const IOOptions& o, IODebugContext* d) {
  if (Hit(FaultKind::kRename)) return IOStatus::IOError("injected rename failure: " + dst);
  return target()->RenameFile(src, dst, o, d);
}

IOStatus FaultFileSystem::NewDirectory(const std::string& name, const IOOptions& o,
                                       std::unique_ptr<rocksdb::FSDirectory>* r,
                                       IODebugContext* d) {
  IOStatus s = target()->NewDirectory(name, o, r, d);
  if (s.ok()) *r = std::make_unique<FaultDirectory>(std::move(*r), this);
  return s;
}

}  // namespace blackbox::faults
