// The writer: group commit over RocksDB with gap-free sequence numbers.
//
// Appending threads queue up; the thread at the head of the queue (the leader)
// takes every queued append, assigns consecutive sequence numbers, writes them
// as one WriteBatch (fsync'd when any of them asked for durability) and wakes
// the others. So eight threads appending durably pay about one fsync per
// batch, not eight, and sequence numbers follow commit order with no gaps:
// only the leader assigns them, and only after its batch committed.
// (The same scheme as LevelDB's DBImpl::Write.)
//
// One addition: a durable leader that finds fewer appends queued than its
// predecessor committed waits briefly for the rest. Without it, batches
// alternate small and large: when a batch commits, its threads wake one by
// one, the first to append again leads alone, and the others then wait a
// whole fsync behind it. The wait is bounded by half of a recent fsync, so it
// can cost a late joiner's group at most that, and a single writer (batches
// of one) never waits.
#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <shared_mutex>

#include "internal.h"

namespace blackbox {

using internal::EncodeKey;
using internal::FromRocks;
using internal::KeySlice;

namespace {

// Bounds one group commit: the leader's own append plus what queued behind it.
constexpr size_t kMaxBatchBytes = 1 << 20;
constexpr size_t kMaxBatchAppends = 512;
// The most a durable leader waits for its batch to fill (see above).
constexpr std::chrono::microseconds kMaxGatherWait{1000};

Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0) return Status::Ok();
  if (errno == EEXIST) return Status::Ok();
  return Status::IOError(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
}

}  // namespace

class Journal::Impl {
 public:
  struct PendingAppend {
    std::span<const uint8_t> bytes;
    bool sync = false;
    bool done = false;
    uint64_t seq = 0;
    Status status;
    std::condition_variable cv;
  };

  std::string root;
  std::string stream;
  std::string path;
  JournalOptions options;
  // Guards the handles below against a reopen (after a failed write that
  // RocksDB cannot resume from): users of db hold it shared, a reopen
  // exclusively.
  mutable std::shared_mutex db_mu;
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* events_cf = nullptr;  // owned by db (default CF)
  rocksdb::ColumnFamilyHandle* snapshots_cf = nullptr;

  std::mutex mu;
  std::deque<PendingAppend*> queue;  // guarded by mu
  uint64_t next_seq = 1;             // guarded by mu; only the leader advances it
  bool needs_resume = false;         // guarded by mu
  // Group-commit sizing, guarded by mu: the size of the last durable batch,
  // a moving average of what one durable write costs, and the leader waiting
  // for its batch to fill (nullptr when none does) with the size it wants.
  size_t last_durable_batch = 1;
  std::chrono::nanoseconds durable_write_cost{0};
  PendingAppend* gathering = nullptr;
  size_t gather_target = 0;
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> last_seq{0};
  std::atomic<uint64_t> first_seq{1};
  std::atomic<uint64_t> failed{0};

  ~Impl() { CloseDb(); }

  Status OpenDb();
  void CloseDb() { internal::CloseJournalDb(db, events_cf, snapshots_cf); }
  // After a failed write: Resume(), or when RocksDB cannot resume (a failed
  // WAL write leaves the DB read-only for good), close and reopen it.
  // REQUIRES: called by the group-commit leader, without db_mu held.
  Status Recover();

  Result<uint64_t> Append(std::span<const uint8_t> bytes, Durability durability);
  Status WriteBatchOf(size_t n, uint64_t first_seq_of_batch, bool sync,
                      std::unique_lock<std::mutex>& lock);
};

Result<uint64_t> Journal::Impl::Append(std::span<const uint8_t> bytes, Durability durability) {
  PendingAppend self;
  self.bytes = bytes;
  self.sync = durability == Durability::kDurable;

  std::unique_lock lock(mu);
  queue.push_back(&self);
  if (gathering != nullptr && queue.size() >= gather_target) gathering->cv.notify_one();
  self.cv.wait(lock, [&] { return self.done || queue.front() == &self; });
  if (self.done) {
    if (!self.status.ok()) return self.status;
    return self.seq;
  }

  // Leader. A durable batch smaller than the last one waits a little for the
  // appenders of the last one to come back (see the top of this file).
  if (self.sync && queue.size() < last_durable_batch) {
    auto wait = std::min<std::chrono::nanoseconds>(durable_write_cost / 2, kMaxGatherWait);
    gathering = &self;
    gather_target = last_durable_batch;
    self.cv.wait_for(lock, wait, [&] { return queue.size() >= gather_target; });
    gathering = nullptr;
  }

  // Take a batch from the head of the queue.
  size_t bytes_in_batch = 0;
  bool sync = false;
  // A count, not an iterator: appends that queue up while the lock is dropped
  // (push_back) invalidate deque iterators.
  size_t n = 0;
  for (; n < queue.size() && n < kMaxBatchAppends; ++n) {
    if (n > 0 && bytes_in_batch + queue[n]->bytes.size() > kMaxBatchBytes) break;
    bytes_in_batch += queue[n]->bytes.size();
    sync = sync || queue[n]->sync;
  }
  const uint64_t first = next_seq;
  Status s = WriteBatchOf(n, first, sync, lock);

  // Hand results to the batch, then the lead to whoever queued next.
  uint64_t seq = first;
  const auto end = queue.begin() + static_cast<std::ptrdiff_t>(n);
  for (auto it = queue.begin(); it != end; ++it) {
    PendingAppend* p = *it;
    p->status = s;
    p->seq = s.ok() ? seq++ : 0;
    if (p != &self) {
      p->done = true;
      p->cv.notify_one();
    }
  }
  queue.erase(queue.begin(), end);
  if (!queue.empty()) queue.front()->cv.notify_one();
  if (!s.ok()) return s;
  return self.seq;
}

// Writes the first n queued appends under consecutive seqs starting at `first`. Drops
// the lock for the write itself, so more appends can queue up meanwhile; that
// is what makes the next batch larger under load.
Status Journal::Impl::WriteBatchOf(size_t n, uint64_t first, bool sync,
                                   std::unique_lock<std::mutex>& lock) {
  rocksdb::WriteBatch batch;
  uint64_t seq = first;
  for (size_t i = 0; i < n; ++i, ++seq) {
    auto key = EncodeKey(seq);
    const PendingAppend* p = queue[i];
    // Events live in the default column family (its id survives a reopen).
    batch.Put(KeySlice(key),
              rocksdb::Slice(reinterpret_cast<const char*>(p->bytes.data()), p->bytes.size()));
  }
  const bool recover = needs_resume;
  lock.unlock();
  rocksdb::Status rs;
  // Only durable writes are timed: the gathering wait is sized by them.
  const auto start =
      sync ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  if (Status r = recover ? Recover() : Status::Ok(); !r.ok()) {
    rs = rocksdb::Status::IOError(r.message());
  } else {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    std::shared_lock db_lock(db_mu);
    rs = db->Write(wo, &batch);
  }
  lock.lock();
  batches.fetch_add(1, std::memory_order_relaxed);
  if (sync) {
    const auto took = std::chrono::steady_clock::now() - start;
    last_durable_batch = n;
    durable_write_cost = durable_write_cost.count() == 0 ? std::chrono::nanoseconds(took)
                                                         : (durable_write_cost * 7 + took) / 8;
  }
  if (!rs.ok()) {
    needs_resume = true;
    failed.fetch_add(n);
    return FromRocks(rs, fmt::format("append to {}", path));
  }
  needs_resume = false;
  next_seq = seq;
  last_seq.store(seq - 1);
  return Status::Ok();
}

Status Journal::Impl::OpenDb() {
  rocksdb::DBOptions db_options = internal::MakeDBOptions(options);
  rocksdb::ColumnFamilyOptions cf_options = internal::MakeColumnFamilyOptions(options);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {internal::kSnapshotsColumnFamily, cf_options}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs = rocksdb::DB::Open(db_options, path, cfs, &handles, &raw);
  if (!rs.ok()) return FromRocks(rs, fmt::format("open journal {}", path));
  db.reset(raw);
  // The default column family's handle is owned by the DB; the other is ours.
  events_cf = db->DefaultColumnFamily();
  raw->DestroyColumnFamilyHandle(handles[0]);
  snapshots_cf = handles[1];

  uint64_t first = 0, last = 0;
  internal::SeqBounds(db.get(), events_cf, &first, &last);
  last_seq = last;
  first_seq = last == 0 ? 1 : first;
  return Status::Ok();
}

Status Journal::Impl::Recover() {
  if (db && db->Resume().ok()) return Status::Ok();
  std::unique_lock db_lock(db_mu);
  CloseDb();
  Status s = OpenDb();
  if (s.ok()) {
    // Numbering continues from what is really on disk: a batch whose write
    // was reported as failed may still have reached the log.
    std::lock_guard lock(mu);
    next_seq = last_seq.load() + 1;
  }
  return s;
}

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Journal::~Journal() = default;

Result<std::unique_ptr<Journal>> Journal::Open(std::string_view root, std::string_view stream,
                                               const JournalOptions& options) {
  if (stream.empty() || stream.find('/') != std::string_view::npos || stream == "." ||
      stream == "..") {
    return Status::InvalidArgument(fmt::format("invalid stream name '{}'", stream));
  }
  auto impl = std::make_unique<Impl>();
  impl->root = std::string(root);
  impl->stream = std::string(stream);
  impl->path = internal::StreamPath(root, stream);
  if (options.create_if_missing) {
    std::error_code ec;
    std::filesystem::path p(impl->root);
    // Parents of the root are created like `mkdir -p`; the root itself and
    // the stream directory are the journal's and get 0700.
    if (p.has_parent_path() && !p.parent_path().empty()) {
      std::filesystem::create_directories(p.parent_path(), ec);
    }
    if (Status s = MakeDir(impl->root); !s.ok()) return s;
  }
  if (options.check_permissions) {
    if (Status s = CheckRootPermissions(impl->root, JournalAccess::kWrite); !s.ok()) return s;
  }
  if (options.create_if_missing) {
    if (Status s = MakeDir(impl->path); !s.ok()) return s;
  }
  if (options.check_permissions) {
    if (Status s = CheckRootPermissions(impl->path, JournalAccess::kWrite); !s.ok()) return s;
  }

  impl->options = options;
  if (Status s = impl->OpenDb(); !s.ok()) return s;
  impl->next_seq = impl->last_seq.load() + 1;
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

Result<uint64_t> Journal::Append(std::span<const uint8_t> event, Durability durability) {
  return impl_->Append(event, durability);
}

Result<uint64_t> Journal::Append(fb::EventT event, Durability durability) {
  event.stream = impl_->stream;
  std::string bytes = EncodeEvent(std::move(event));
  return impl_->Append(Bytes(bytes), durability);
}

uint64_t Journal::last_seq() const { return impl_->last_seq.load(); }
uint64_t Journal::first_seq() const {
  uint64_t last = impl_->last_seq.load();
  return last == 0 ? 1 : impl_->first_seq.load();
}
const std::string& Journal::stream() const { return impl_->stream; }
const std::string& Journal::path() const { return impl_->path; }
uint64_t Journal::failed_appends() const { return impl_->failed.load(); }
uint64_t Journal::batches_written() const { return impl_->batches.load(std::memory_order_relaxed); }

Status Journal::PutSnapshot(uint64_t seq, std::span<const uint8_t> bytes) {
  if (seq > last_seq()) {
    return Status::InvalidArgument(
        fmt::format("snapshot at seq {} is past the last event {}", seq, last_seq()));
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto key = EncodeKey(seq);
  std::shared_lock db_lock(impl_->db_mu);
  return FromRocks(
      impl_->db->Put(wo, impl_->snapshots_cf, KeySlice(key),
                     rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size())),
      fmt::format("store snapshot in {}", impl_->path));
}

Result<std::optional<Snapshot>> Journal::LatestSnapshot() const {
  std::shared_lock db_lock(impl_->db_mu);
  return internal::LatestSnapshotOf(impl_->db.get(), impl_->snapshots_cf);
}

Status Journal::Scan(const ScanOptions& options, const RecordFn& fn) const {
  std::shared_lock db_lock(impl_->db_mu);
  return internal::ScanEvents(impl_->db.get(), impl_->events_cf, impl_->stream, options, fn);
}

Status Journal::Sync() {
  std::shared_lock db_lock(impl_->db_mu);
  return FromRocks(impl_->db->SyncWAL(), fmt::format("sync {}", impl_->path));
}

Result<CompactionStats> Journal::Compact(const Retention& retention) {
  CompactionStats stats;
  const uint64_t first = first_seq();
  const uint64_t last = last_seq();
  stats.events_before = last >= first ? last - first + 1 : 0;
  stats.bytes_before = DirectorySize(impl_->path);

  auto snapshot = LatestSnapshot();
  if (!snapshot.ok()) return snapshot.status();
  uint64_t cut = 0;  // delete [first, cut]
  if (snapshot->has_value()) {
    // The newest event is always kept: it carries the sequence high-water
    // mark, so numbering continues after a reopen instead of restarting at 1.
    cut = std::min((*snapshot)->seq, last - 1);
    if (retention.keep_events) {
      cut = std::min(cut, last > *retention.keep_events ? last - *retention.keep_events : 0);
    }
    if (retention.keep_ns) {
      // Events are appended in roughly increasing time; stop at the first one
      // inside the window so that nothing newer than the window is dropped.
      const int64_t threshold = WallNowNs() - *retention.keep_ns;
      uint64_t old_through = 0;
      ScanOptions so;
      so.from_seq = first;
      so.until_seq = cut;
      Scan(so, [&](const Record& r) {
        if (r.event->time_ns() >= threshold) return false;
        old_through = r.seq;
        return true;
      });
      cut = std::min(cut, old_through);
    }
  }

  std::shared_lock db_lock(impl_->db_mu);
  if (cut >= first) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto begin_key = EncodeKey(0);
    auto end_key = EncodeKey(cut + 1);
    rocksdb::WriteBatch batch;
    batch.DeleteRange(impl_->events_cf, KeySlice(begin_key), KeySlice(end_key));
    // Snapshots below the cut can no longer be folded forward.
    batch.DeleteRange(impl_->snapshots_cf, KeySlice(begin_key), KeySlice(EncodeKey(cut)));
    if (auto s = FromRocks(impl_->db->Write(wo, &batch), "compact: delete"); !s.ok()) return s;
    impl_->first_seq = cut + 1;
    stats.deleted_through = cut;
  }
  // Flush and rewrite every level so the deleted range really leaves the disk.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (auto s = FromRocks(impl_->db->Flush(fo, {impl_->events_cf, impl_->snapshots_cf}),
                         "compact: flush");
      !s.ok()) {
    return s;
  }
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* cf : {impl_->events_cf, impl_->snapshots_cf}) {
    if (auto s = FromRocks(impl_->db->CompactRange(co, cf, nullptr, nullptr), "compact: compact");
        !s.ok()) {
      return s;
    }
  }
  const uint64_t new_first = first_seq();
  stats.events_after = last >= new_first ? last - new_first + 1 : 0;
  stats.bytes_after = DirectorySize(impl_->path);
  return stats;
}

}  // namespace blackbox
