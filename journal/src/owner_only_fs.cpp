// A RocksDB FileSystem that keeps every file it creates owner-only (0600).
//
// RocksDB's POSIX filesystem creates files 0644, and the Env switch meant to
// change that (SetAllowNonOwnerAccess) is not implemented by the default Env
// of RocksDB 7.x. Changing the process umask is not an option for a library
// that lives inside someone else's process, so each file is chmod'ed right
// after RocksDB creates it. The directories are 0700 from the start, so there
// is no window in which another user could open a file.
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <sys/stat.h>

#include <memory>

#include "internal.h"

namespace blackbox::internal {
namespace {

class OwnerOnlyFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit OwnerOnlyFileSystem(const std::shared_ptr<rocksdb::FileSystem>& target)
      : rocksdb::FileSystemWrapper(target) {}

  static const char* kClassName() { return "BlackboxOwnerOnlyFileSystem"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->NewWritableFile(f, o, r, d));
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override {
    return Restrict(f, target()->ReopenWritableFile(f, o, r, d));
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
  static rocksdb::IOStatus Restrict(const std::string& fname, rocksdb::IOStatus s) {
    if (s.ok()) chmod(fname.c_str(), 0600);
    return s;
  }
};

}  // namespace

rocksdb::Env* OwnerOnlyEnv() {
  // Lives for the whole process: databases hold on to their Env until closed,
  // and static destruction order must not matter.
  static rocksdb::Env* env = rocksdb::NewCompositeEnv(std::make_shared<OwnerOnlyFileSystem>(
                                                          rocksdb::FileSystem::Default()))
                                 .release();
  return env;
}

}  // namespace blackbox::internal
