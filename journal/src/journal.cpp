// The writer: group commit over RocksDB with gap-free sequence numbers.
//
// Appending threads queue up; the thread at the head of the queue (the leader)
// takes every queued append, assigns consecutive sequence numbers, writes them
// as one WriteBatch (fsync'd when any of them asked for durability) and wakes
// the others. So eight threads appending durably pay about one fsync per
// batch, not eight, and sequence numbers follow commit order with no gaps:
// only the leader assigns them, and only after its batch committed.
// (The same scheme as LevelDB's DBImpl::Write.) An AppendAll is one entry of
// the queue carrying several events: they stay together in the batch, under
// consecutive numbers, and the entry gets the first.
// (With JournalOptions::ring_bytes the appends go through a ring and a drain
// thread instead, numbered by the ring: journal_ring.cpp. What follows on
// faults and damage applies to the drain's writes too.)
//
// One addition: a durable leader that finds fewer appends queued than its
// predecessor committed waits briefly for the rest. Without it, batches
// alternate small and large: when a batch commits, its threads wake one by
// one, the first to append again leads alone, and the others then wait a
// whole fsync behind it. The wait is bounded by half of a recent fsync, so it
// can cost a late joiner's group at most that, and a single writer (batches
// of one) never waits.
//
// Faults (disk full, I/O errors). Nothing here may take the host process
// down, and Debian's librocksdb is built with assertions on. In RocksDB 7.x a
// WritableFileWriter whose append or sync failed asserts on its next append,
// flush or sync (writable_file_writer.h, "sync_without_flush_called_"). What
// reached that state, seen with the fault-injection suite (tests/faults/):
//   - RocksDB's info LOG writer, on the next log line after a failed one
//     (every open writes the LOG first): the writer logs with write(2)
//     instead (info_log.cpp);
//   - SyncWAL (Journal::Sync) racing a WAL write that fails.
// Besides, DB::Resume() may keep a WAL writer whose write failed and append
// to it again (fixed upstream after 7.x, "Don't write to WAL after previous
// WAL write error"), and every call crashed on a database that a failed
// reopen had left closed. Hence the rule: after any failed write, sync, flush
// or compaction (Append, PutSnapshot, Sync, Compact) the database is marked
// broken, and the next call that needs it closes and reopens it (Reopen; never
// Resume) before anything else touches it; a reopen that fails leaves it
// closed, and the next call tries again. Those calls are serialized
// (write_mu), so none can start between a failure and its mark. RocksDB's own
// retries are off (no auto-resume); a background flush that failed makes the
// close wait for RocksDB's retry pause (1 s), once per failure. Closing a
// database with a failed writer is safe: RocksDB only closes that file. Reads
// of the old handle stay allowed until the reopen.
// What a failed write leaves behind is never damage: RocksDB's WAL record
// checksums cut a torn record at the next open (kPointInTimeRecovery), and
// numbering continues after the highest sequence number on disk, so a batch
// reported as failed that did reach the log keeps its numbers and is never
// overwritten by a later event. An acknowledged event was in the WAL (and
// fsync'd, when durable) before Append returned, so a reopen keeps it.
//
// Damage from outside (bytes changed in a log) is another matter: RocksDB's
// point-in-time recovery keeps the records before the damage and drops the
// rest, acknowledged or not, and the highest seq on disk goes back. So a
// database is opened the strict way first, which tolerates only a torn last
// record; when that finds damage, numbering continues above the high-water
// mark kept outside the database (high_water.h) instead. The mark is raised
// by the leader before a batch is written, in chunks; failing to raise it
// fails that append like a failed write (counted, retried by the next one)
// without touching the database.
#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <time.h>
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

#include "high_water.h"
#include "internal.h"
#include "journal_impl.h"
#include "wal_scan.h"

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

// The highest seq any table file of the events column family holds, from
// the MANIFEST (no block is read); 0 when none.
uint64_t LargestTableSeq(rocksdb::DB* db) {
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  uint64_t largest = 0;
  for (const auto& f : files) {
    uint64_t seq = 0;
    if (f.column_family_name == rocksdb::kDefaultColumnFamilyName &&
        internal::DecodeKey(f.largestkey, &seq)) {
      largest = std::max(largest, seq);
    }
  }
  return largest;
}

// <path>.damaged-<UTC time>, with -2, -3, … when that exists already.
std::string SetAsideName(const std::string& path) {
  char stamp[32];
  const time_t now = time(nullptr);
  tm t{};
  gmtime_r(&now, &t);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &t);
  std::string name = fmt::format("{}.damaged-{}", path, stamp);
  struct stat st {};
  for (int n = 2; lstat(name.c_str(), &st) == 0; ++n) {
    name = fmt::format("{}.damaged-{}-{}", path, stamp, n);
  }
  return name;
}

Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0) return Status::Ok();
  if (errno == EEXIST) return Status::Ok();
  return Status::IOError(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
}

}  // namespace

Result<uint64_t> Journal::Impl::Append(std::span<const std::span<const uint8_t>> events,
                                       Durability durability) {
  PendingAppend self;
  self.events = events;
  for (const auto& e : events) self.bytes += e.size();
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
  std::vector<std::span<const uint8_t>> items;
  for (; n < queue.size() && items.size() < kMaxBatchAppends; ++n) {
    if (n > 0 && bytes_in_batch + queue[n]->bytes > kMaxBatchBytes) break;
    bytes_in_batch += queue[n]->bytes;
    sync = sync || queue[n]->sync;
    items.insert(items.end(), queue[n]->events.begin(), queue[n]->events.end());
  }
  // The lock is dropped for the write itself, so more appends can queue up
  // meanwhile; that is what makes the next batch larger under load.
  lock.unlock();
  uint64_t first = 0;
  const auto start =
      sync ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  Status s = WriteBatchOf(items, sync, &first);
  lock.lock();
  batches.fetch_add(1, std::memory_order_relaxed);
  // Only durable writes are timed: the gathering wait is sized by them.
  if (sync) {
    const auto took = std::chrono::steady_clock::now() - start;
    last_durable_batch = n;
    durable_write_cost = durable_write_cost.count() == 0 ? std::chrono::nanoseconds(took)
                                                         : (durable_write_cost * 7 + took) / 8;
  }
  if (!s.ok()) failed.fetch_add(items.size());

  // Hand results to the batch, then the lead to whoever queued next.
  uint64_t seq = first;
  const auto end = queue.begin() + static_cast<std::ptrdiff_t>(n);
  for (auto it = queue.begin(); it != end; ++it) {
    PendingAppend* p = *it;
    p->status = s;
    p->seq = s.ok() ? seq : 0;
    seq += p->events.size();
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

// Writes `items` as one WriteBatch under consecutive seqs from next_seq
// (returned in *first), and advances next_seq past them when it committed.
// Called by the leader only, without mu held: next_seq is only read here,
// under db_mu, which a reopen (the only other writer of next_seq) holds
// exclusively.
Status Journal::Impl::WriteBatchOf(const std::vector<std::span<const uint8_t>>& items, bool sync,
                                   uint64_t* first) {
  const std::string what = fmt::format("append to {}", path);
  if (Status r = Reopen(); !r.ok()) return r;
  std::shared_lock db_lock(db_mu);
  if (!db || broken.load()) return Unusable(what);
  {
    std::lock_guard lock(mu);
    *first = next_seq;
  }
  // Numbers above the high-water mark are reserved on disk before any of
  // them can reach the log (see high_water.h).
  if (Status s = Reserve(*first, *first + items.size() - 1); !s.ok()) {
    std::string msg = fmt::format("{}: reserving sequence numbers: {}", what, s.message());
    return s.code() == Status::Code::kNoSpace ? Status::NoSpace(msg) : Status::IOError(msg);
  }
  rocksdb::WriteBatch batch;
  uint64_t seq = *first;
  for (const auto& bytes : items) {
    auto key = EncodeKey(seq++);
    // Events live in the default column family (its id survives a reopen).
    batch.Put(KeySlice(key),
              rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  if (Status s = Guarded(what, [&] { return db->Write(wo, &batch); }); !s.ok()) return s;
  std::lock_guard lock(mu);
  next_seq = seq;
  last_seq.store(seq - 1);
  return Status::Ok();
}

rocksdb::Status Journal::Impl::OpenRocks(rocksdb::WALRecoveryMode mode) {
  rocksdb::DBOptions db_options = internal::MakeDBOptions(options);
  db_options.wal_recovery_mode = mode;
  // RocksDB's own info logger can abort the process on a full disk (see the
  // top of this file).
  db_options.info_log =
      internal::OpenInfoLog(path, db_options.info_log_level, db_options.max_log_file_size);
  rocksdb::ColumnFamilyOptions cf_options = internal::MakeColumnFamilyOptions(options);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {internal::kSnapshotsColumnFamily, cf_options}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs = rocksdb::DB::Open(db_options, path, cfs, &handles, &raw);
  if (!rs.ok()) return rs;
  db.reset(raw);
  // The default column family's handle is owned by the DB; the other is ours.
  events_cf = db->DefaultColumnFamily();
  raw->DestroyColumnFamilyHandle(handles[0]);
  snapshots_cf = handles[1];
  return rs;
}

Status Journal::Impl::OpenDb(bool may_set_aside) {
  internal::RemoveHighWaterTemporaries(path);
  // A writer killed while it built its ring leaves the temporary, as large
  // as a ring: a process that crashes at every start would fill the disk
  // with them. (Removed before the database's lock is taken, as the mark's
  // are: a second writer is refused, and the first one's ring then fails
  // its rename and stays off, saying so; nothing acknowledged is touched.)
  internal::RemoveTemporaries(path, internal::kRingTempPrefix);
  Result<internal::HighWater> mark = internal::ReadHighWater(path);
  if (!mark.ok()) return mark.status();
  // First the strict way: a log may only end in a torn record (a write that
  // a crash or a failed write cut short, never acknowledged). Anything else
  // dropped would be a hole: records after it that may have been
  // acknowledged.
  rocksdb::Status rs = OpenRocks(rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords);
  bool log_damaged = false;
  uint64_t logged_after_damage = 0;  // the highest seq the logs hold intact past the damage
  if (rs.IsCorruption() && may_set_aside) {
    // A log damaged in the middle: the records behind the damage are still
    // in it, many of them intact (readers show them), and the open below
    // would drop them for good. Keep all of it, aside. (Other corruption,
    // such as a damaged CURRENT, is for the open below to find.)
    if (internal::WalScan scan = internal::ScanWals(path); !scan.damages.empty()) {
      CloseDb();
      return Status::Corruption(fmt::format("its write-ahead log {} is damaged at byte {}",
                                            scan.damages.front().file,
                                            scan.damages.front().offset));
    }
  }
  if (rs.IsCorruption()) {
    // Before RocksDB drops the damaged part for good (the open below flushes
    // what it kept and deletes the log), make sure numbering can never come
    // back below what was reserved. A failed open leaves the log untouched.
    log_damaged = true;
    if (internal::WalScan scan = internal::ScanWals(path); !scan.seqs_after.empty()) {
      logged_after_damage = scan.seqs_after.rbegin()->first;
    }
    mark->floor = std::max(mark->floor, mark->reserved + 1);
    if (Status s = internal::WriteHighWater(path, *mark); !s.ok()) return s;
    rs = OpenRocks(rocksdb::WALRecoveryMode::kPointInTimeRecovery);
  }
  if (!rs.ok()) return FromRocks(rs, fmt::format("open journal {}", path));

  uint64_t first = 0, last = 0;
  internal::SeqBounds(db.get(), events_cf, &first, &last);
  last_seq = last;
  first_seq = last == 0 ? 1 : first;
  // A damaged table file can hide the newest events from the iterator; the
  // MANIFEST still knows the highest key of every table.
  const uint64_t table_last = LargestTableSeq(db.get());
  // A snapshot names a seq that was once journaled: a bound even without
  // the file (a journal written before it existed).
  uint64_t snapshot_seq = 0;
  if (auto snap = internal::LatestSnapshotOf(db.get(), snapshots_cf); snap.ok() && *snap) {
    snapshot_seq = (*snap)->seq;
  }
  const bool damaged = log_damaged || table_last > last || snapshot_seq > last;
  open_next_seq = std::max({last + 1, table_last + 1, mark->floor, snapshot_seq + 1});
  if (damaged) open_next_seq = std::max(open_next_seq, mark->reserved + 1);
  reserved = std::max(mark->reserved, open_next_seq - 1);
  floor_seq = mark->floor;
  unused = std::move(mark->unused);
  if (log_damaged && logged_after_damage != 0) {
    // What the logs hold past the damage bounds what was given out: records
    // are logged in seq order, and a record behind the last intact one is a
    // torn tail, as after any crash. The numbers between it and the jump
    // were never given out, and readers must not count them as lost. (Without
    // an intact record past the damage nothing bounds the loss: the whole gap
    // then reads as lost, an overcount.)
    uint64_t used = std::max({last, table_last, snapshot_seq, logged_after_damage});
    // A live ring (a reopen after a failed drain) keeps its own numbering:
    // every seq below its tail was given out. What it gives out later is
    // taken out of the range as it is written (Reserve).
    if (ring && ring->tail() > 0) used = std::max(used, ring->tail() - 1);
    if (used + 1 < open_next_seq) {
      unused.push_back({used + 1, open_next_seq - 1});
      // Only the readers' accounting depends on it: a failure here is not
      // worth failing the open for.
      (void)internal::WriteHighWater(path, {reserved, floor_seq, unused});
    }
  }
  if (damaged) {
    std::lock_guard lock(warnings_mu);
    warnings.push_back(fmt::format(
        "the journal stream {} is damaged ({}): the events after seq {} that it held are lost; "
        "new events are numbered from {}, above every seq given out before",
        path,
        log_damaged ? "its write-ahead log, in the middle" : "its newest events cannot be read",
        last, ring ? ring->tail() : open_next_seq));
  }
  return Status::Ok();
}

Status Journal::Impl::SetAsideAndStartFresh(const Status& why) {
  CloseDb();
  // What the damaged stream may have given out: its mark, and what a
  // reader can still see of it (a journal from before the mark existed).
  internal::HighWater old;
  if (auto mark = internal::ReadHighWater(path); mark.ok()) old = *mark;
  uint64_t floor = std::max(old.reserved + 1, old.floor);
  {
    if (auto r = Reader::Open(root, stream, options); r.ok()) {
      floor = std::max(floor, (*r)->last_seq() + 1);
      if (auto snap = (*r)->LatestSnapshot(); snap.ok() && *snap) {
        floor = std::max(floor, (*snap)->seq + 1);
      }
    }
  }
  const std::string aside = SetAsideName(path);
  if (::rename(path.c_str(), aside.c_str()) != 0) {
    return Status::IOError(fmt::format("{}; and cannot move it aside to {}: {}", why.message(),
                                       aside, std::strerror(errno)));
  }
  if (Status s = MakeDir(path); !s.ok()) return s;
  if (Status s = internal::WriteHighWater(path, {floor - 1, floor, {}}); !s.ok()) return s;
  if (Status s = OpenDb(); !s.ok()) return s;
  std::lock_guard lock(warnings_mu);
  warnings.clear();  // the fresh stream's own open found nothing to say
  warnings.push_back(
      fmt::format("the journal stream {} is damaged ({}); moved it aside intact to {} (the tools "
                  "still read it) and started a fresh stream, numbered from {}",
                  path, why.message(), aside, open_next_seq));
  return Status::Ok();
}

Status Journal::Impl::Reserve(uint64_t from, uint64_t through) {
  // Numbers an unused range holds may be written after all: a ring keeps
  // its own numbering across a reopen that jumped, and a dead writer's ring
  // is ingested under its seqs. They leave the range before the write, so
  // that a later loss of them reads as a loss (a failed write after the
  // mark then reads as lost: an overcount, the safe direction).
  auto overlaps = [&](const internal::SeqRange& r) { return r.first <= through && r.last >= from; };
  const bool trimmed = std::any_of(unused.begin(), unused.end(), overlaps);
  if (through <= reserved && !trimmed) return Status::Ok();  // the append's usual case
  std::vector<internal::SeqRange> kept;
  for (const internal::SeqRange& r : unused) {
    if (!overlaps(r)) {
      kept.push_back(r);
      continue;
    }
    if (r.first < from) kept.push_back({r.first, from - 1});
    if (r.last > through) kept.push_back({through + 1, r.last});
  }
  // A ring-mode drain writes up to a ring of events at a time, hundreds of
  // thousands a second: a mark (a file written and fsync'd) every 4096 of
  // them took a fifth of the drain's time. Numbering jumps by the chunk only
  // after damage, so a larger one costs nothing else.
  const uint64_t chunk = ring
                             ? std::max<uint64_t>(internal::kHighWaterChunk, 4 * ring->slot_count())
                             : internal::kHighWaterChunk;
  internal::HighWater mark{through <= reserved ? reserved : through + chunk, floor_seq, kept};
  if (Status s = internal::WriteHighWater(path, mark); !s.ok()) return s;
  reserved = mark.reserved;
  unused = std::move(mark.unused);
  return Status::Ok();
}

Status Journal::Impl::Reopen() {
  if (!broken.load()) return Status::Ok();
  std::unique_lock db_lock(db_mu);
  if (!broken.load()) return Status::Ok();  // another thread reopened it
  CloseDb();
  if (Status s = OpenDb(); !s.ok()) return s;
  broken.store(false);
  // Numbering continues from what is really on disk: a batch whose write
  // was reported as failed may still have reached the log.
  {
    std::lock_guard lock(mu);
    next_seq = open_next_seq;
  }
  // Events a dead writer left in its RING come before anything new.
  if (ring_ingest_pending) {
    if (!IngestLeftRing()) {
      broken.store(true);
      return Status::IOError(
          fmt::format("journal stream {}: the events left in its ring are not written yet", path));
    }
    ring_ingest_pending = false;
  }
  return Status::Ok();
}

Status Journal::Impl::Unusable(std::string_view what) const {
  return Status::IOError(
      fmt::format("{}: the journal is being reopened after a failed write", what));
}

Status Journal::Impl::Check(const rocksdb::Status& rs, std::string_view what) {
  if (rs.ok()) return Status::Ok();
  broken.store(true);
  return FromRocks(rs, what);
}

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Journal::~Journal() = default;

Result<std::unique_ptr<Journal>> Journal::Open(std::string_view root, std::string_view stream,
                                               const JournalOptions& options) {
  if (stream.empty() || stream.find('/') != std::string_view::npos || stream == "." ||
      stream == ".." || StreamOrigin(stream) != stream) {
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
  Status opened = impl->OpenDb(options.set_aside_damaged);
  if (opened.code() == Status::Code::kCorruption && options.set_aside_damaged) {
    opened = impl->SetAsideAndStartFresh(opened);
  }
  if (Status s = opened; !s.ok()) {
    // A full disk is no reason to refuse a writer (the watchdog would not
    // supervise, the app would never journal again): the journal starts
    // closed, and the first call that finds space opens it (Reopen).
    if (s.code() != Status::Code::kNoSpace) return s;
    impl->broken.store(true);
  }
  impl->next_seq = impl->open_next_seq;
  // Ring mode, and the RING an earlier writer left (journal_ring.cpp).
  impl->StartRing();
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

Result<uint64_t> Journal::Append(std::span<const uint8_t> event, Durability durability) {
  if (impl_->ring) return impl_->RingAppendOne(event, durability);
  return impl_->Append({&event, 1}, durability);
}

Result<uint64_t> Journal::Append(fb::EventT event, Durability durability) {
  event.stream = impl_->stream;
  std::string bytes = EncodeEvent(std::move(event));
  const std::span<const uint8_t> one = Bytes(bytes);
  if (impl_->ring) return impl_->RingAppendOne(one, durability);
  return impl_->Append({&one, 1}, durability);
}

Result<uint64_t> Journal::AppendAll(std::span<const std::span<const uint8_t>> events,
                                    Durability durability) {
  if (events.empty()) return Status::InvalidArgument("AppendAll of no events");
  if (impl_->ring) return impl_->RingAppendSpilled(events, durability);
  return impl_->Append(events, durability);
}

uint64_t Journal::last_seq() const {
  if (impl_->ring) return impl_->ring->tail() - 1;
  return impl_->last_seq.load();
}
uint64_t Journal::first_seq() const {
  uint64_t last = impl_->last_seq.load();
  return last == 0 ? 1 : impl_->first_seq.load();
}
const std::string& Journal::stream() const { return impl_->stream; }
const std::string& Journal::path() const { return impl_->path; }
std::vector<std::string> Journal::TakeWarnings() {
  std::lock_guard lock(impl_->warnings_mu);
  return std::exchange(impl_->warnings, {});
}
uint64_t Journal::failed_appends() const { return impl_->failed.load(); }
uint64_t Journal::dropped_appends() const { return impl_->dropped.load(); }
uint64_t Journal::batches_written() const { return impl_->batches.load(std::memory_order_relaxed); }

Status Journal::PutSnapshot(uint64_t seq, std::span<const uint8_t> bytes) {
  if (seq > last_seq()) {
    return Status::InvalidArgument(
        fmt::format("snapshot at seq {} is past the last event {}", seq, last_seq()));
  }
  const std::string what = fmt::format("store snapshot in {}", impl_->path);
  // The events it covers go first (its write is synced: so are they).
  if (impl_->ring) {
    if (Status s = impl_->DrainAll(false); !s.ok()) return s;
  }
  if (Status s = impl_->Reopen(); !s.ok()) return s;
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto key = EncodeKey(seq);
  std::shared_lock db_lock(impl_->db_mu);
  return impl_->Guarded(what, [&] {
    return impl_->db->Put(
        wo, impl_->snapshots_cf, KeySlice(key),
        rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  });
}

Result<std::optional<Snapshot>> Journal::LatestSnapshot() const {
  std::shared_lock db_lock(impl_->db_mu);
  if (!impl_->db) return impl_->Unusable(fmt::format("read snapshots of {}", impl_->path));
  return internal::LatestSnapshotOf(impl_->db.get(), impl_->snapshots_cf);
}

Status Journal::Scan(const ScanOptions& options, const RecordFn& fn) const {
  // Everything appended, as far as the drain can write it (a failed drain
  // leaves the rest in the ring; the scan shows what is in the database).
  if (impl_->ring) (void)impl_->DrainAll(false);
  std::shared_lock db_lock(impl_->db_mu);
  if (!impl_->db) return impl_->Unusable(fmt::format("scan {}", impl_->path));
  return internal::ScanEvents(impl_->db.get(), impl_->events_cf, impl_->stream, options, fn);
}

Status Journal::Sync() {
  const std::string what = fmt::format("sync {}", impl_->path);
  if (impl_->ring) return impl_->DrainAll(true);
  if (Status s = impl_->Reopen(); !s.ok()) return s;
  std::shared_lock db_lock(impl_->db_mu);
  return impl_->Guarded(what, [&] { return impl_->db->SyncWAL(); });
}

Result<CompactionStats> Journal::Compact(const Retention& retention) {
  CompactionStats stats;
  if (impl_->ring) {
    if (Status s = impl_->DrainAll(false); !s.ok()) return s;
  }
  if (Status s = impl_->Reopen(); !s.ok()) return s;
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
    if (auto s = impl_->Guarded("compact: delete", [&] { return impl_->db->Write(wo, &batch); });
        !s.ok()) {
      return s;
    }
    impl_->first_seq = cut + 1;
    stats.deleted_through = cut;
  }
  // Flush and rewrite every level so the deleted range really leaves the disk.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (auto s =
          impl_->Guarded("compact: flush",
                         [&] {
                           return impl_->db->Flush(fo, {impl_->events_cf, impl_->snapshots_cf});
                         });
      !s.ok()) {
    return s;
  }
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* cf : {impl_->events_cf, impl_->snapshots_cf}) {
    // Under write_mu too: a compaction may flush the memtable first, which
    // writes to the WAL writer. Appends wait meanwhile (compaction is a
    // maintenance step, `blackbox compact`, not on an appender's path).
    if (auto s = impl_->Guarded("compact: compact",
                                [&] { return impl_->db->CompactRange(co, cf, nullptr, nullptr); });
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
