// What the manager's records cost in syncs, and that they are synced when its
// calls return. A filesystem under the journal (the journal's test hook,
// journal/src/file_system_hook.h) counts the syncs of the write-ahead logs and
// the bytes appended to them since their last sync. The process test
// ProcessTest.AHandledErrorCostsOneFsyncWithOrWithoutCallbacks counts the
// same from outside, with strace.
#include <gtest/gtest.h>
#include <rocksdb/file_system.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "blackbox/recovery.h"
#include "file_system_hook.h"
#include "temp_dir.h"

namespace blackbox {
namespace {

namespace fs = std::filesystem;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// Syncs of the write-ahead logs (<number>.log) and their bytes not yet
// synced, syncs of table files (<number>.sst), and a switch that fails the
// next sync of a log (IOError, nothing synced).
struct WalCounts {
  std::atomic<uint64_t> syncs{0};
  std::atomic<int64_t> unsynced{0};  // over every log
  std::atomic<uint64_t> table_syncs{0};
  std::atomic<bool> fail_next_sync{false};
  // While set, a sync of a log waits (and is counted in `held`).
  std::atomic<bool> hold_syncs{false};
  std::atomic<uint64_t> held{0};
};

class CountingWal : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  CountingWal(std::unique_ptr<rocksdb::FSWritableFile> target, WalCounts* counts)
      : rocksdb::FSWritableFileOwnerWrapper(std::move(target)), counts_(counts) {}
  ~CountingWal() override { counts_->unsynced -= pending_; }

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* d) override {
    IOStatus s = target()->Append(data, o, d);
    if (s.ok()) Add(data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                  IODebugContext* d) override {
    IOStatus s = target()->Append(data, o, v, d);
    if (s.ok()) Add(data.size());
    return s;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* d) override {
    return Synced(target()->Sync(o, d));
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
    return Synced(target()->Fsync(o, d));
  }

 private:
  void Add(size_t n) {
    pending_ += static_cast<int64_t>(n);
    counts_->unsynced += static_cast<int64_t>(n);
  }
  IOStatus Synced(IOStatus s) {
    if (counts_->hold_syncs.load()) {
      counts_->held.fetch_add(1);
      while (counts_->hold_syncs.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    counts_->syncs.fetch_add(1);
    if (counts_->fail_next_sync.exchange(false)) return IOStatus::IOError("injected sync failure");
    if (s.ok()) {
      counts_->unsynced -= pending_;
      pending_ = 0;
    }
    return s;
  }
  WalCounts* counts_;
  int64_t pending_ = 0;  // RocksDB uses one log file from one thread at a time
};

class CountingTable : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  CountingTable(std::unique_ptr<rocksdb::FSWritableFile> target, WalCounts* counts)
      : rocksdb::FSWritableFileOwnerWrapper(std::move(target)), counts_(counts) {}
  IOStatus Sync(const IOOptions& o, IODebugContext* d) override {
    counts_->table_syncs.fetch_add(1);
    return target()->Sync(o, d);
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
    counts_->table_syncs.fetch_add(1);
    return target()->Fsync(o, d);
  }

 private:
  WalCounts* counts_;
};

class CountingFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit CountingFileSystem(WalCounts* counts)
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()), counts_(counts) {}
  static const char* kClassName() { return "BlackboxWalCountingFileSystem"; }
  const char* Name() const override { return kClassName(); }

  IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                           IODebugContext* d) override {
    IOStatus s = target()->NewWritableFile(f, o, r, d);
    if (s.ok() && IsWal(f)) *r = std::make_unique<CountingWal>(std::move(*r), counts_);
    if (s.ok() && EndsWith(f, ".sst")) *r = std::make_unique<CountingTable>(std::move(*r), counts_);
    return s;
  }
  IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                             const rocksdb::FileOptions& o,
                             std::unique_ptr<rocksdb::FSWritableFile>* r,
                             IODebugContext* d) override {
    IOStatus s = target()->ReuseWritableFile(f, old, o, r, d);
    if (s.ok() && IsWal(f)) *r = std::make_unique<CountingWal>(std::move(*r), counts_);
    return s;
  }

 private:
  static bool EndsWith(const std::string& f, std::string_view end) {
    return f.size() > end.size() && f.compare(f.size() - end.size(), end.size(), end) == 0;
  }
  static bool IsWal(const std::string& f) { return EndsWith(f, ".log"); }
  WalCounts* counts_;
};

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    internal::SetBaseFileSystemForTesting(std::make_shared<CountingFileSystem>(&counts_));
  }
  void TearDown() override { internal::SetBaseFileSystemForTesting(nullptr); }
  RecoveryOptions Options() {
    RecoveryOptions o;
    o.journal_dir = (dir_ / "journal").string();
    o.state_file = "";
    o.handle_signals = false;
    o.capture_crashes = false;
    return o;
  }
  // Syncs of the logs during one failing exception_handler; fails the test
  // when any byte of the logs is still unsynced when it returns.
  uint64_t SyncsOfOneHandledError(RecoveryManager& rm) {
    const uint64_t before = counts_.syncs.load();
    EXPECT_THROW(rm.exception_handler("orders", [] { throw std::runtime_error("book corrupted"); }),
                 std::runtime_error);
    EXPECT_EQ(counts_.unsynced.load(), 0)
        << "bytes of the log not synced when the handler returned";
    return counts_.syncs.load() - before;
  }

  WalCounts counts_;
  blackbox::testing::TempDir tmp_;
  const fs::path dir_{tmp_.path()};
};

TEST_F(DurabilityTest, AHandledErrorWithoutCallbacksSyncsTheLogOnce) {
  RecoveryManager rm(Options());
  EXPECT_EQ(SyncsOfOneHandledError(rm), 1u);
  EXPECT_EQ(SyncsOfOneHandledError(rm), 1u);
  EXPECT_EQ(rm.journal_failures(), 0u);
}

TEST_F(DurabilityTest, AHandledErrorWithThreeCallbacksStillSyncsTheLogOnce) {
  RecoveryManager rm(Options());
  for (const char* name : {"reconnect", "reload", "resync"}) {
    rm.register_recovery_callback(name, [] {});
  }
  EXPECT_EQ(SyncsOfOneHandledError(rm), 1u);
  // A failing callback changes which phase comes last, not what it costs.
  rm.register_recovery_callback("fails", [] { throw std::runtime_error("still down"); });
  EXPECT_EQ(SyncsOfOneHandledError(rm), 1u);
  EXPECT_EQ(rm.journal_failures(), 0u);
}

// The stop path follows the same rule: the stopping phase and the cleanup
// callbacks' results are buffered, the final phase is durable, and the
// snapshot stored after it is a durable write of its own.
TEST_F(DurabilityTest, AGracefulShutdownWithThreeCleanupCallbacksSyncsTheLogTwice) {
  RecoveryManager rm(Options());
  for (const char* name : {"close_positions", "flush_orders", "disconnect"}) {
    rm.register_cleanup_callback(name, [] {});
  }
  const uint64_t before = counts_.syncs.load();
  rm.graceful_shutdown();
  EXPECT_EQ(counts_.syncs.load() - before, 2u);
  EXPECT_EQ(counts_.unsynced.load(), 0);
  EXPECT_EQ(rm.journal_failures(), 0u);
  EXPECT_EQ(rm.state().status, fb::Phase::Stopped);
}

// When the last record's sync fails, the handler still returns the
// application's exception and nothing else, the failure is counted, and the
// journal is reopened before it returns: the reopen replays the log, whose
// buffered records the failed sync left unsynced, into a synced table file.
TEST_F(DurabilityTest, AFailedFinalSyncIsMadeGoodByAReopenBeforeTheHandlerReturns) {
  RecoveryManager rm(Options());
  rm.register_recovery_callback("reconnect", [] {});
  const uint64_t tables_before = counts_.table_syncs.load();
  counts_.fail_next_sync = true;
  EXPECT_THROW(rm.exception_handler("orders", [] { throw std::runtime_error("book corrupted"); }),
               std::runtime_error);
  EXPECT_FALSE(counts_.fail_next_sync.load());  // the failure was injected
  EXPECT_EQ(rm.journal_failures(), 1u);
  EXPECT_GT(counts_.table_syncs.load(), tables_before);
  EXPECT_EQ(counts_.unsynced.load(), 0);
  // The journal works on: the next handled error costs one sync again.
  EXPECT_EQ(SyncsOfOneHandledError(rm), 1u);
  EXPECT_EQ(rm.journal_failures(), 1u);
  SystemState s = rm.state();
  EXPECT_EQ(s.error_count, 2u);
  EXPECT_EQ(s.status, fb::Phase::Running);
}

// A snapshot that falls due on set_gauge's path is stored by the manager's
// snapshot thread, so with the ring the call does not wait for the
// snapshot's fsync (held here until the calls are done, and after). (On the
// direct path a buffered write queues behind RocksDB's synced one anyway.)
TEST_F(DurabilityTest, SetGaugeWithTheRingDoesNotWaitForTheSnapshotItMadeDue) {
  RecoveryOptions o = Options();
  o.snapshot_every = 100;
  o.journal_ring_bytes = 1 << 20;
  RecoveryManager rm(o);
  counts_.hold_syncs = true;
  std::atomic<bool> done{false};
  std::thread caller([&] {
    for (int i = 0; i < 250; ++i) rm.set_gauge("g", i);
    done = true;
  });
  auto wait_for = [](const auto& ready) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!ready() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return ready();
  };
  const bool returned = wait_for([&] { return done.load(); });
  const bool snapshot_held = wait_for([&] { return counts_.held.load() > 0; });
  counts_.hold_syncs = false;
  caller.join();
  EXPECT_TRUE(returned) << "set_gauge waited for a snapshot's fsync";
  EXPECT_TRUE(snapshot_held) << "no snapshot was being stored";
  EXPECT_EQ(rm.journal_failures(), 0u);
  EXPECT_EQ(rm.state().gauge("g"), 249);
}

}  // namespace
}  // namespace blackbox
