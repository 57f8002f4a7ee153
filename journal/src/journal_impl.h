// Journal::Impl, shared by the direct path (journal.cpp) and ring mode
// (journal_ring.cpp). Not installed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/journal.h"
#include "high_water.h"
#include "internal.h"
#include "lanes.h"
#include "ring.h"

namespace blackbox {

// The flags of a ring record (RingView::flags) in ring mode.
// A marker: the event is in Journal::Impl::spilled (or was lost with the
// process); its payload is the group's RingMarker.
inline constexpr uint32_t kSpilledFlag = 1;
// A durable append (it waits for a synced batch): group-commit sizing.
inline constexpr uint32_t kDurableFlag = 2;
struct RingMarker {
  uint32_t index = 0;  // within its group
  uint32_t count = 0;  // events in the group (consecutive seqs)
};
// Ring lanes' records moved into RING (lanes.h).
using internal::kLaneFlag;
using internal::LaneRef;
using internal::LaneRefOf;

class Journal::Impl {
 public:
  struct PendingAppend {
    // One event, or several that go into the same write (AppendAll).
    std::span<const std::span<const uint8_t>> events;
    size_t bytes = 0;
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
  // Group-commit sizing, guarded by mu: the size of the last durable batch,
  // a moving average of what one durable write costs, and the leader waiting
  // for its batch to fill (nullptr when none does) with the size it wants.
  size_t last_durable_batch = 1;
  std::chrono::nanoseconds durable_write_cost{0};
  PendingAppend* gathering = nullptr;
  size_t gather_target = 0;
  // The high-water mark (high_water.h): the seq to number from after an
  // open, the highest seq reserved on disk, and the floor. Written by an open
  // (db_mu exclusive) and by the leader (Reserve), one at a time.
  uint64_t open_next_seq = 1;
  uint64_t reserved = 0;
  uint64_t floor_seq = 0;
  std::vector<internal::SeqRange> unused;  // kept in the mark as read
  // What an open found damaged (TakeWarnings).
  std::mutex warnings_mu;
  std::vector<std::string> warnings;
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> last_seq{0};
  std::atomic<uint64_t> first_seq{1};
  std::atomic<uint64_t> failed{0};
  // Set by any failed write, sync, flush or compaction; cleared by a
  // successful reopen (see the top of this file).
  std::atomic<bool> broken{false};
  // Serializes every RocksDB call that writes, syncs or flushes (the
  // leader's batch, PutSnapshot, Sync, Compact), so that after one fails the
  // next one sees `broken` before it reaches RocksDB. Taken after db_mu.
  std::mutex write_mu;

  ~Impl() {
    StopRing();
    CloseDb();
  }

  // Opens the database (the strict way first, see OpenDb) and sets
  // open_next_seq, reserved and floor_seq. REQUIRES: db closed, db_mu held
  // exclusively or no other thread.
  // With `may_set_aside` (the first open of a writer with set_aside_damaged)
  // a log damaged in the middle is reported as corruption, for the caller to
  // set the stream aside whole, instead of dropping the records after the
  // damage.
  Status OpenDb(bool may_set_aside = false);
  rocksdb::Status OpenRocks(rocksdb::WALRecoveryMode mode);
  // After OpenDb found the stream too damaged to open (`why`): renames its
  // directory aside, creates a fresh one numbered above it, opens that.
  Status SetAsideAndStartFresh(const Status& why);
  // Makes sure every seq up to `through` is below the high-water mark on
  // disk, and that none of from..through (about to be written) is still
  // recorded as never given out (an unused range a damaged open left).
  // Called by the leader only, with db_mu held (shared), or by an open.
  Status Reserve(uint64_t from, uint64_t through);
  void CloseDb() { internal::CloseJournalDb(db, events_cf, snapshots_cf); }
  // When the database is broken, closes and reopens it. REQUIRES: db_mu and
  // mu not held.
  Status Reopen();
  // The error to return when the database cannot be used (a failed reopen
  // left it closed, or another thread's write just failed). REQUIRES: db_mu held.
  Status Unusable(std::string_view what) const;
  // Marks the database broken when `rs` failed; returns it as ours.
  Status Check(const rocksdb::Status& rs, std::string_view what);
  // Runs `call` (a RocksDB call that writes, syncs or flushes) under write_mu
  // unless the database is unusable, and marks it broken when it fails.
  // REQUIRES: db_mu held (shared).
  template <class Call>
  Status Guarded(std::string_view what, Call&& call) {
    std::lock_guard lock(write_mu);
    if (!db || broken.load()) return Unusable(what);
    return Check(call(), what);
  }

  Result<uint64_t> Append(std::span<const std::span<const uint8_t>> events, Durability durability);
  // Writes `items` under consecutive seqs (the first one in *first); see below.
  Status WriteBatchOf(const std::vector<std::span<const uint8_t>>& items, bool sync,
                      uint64_t* first);

  // --- Ring mode (JournalOptions::ring_bytes; journal_ring.cpp). ---
  // Null when off (or when the ring could not be created): the direct path.
  std::unique_ptr<internal::Ring> ring;
  std::thread drain;
  // Events that do not go into a slot (too large, or an AppendAll): their
  // slots hold markers (kSpilledFlag) and the bytes wait here, keyed by the
  // group's first seq, until the drain has written them. Guarded by spill_mu.
  std::mutex spill_mu;
  std::map<uint64_t, std::vector<std::string>> spilled;
  // The drain's progress, guarded by drain_mu: every seq through
  // written_through is in RocksDB's log, through synced_through fsync'd.
  // A failed write bumps fail_gen: every waiter of that moment fails.
  std::mutex drain_mu;
  // Held by whoever peeks, writes and releases: the drain thread, or a lone
  // durable append (SyncThrough). Taken before drain_mu, never inside it.
  std::mutex drain_run_mu;
  std::condition_variable drained_cv;  // waiters: progress or failure
  std::condition_variable wake_cv;     // the drain: work for it
  bool wake = false;
  bool stopping = false;
  uint64_t written_through = 0;
  uint64_t synced_through = 0;
  uint64_t fail_gen = 0;
  Status fail_status;
  // Durable appends (and syncing flushes) between their ring append and the
  // end of their wait: while any is, the drain writes with sync = true.
  std::atomic<int> durable_pending{0};
  // Buffered appends refused because the ring was full, and how many of
  // them the drain has journaled as a loss already (under drain_run_mu).
  std::atomic<uint64_t> dropped{0};
  uint64_t dropped_journaled = 0;
  // With ring_lanes: the lanes buffered appends go to (lanes.h), null
  // otherwise. Under move_mu: the last position of each lane moved into the
  // ring, and its stamp. moved_horizon: every lane record stamped below it
  // and published when a move read it is in the ring, so every append that
  // returned before it was read is (durable appends wait for it,
  // WaitMoved). A move takes
  // no I/O and is not the drain's turn (drain_run_mu): a durable append
  // need not wait for the batch being fsync'd to be moved. It appends to
  // the ring like any appender; the drain releases lane slots only up to
  // positions moved already, which a move never reads again.
  std::unique_ptr<internal::Lanes> lanes;
  std::mutex move_mu;
  std::vector<uint64_t> lanes_moved;
  std::vector<uint64_t> lanes_moved_stamp;
  std::atomic<uint64_t> moved_horizon{0};
  // Moves the lane records stamped below the horizon into the ring, in
  // stamp order, as LaneRef records under consecutive seqs (as many as the
  // ring has room for). REQUIRES: move_mu held.
  void MoveLanes();
  // Waits until every lane record stamped below `stamp` is in the ring
  // (moving them itself when the drain is not running); fails when the
  // ring stays full for kRoomWait.
  Status WaitMoved(uint64_t stamp);

  // After the database opened: ingests what an old RING holds past
  // last_seq (IngestLeftRing), then, with ring_bytes, opens the ring and
  // starts the drain. Reports through `warnings`. REQUIRES: no other
  // thread yet.
  void StartRing();
  // Ingests what an old RING holds past last_seq, with placeholders for
  // holes, and removes it when no ring of this writer replaces it. Returns
  // false when it holds events that could not be written: nothing may be
  // numbered over them, so the journal stays broken and Reopen calls this
  // again (ring_ingest_pending). REQUIRES: db open; db_mu held exclusive
  // or no other thread yet.
  bool IngestLeftRing();
  // A RING whose events are not in the database yet (the open found no
  // space, or their write failed). Guarded by db_mu (exclusive).
  bool ring_ingest_pending = false;
  // Calls `append` until the ring has room for it, waking the drain, for at
  // most kRoomWait (durable appends and spilled groups only: a buffered
  // append never waits).
  internal::RingAppend AppendWithRoom(const std::function<internal::RingAppend()>& append);
  Result<uint64_t> RingAppendOne(std::span<const uint8_t> event, Durability durability);
  Result<uint64_t> RingAppendSpilled(std::span<const std::span<const uint8_t>> events,
                                     Durability durability);
  // Waits until the drain has written (and with `sync`, fsync'd) every seq
  // through `through`; the drain's error when its write of one failed.
  Status WaitDrained(uint64_t through, bool sync);
  // A durable append's wait for its seq to be fsync'd: when it is the only
  // durable append pending and the drain is not writing, it writes the
  // batch itself (PeekWhole and WriteTaken under drain_run_mu); otherwise
  // WaitDrained.
  Status SyncThrough(uint64_t seq);
  // The drain's step, in two parts, under drain_run_mu (the drain thread's
  // or SyncThrough's): journals the count of dropped appends, peeks, and
  // returns how many of `views` form the next batch (never a part of a
  // spilled group); then writes them (WriteRingBatch), releases their
  // slots and records the progress or the failure for the waiters.
  size_t PeekWhole(std::vector<internal::RingView>& views);
  Status WriteTaken(const std::vector<internal::RingView>& views, size_t take, bool sync);
  // Everything handed out so far written (fsync'd with `sync`).
  Status DrainAll(bool sync);
  // Stops the drain after it has written everything, and syncs.
  void StopRing();
  void DrainLoop();
  // Writes views[0, n) as one batch under their seqs.
  Status WriteRingBatch(const std::vector<internal::RingView>& views, size_t n, bool sync);
  // The event that stands for a seq whose event was lost while being
  // written (`why`), timed like its neighbour `time_ns` (0: now).
  std::string LostEvent(std::string_view why, int64_t time_ns) const;
};

}  // namespace blackbox
