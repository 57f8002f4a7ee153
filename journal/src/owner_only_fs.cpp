// A RocksDB FileSystem that keeps every file it creates owner-only (0600).
//
// RocksDB's POSIX filesystem creates files 0644, and the Env switch meant to
// change that (SetAllowNonOwnerAccess) is not implemented by the default Env
// of RocksDB 7.x. Changing the process umask is not an option for a library
// that lives inside someone else's process, so each file is chmod'ed right
// after RocksDB creates it. The directories are 0700 from the start, so there
// is no window in which another user could open a file.
//
// It also preallocates the write-ahead logs with their size (fallocate
// without FALLOC_FL_KEEP_SIZE) where RocksDB reserves space only. With the
// default every append grows the log, and each fdatasync of a durable append
// also writes the inode for its new size; with the size set up front it
// writes the data (and once per new block the extent's change from
// unwritten): 1.48x as fast a write + fdatasync here (bench/journal,
// wal_sync_bench). So a log ends in zeros never written while a writer fills
// it and after a writer is killed (a clean close cuts it to its records),
// and every reading of a log (RocksDB's, through NewSequentialFile, and the
// journal's own scan) stops at WalReadEnd and WalEnd (wal_scan.h), which makes it read as a
// growing log did: a prefix of what was written, never a part after a hole.
#include <fcntl.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "file_system_hook.h"
#include "internal.h"
#include "unique_fd.h"
#include "wal_scan.h"

namespace blackbox::internal {
namespace {

bool IsLog(const std::string& fname) { return fname.ends_with(".log"); }

// A log read up to its WalReadEnd, as found when it is opened.
class LogReadToEnd : public rocksdb::FSSequentialFile {
 public:
  LogReadToEnd(std::unique_ptr<rocksdb::FSSequentialFile> target, uint64_t end)
      : target_(std::move(target)), left_(end) {}
  rocksdb::IOStatus Read(size_t n, const rocksdb::IOOptions& o, rocksdb::Slice* result,
                         char* scratch, rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s =
        target_->Read(static_cast<size_t>(std::min<uint64_t>(n, left_)), o, result, scratch, d);
    left_ -= std::min<uint64_t>(left_, result->size());
    return s;
  }
  rocksdb::IOStatus Skip(uint64_t n) override {
    left_ -= std::min(left_, n);
    return target_->Skip(n);
  }
  rocksdb::IOStatus InvalidateCache(size_t offset, size_t length) override {
    return target_->InvalidateCache(offset, length);
  }

 private:
  std::unique_ptr<rocksdb::FSSequentialFile> target_;
  uint64_t left_;
};

class OwnerOnlyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit OwnerOnlyFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target)
      : rocksdb::FileSystemWrapper(target) {}

  static const char* kClassName() { return "BlackboxOwnerOnlyFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->NewWritableFile(f, ForLog(f, o), r, d));
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->ReopenWritableFile(f, ForLog(f, o), r, d));
  }
  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s = target()->NewSequentialFile(f, o, r, d);
    if (!s.ok() || !IsLog(f)) return s;
    // The end, found before RocksDB reads a byte: what the writer writes
    // after it is for a later reading.
    Fd fd(::open(f.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return s;  // read it all, as before
    *r = std::make_unique<LogReadToEnd>(std::move(*r),
                                        WalReadEnd(fd.get(), static_cast<uint64_t>(st.st_size)));
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->ReuseWritableFile(f, old, o, r, d));
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->NewRandomRWFile(f, o, r, d));
  }
  rocksdb::IOStatus LockFile(const std::string& f, const rocksdb::IOOptions& o,
                             rocksdb::FileLock** l, rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->LockFile(f, o, l, d));
  }
  rocksdb::IOStatus NewLogger(const std::string& f, const rocksdb::IOOptions& o,
                              std::shared_ptr<rocksdb::Logger>* r,
                              rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->NewLogger(f, o, r, d));
  }

 private:
  // A write-ahead log is preallocated with its size; see above.
  static rocksdb::FileOptions ForLog(const std::string& fname, const rocksdb::FileOptions& o) {
    rocksdb::FileOptions out = o;
    if (IsLog(fname)) out.fallocate_with_keep_size = false;
    return out;
  }
  static rocksdb::IOStatus Restrict(const std::string& fname, rocksdb::IOStatus s) {
    if (s.ok()) chmod(fname.c_str(), 0600);
    return s;
  }
};

}  // namespace

namespace {

rocksdb::Env* MakeOwnerOnlyEnv(const std::shared_ptr<rocksdb::FileSystem>& base) {
  return rocksdb::NewCompositeEnv(std::make_shared<OwnerOnlyFileSystem>(base)).release();
}

// Envs live for the whole process: databases hold on to their Env until
// closed, and static destruction order must not matter. A replaced Env is
// kept until exit, since databases opened with it may still be open: it stays
// reachable from g_retired_envs (never destroyed), so a leak checker does not
// report it either.
std::atomic<rocksdb::Env*> g_env{nullptr};
std::mutex g_env_mu;
auto* g_retired_envs = new std::vector<rocksdb::Env*>;  // guarded by g_env_mu

}  // namespace

rocksdb::Env* OwnerOnlyEnv() {
  if (rocksdb::Env* env = g_env.load(std::memory_order_acquire)) return env;
  std::lock_guard lock(g_env_mu);
  if (g_env.load() == nullptr) g_env.store(MakeOwnerOnlyEnv(rocksdb::FileSystem::Default()));
  return g_env.load();
}

void SetBaseFileSystemForTesting(std::shared_ptr<rocksdb::FileSystem> base) {
  std::lock_guard lock(g_env_mu);
  if (rocksdb::Env* old = g_env.load()) g_retired_envs->push_back(old);
  g_env.store(MakeOwnerOnlyEnv(base ? base : rocksdb::FileSystem::Default()));
}

}  // namespace blackbox::internal
