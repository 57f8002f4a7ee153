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

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "file_system_hook.h"
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
