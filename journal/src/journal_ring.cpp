// Ring mode of the writer (JournalOptions::ring_bytes): buffered appends
// through the crash-safe ring of ring.h, drained into RocksDB by one thread.
//
// Numbering. A seq is a ring position: an append that reserves slot s gets
// seq s, and the drain writes it to RocksDB under key s. The ring hands out
// positions gap-free and in order, so the journal's numbering stays strictly
// increasing with no gaps across buffered and durable appends. (The direct
// path's leader and next_seq are not used while the ring is on.)
//
// With ring lanes (JournalOptions::ring_lanes, lanes.h), a buffered append
// that fits a lane's slot goes into the calling thread's lane instead and
// returns 0: MoveLanes (the drain, or an append that must come after it)
// moves what the lanes published stamped before it read the clock
// (Horizon) into the ring as LaneRef records (kLaneFlag), in stamp order,
// under consecutive seqs, and the drain writes each one's event from its
// lane slot. Anything that gets its seq from the ring directly (a durable
// append, a group, an event too large for a lane) first waits for a move
// that read the clock after it began (WaitMoved): every append that
// returned before it is then numbered before it. After the
// database has a batch, its lane slots are released, then its ring slots:
// a kill in between leaves ring records the database has, whose LaneRefs
// tell the next open which lane records not to take for leftovers
// (IngestLeftRing).
//
// An append:
//   - an event that fits a slot, buffered: copied into the ring, returns. Its
//     promise is the direct path's: the ring's pages survive kill -9 of the
//     process (not a power loss), and the next Open ingests them.
//   - durable: the same copy (flagged kDurableFlag), then it waits until the
//     drain has written through its seq with sync = true. While any durable
//     append waits (durable_pending, raised before its ring append, so the
//     drain cannot take its record without seeing it), every drained batch
//     is synced: one fsync covers every waiter of the batch (group commit).
//     A synced batch with fewer durable records than the last one waits a
//     little for the rest, as on the direct path (see DrainLoop). A durable
//     append that is the only one pending does not hand off: it takes the
//     drain's turn (drain_run_mu) and writes the batch itself (SyncThrough),
//     which saves the two thread wake-ups of the hand-off.
//   - too large for a slot, or an AppendAll: a group of consecutive slots is
//     reserved (Ring::AppendAll) whose records are markers (kSpilledFlag,
//     payload {index, count}); the events themselves wait in memory
//     (`spilled`) and the call returns once the drain has written the whole
//     group in one batch (synced when durable). So they are in RocksDB's log
//     before the call returns, like a direct append, and keep the numbering;
//     an AppendAll still reaches the journal whole or not at all. The drain
//     never cuts a group between two batches.
//   - ring full: a buffered append is refused at once (counted in
//     dropped_appends() and failed_appends(); the drain journals the count
//     as a LogLine event once there is room); it never blocks. A durable one,
//     or a group, waits for room for up to kRoomWait, then fails.
//
// The drain thread: Peek up to kDrainMax records, one WriteBatch keyed by
// seq, written (synced when a durable waiter is pending), then Release and
// wake the waiters. When idle it spins briefly, then sleeps on wake_cv with
// a timeout growing to kIdleMax (a buffered event then reaches RocksDB within
// a few ms); durable appends and flushes wake it. A failed write (disk full,
// I/O error) leaves its records in the ring, fails the waiters of that batch
// (the contract: an append reported failed may still reach the journal, here
// under the seq it was given) and is retried after a back-off growing to
// kRetryMax; the database is reopened as on the direct path (Reopen). A
// buffered append never waits for it: the ring fills, and then drops.
//
// Open (StartRing), whatever ring_bytes is: the RING an earlier writer left
// behind is read (ScanRing) for records past the database's last seq; they
// are written in seq order, under their own seqs, in one synced batch,
// followed by what its lanes held and RING does not refer to, numbered
// after them in the order of their stamps (LaneLeftovers). A seq
// in between with no intact record (reserved but never published: the
// process died in the middle of the copy; a torn slot; a marker whose event
// was still in memory) gets a placeholder event, a LogLine from source
// "blackbox.journal" saying it was lost while being written, so the
// numbering keeps no gap. Nothing acknowledged is among them: those appends
// never returned. Seqs reserved after the last intact record are not used
// and are numbered again. TakeWarnings() reports what was ingested. Then
// the ring is opened numbered from the next seq; when it cannot be (no
// space for its file), the journal stays on the direct path and says so.
//
// Close (StopRing): the drain writes everything, syncs and stops, leaving an
// empty ring. When the database cannot take the writes, the drain gives up
// after kStopAttempts; the records stay in the ring for the next Open.
//
// Damage from outside: when a reopen after a failed drain finds the log
// damaged and the direct path's numbering would jump above the high-water
// mark, the ring keeps its own numbering: it knows what it gave out (every
// seq below its tail), so nothing is numbered twice. The jump's range of
// numbers "never given out" then starts at the tail, and the drain takes
// what it writes out of that range before writing (Reserve), as the ingest
// of a dead writer's ring does: a later loss of those records reads as a
// loss, not as numbers never given out.
#include <fmt/format.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "blackbox/event.h"
#include "drain_hook.h"
#include "journal_impl.h"

namespace blackbox {

using internal::EncodeKey;
using internal::KeySlice;
using internal::RingCode;
using internal::RingView;

namespace {

constexpr size_t kDrainMax = 1024;  // records per batch (a group may make it more)
constexpr int kIdleSpins = 64;
constexpr std::chrono::microseconds kIdleMin{50};
constexpr std::chrono::microseconds kIdleMax{2000};
constexpr std::chrono::milliseconds kRetryMax{200};
constexpr std::chrono::seconds kRoomWait{2};
constexpr int kStopAttempts = 5;
constexpr std::chrono::microseconds kMaxGather{1000};

std::atomic<bool> drain_held{false};       // drain_hook.h
std::atomic<bool> release_skipped{false};  // drain_hook.h
std::atomic<int> lane_scan_delay_us{0};    // drain_hook.h

RingMarker MarkerOf(const RingView& v) {
  RingMarker m;
  if (v.payload.size() == sizeof m) std::memcpy(&m, v.payload.data(), sizeof m);
  return m;
}

constexpr size_t kMoveMax = 4096;  // lane records per move

int64_t TimeOf(std::string_view bytes) {
  // Payloads copied into a std::string are heap-aligned (VerifyEvent's
  // REQUIRES); a short one is no event anyway.
  const fb::Event* e = VerifyEvent(Bytes(bytes));
  return e ? e->time_ns() : 0;
}

// The values of the newest `count` events of the database, newest first.
std::vector<std::string> NewestValues(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                      size_t count) {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  uint64_t seq = 0;
  for (it->SeekToLast(); it->Valid() && out.size() < count; it->Prev()) {
    if (internal::DecodeKey({it->key().data(), it->key().size()}, &seq)) {
      out.push_back(it->value().ToString());
    }
  }
  return out;
}

}  // namespace

void internal::HoldRingDrainForTesting(bool hold) { drain_held.store(hold); }
void internal::SkipRingReleaseForTesting(bool skip) { release_skipped.store(skip); }
void internal::DelayLaneScansForTesting(int microseconds) {
  lane_scan_delay_us.store(microseconds);
}

std::string Journal::Impl::LostEvent(std::string_view why, int64_t time_ns) const {
  fb::EventT e;
  e.stream = stream;
  e.severity = fb::Severity::Warning;
  e.time_ns = time_ns;
  fb::LogLineT line;
  line.source = "blackbox.journal";
  line.text = std::string(why);
  e.payload.Set(std::move(line));
  return EncodeEvent(std::move(e));
}

bool Journal::Impl::IngestLeftRing() {
  auto warn = [&](std::string text) {
    std::lock_guard lock(warnings_mu);
    warnings.push_back(std::move(text));
  };
  const std::string file = path + "/" + internal::kRingFile;
  const uint64_t last = last_seq.load();
  std::vector<size_t> lane_ids;
  const std::vector<std::string> lane_files = internal::ListLaneFiles(path, &lane_ids);
  // With lanes, RING's records the database has already are read too: their
  // lane records may still be in the lanes (a kill between the write and the
  // release), and must not be taken for leftovers.
  auto scan = internal::ScanRing(file, lane_files.empty() ? last : 0);
  const bool ring_unread = !scan.ok();
  if (!scan.ok()) {
    if (scan.status().code() != Status::Code::kNotFound) {
      warn(
          fmt::format("the ring of the journal stream {} cannot be read ({}); events it held "
                      "are lost",
                      path, scan.status().message()));
    }
    if (lane_files.empty()) return true;
    scan = internal::RingScan{};
  }
  // The lanes' records past their heads, and the last position of each that
  // RING refers to: what comes after it was not moved yet (leftovers).
  internal::LaneScans lane_scans;
  uint64_t lane_torn = 0, lane_holes = 0;
  for (size_t k = 0; k < lane_files.size(); ++k) {
    auto ls = internal::ScanRing(lane_files[k], 0);
    if (!ls.ok()) {
      warn(
          fmt::format("a ring lane of the journal stream {} cannot be read ({}); events it held "
                      "are lost",
                      path, ls.status().message()));
      continue;
    }
    lane_torn += ls->torn;
    lane_holes += ls->holes;
    lane_scans.emplace(static_cast<uint32_t>(lane_ids[k]), std::move(*ls));
  }
  std::vector<internal::LaneLeftover> leftovers =
      internal::LaneLeftovers(scan->records, lane_scans, &lane_torn);
  size_t written_before = 0;  // leftovers the database turned out to have
  if (ring_unread && !leftovers.empty() && last > 0) {
    // What was written but not released is among the database's newest
    // events: those RING's unreleased slots numbered, at most one per slot
    // (slots are 64 bytes or more; RING's size, or this writer's).
    struct stat st {};
    const size_t ring_size = ::stat(file.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
    const size_t slots = std::max({ring_size, options.ring_bytes, size_t{4} << 20}) / 64;
    written_before = internal::DropWritten(&leftovers, NewestValues(db.get(), events_cf, slots));
  }

  std::vector<internal::RingRecord*> after_last;
  for (auto& r : scan->records) {
    if (r.seq > last) after_last.push_back(&r);
  }
  if (!after_last.empty() || !leftovers.empty()) {
    // Seqs the database may lack below the ring's head were drained: only
    // damage of the database takes them (its open says so).
    const uint64_t from = std::max(last + 1, scan->head);
    const uint64_t through = after_last.empty() ? last : after_last.back()->seq;
    // Leftovers get the seqs after RING's; after a damaged open that jumped,
    // after the jump.
    const uint64_t left_from = std::max(through + 1, open_next_seq);
    const uint64_t left_through = left_from + leftovers.size() - 1;
    std::vector<std::pair<uint64_t, std::string>> values;
    values.reserve(after_last.size() + leftovers.size());
    uint64_t ingested = 0, lost = 0;
    int64_t time_ns = 0;
    auto it = after_last.begin();
    for (uint64_t s = from; !after_last.empty() && s <= through; ++s) {
      while (it != after_last.end() && (*it)->seq < s) ++it;
      internal::RingRecord* r = it != after_last.end() && (*it)->seq == s ? *it : nullptr;
      internal::RingRecord* event = r;
      if (r && (r->flags & kLaneFlag) != 0) {
        const LaneRef ref = LaneRefOf(Bytes(r->payload));
        event = internal::FindLaneRecord(lane_scans, ref.lane, ref.position);
      }
      if (event && (r->flags & kSpilledFlag) == 0) {
        std::string bytes = event == r ? std::move(r->payload)
                                       : std::string(event->payload.substr(sizeof(uint64_t)));
        time_ns = std::max(time_ns, TimeOf(bytes));
        values.emplace_back(s, std::move(bytes));
        ++ingested;
      } else {
        values.emplace_back(
            s, LostEvent(fmt::format("event {} lost while being written: the writing process "
                                     "died before its append returned",
                                     s),
                         time_ns));
        ++lost;
      }
    }
    for (size_t k = 0; k < leftovers.size(); ++k) {
      std::string bytes = leftovers[k].record->payload.substr(sizeof(uint64_t));
      values.emplace_back(left_from + k, std::move(bytes));
    }
    // Every seq after the database's last through RING's was given out by
    // that writer (a ring numbers without gaps, and drains in order): none
    // of them is "never given out", even below the ring's head.
    Status s = after_last.empty() ? Status::Ok() : Reserve(last + 1, through);
    if (s.ok() && !leftovers.empty()) s = Reserve(left_from, left_through);
    rocksdb::WriteBatch batch;
    for (const auto& [seq, v] : values) {
      if (!s.ok()) break;
      auto key = EncodeKey(seq);
      batch.Put(KeySlice(key), rocksdb::Slice(v));
    }
    if (s.ok()) {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      s = Guarded("ingest the ring", [&] { return db->Write(wo, &batch); });
    }
    if (!s.ok()) {
      // The RING is left as it is, and nothing is numbered over its events:
      // the journal stays broken, and the next call that reopens it ingests
      // them first (Reopen).
      warn(
          fmt::format("the ring of the journal stream {} holds {} event(s) not yet in the "
                      "database, and writing them failed ({}); they stay in {}, and the "
                      "journal writes nothing before them",
                      path, ingested + leftovers.size(), s.message(), file));
      return false;
    }
    const uint64_t end = leftovers.empty() ? through : left_through;
    last_seq.store(end);
    if (last == 0) first_seq.store(after_last.empty() ? left_from : from);
    open_next_seq = std::max(open_next_seq, end + 1);
    {
      std::lock_guard lock(mu);
      next_seq = std::max(next_seq, open_next_seq);
    }
    if (!after_last.empty()) {
      warn(fmt::format(
          "the ring of the journal stream {} held {} event(s) not yet in the database (seqs {} "
          "to {}): ingested under their seqs; {} seq(s) among them ({} torn, {} never "
          "published) were being written when the writer died and are placeholders",
          path, ingested, from, through, lost, scan->torn, lost - scan->torn));
    }
    if (!leftovers.empty()) {
      warn(fmt::format(
          "the ring lanes of the journal stream {} held {} event(s) not yet numbered: ingested "
          "in the order of their appends as seqs {} to {}; {} torn slot(s) and {} never "
          "published were being written when the writer died",
          path, leftovers.size(), left_from, left_through, lane_torn, lane_holes));
    }
  }
  if (written_before > 0) {
    warn(fmt::format(
        "the ring lanes of the journal stream {} held {} event(s) the database has already (its "
        "RING, which says so, could not be read): not ingested again",
        path, written_before));
  }
  if (leftovers.empty() && lane_torn + lane_holes > 0) {
    warn(
        fmt::format("the ring lanes of the journal stream {} held {} torn slot(s) and {} never "
                    "published, being written when the writer died",
                    path, lane_torn, lane_holes));
  }
  // Ingested (or nothing to): a ring left behind must not be read again.
  // (A ring of this writer replaces it in one rename, see ring.h; its lanes
  // are made anew.)
  if (options.ring_bytes == 0 || ring_ingest_pending) ::unlink(file.c_str());
  for (const std::string& f : lane_files) ::unlink(f.c_str());
  return true;
}

void Journal::Impl::StartRing() {
  auto warn = [&](std::string text) {
    std::lock_guard lock(warnings_mu);
    warnings.push_back(std::move(text));
  };
  if (!db) {
    // Opened closed (no space): the RING waits for the first reopen.
    ring_ingest_pending = true;
    if (options.ring_bytes != 0) {
      warn(
          fmt::format("the journal stream {} could not be opened: no ring; appends use the "
                      "direct path",
                      path));
    }
    return;
  }
  if (!IngestLeftRing()) {
    ring_ingest_pending = true;
    broken.store(true);
    return;
  }
  if (options.ring_bytes == 0) return;
  internal::RingOptions ro;
  ro.size = options.ring_bytes;
  ro.slot_size = options.ring_slot_bytes;
  uint64_t next = 0;
  {
    std::lock_guard lock(mu);
    next = next_seq;
  }
  auto opened = internal::Ring::Open(path, ro, next);
  if (!opened.ok()) {
    warn(fmt::format("the journal stream {} has no ring ({}); appends use the direct path", path,
                     opened.status().message()));
    return;
  }
  ring = std::move(*opened);
  written_through = synced_through = next - 1;
  if (options.ring_lanes > 0) {
    internal::RingOptions lo = ro;
    lo.size = std::max(std::bit_floor(ro.size / options.ring_lanes), 2 * ro.slot_size);
    auto opened_lanes = internal::Lanes::Open(path, options.ring_lanes, lo);
    if (opened_lanes.ok()) {
      lanes = std::move(*opened_lanes);
      lanes_moved.assign(lanes->count(), 0);
      lanes_moved_stamp.assign(lanes->count(), 0);
    } else {
      warn(
          fmt::format("the journal stream {} has no ring lanes ({}); buffered appends use its "
                      "ring",
                      path, opened_lanes.status().message()));
    }
  }
  drain = std::thread([this] { DrainLoop(); });
}

void Journal::Impl::StopRing() {
  if (!ring) return;
  {
    std::lock_guard lock(drain_mu);
    stopping = true;
    wake = true;
  }
  wake_cv.notify_one();
  drain.join();
  ring.reset();
  lanes.reset();
}

internal::RingAppend Journal::Impl::AppendWithRoom(
    const std::function<internal::RingAppend()>& append) {
  const auto deadline = std::chrono::steady_clock::now() + kRoomWait;
  auto pause = kIdleMin;
  internal::RingAppend a;
  while ((a = append()).code == RingCode::kFull && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(drain_mu);
      wake = true;
    }
    wake_cv.notify_one();
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kIdleMax);
  }
  return a;
}

Result<uint64_t> Journal::Impl::RingAppendOne(std::span<const uint8_t> event,
                                              Durability durability) {
  if (durability == Durability::kBuffered && lanes && event.size() <= lanes->payload_max()) {
    const internal::LaneAppend a = lanes->Append(event);
    if (a.code == RingCode::kOk) return uint64_t{0};  // numbered when moved
    dropped.fetch_add(1, std::memory_order_relaxed);
    failed.fetch_add(1, std::memory_order_relaxed);
    return Status::IOError(fmt::format(
        "append to {}: the ring lane is full (the drain is behind); event dropped", path));
  }
  // Anything else keeps its place after the lanes' earlier events.
  if (lanes) {
    if (Status s = WaitMoved(internal::NextStamp()); !s.ok()) {
      failed.fetch_add(1, std::memory_order_relaxed);
      return s;
    }
  }
  if (durability == Durability::kBuffered) {
    const internal::RingAppend a = ring->Append(event);
    if (a.code == RingCode::kOk) return a.seq;
    if (a.code == RingCode::kTooLarge) return RingAppendSpilled({&event, 1}, durability);
    dropped.fetch_add(1, std::memory_order_relaxed);
    failed.fetch_add(1, std::memory_order_relaxed);
    return Status::IOError(
        fmt::format("append to {}: the ring is full (the drain is behind); event dropped", path));
  }
  // Durable: counted as pending before its record can be drained.
  durable_pending.fetch_add(1);
  const internal::RingAppend a = AppendWithRoom([&] { return ring->Append(event, kDurableFlag); });
  Status s;
  if (a.code == RingCode::kOk) {
    s = SyncThrough(a.seq);
  } else if (a.code == RingCode::kFull) {
    s = Status::IOError(fmt::format("append to {}: the ring stayed full", path));
  }
  durable_pending.fetch_sub(1);
  if (a.code == RingCode::kTooLarge) return RingAppendSpilled({&event, 1}, durability);
  if (!s.ok()) {
    failed.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  return a.seq;
}

Result<uint64_t> Journal::Impl::RingAppendSpilled(std::span<const std::span<const uint8_t>> events,
                                                  Durability durability) {
  const size_t n = events.size();
  if (n > ring->slot_count() / 2) {
    failed.fetch_add(n, std::memory_order_relaxed);
    return Status::InvalidArgument(
        fmt::format("append to {}: {} events at once, more than half the ring's {} slots", path, n,
                    ring->slot_count()));
  }
  if (lanes && events.size() > 1) {
    if (Status s = WaitMoved(internal::NextStamp()); !s.ok()) {
      failed.fetch_add(n, std::memory_order_relaxed);
      return s;
    }
  }
  std::vector<std::string> copies;
  copies.reserve(n);
  for (const auto& e : events)
    copies.emplace_back(reinterpret_cast<const char*>(e.data()), e.size());
  std::vector<RingMarker> markers(n);
  std::vector<std::span<const uint8_t>> payloads(n);
  for (size_t j = 0; j < n; ++j) {
    markers[j] = {static_cast<uint32_t>(j), static_cast<uint32_t>(n)};
    payloads[j] = {reinterpret_cast<const uint8_t*>(&markers[j]), sizeof(RingMarker)};
  }
  const bool sync = durability == Durability::kDurable;
  if (sync) durable_pending.fetch_add(1);
  const internal::RingAppend a =
      AppendWithRoom([&] { return ring->AppendAll(payloads, kSpilledFlag); });
  Status s;
  if (a.code == RingCode::kOk) {
    // The drain waits for this entry before it writes the group.
    {
      std::lock_guard lock(spill_mu);
      spilled.emplace(a.seq, std::move(copies));
    }
    s = sync ? SyncThrough(a.seq + n - 1) : WaitDrained(a.seq + n - 1, false);
  } else {
    s = Status::IOError(fmt::format("append to {}: the ring stayed full", path));
  }
  if (sync) durable_pending.fetch_sub(1);
  if (!s.ok()) {
    failed.fetch_add(n, std::memory_order_relaxed);
    return s;
  }
  return a.seq;
}

Status Journal::Impl::WaitMoved(uint64_t stamp) {
  const auto deadline = std::chrono::steady_clock::now() + kRoomWait;
  for (;;) {
    if (moved_horizon.load(std::memory_order_acquire) >= stamp) return Status::Ok();
    if (!drain_held.load(std::memory_order_relaxed)) {
      std::lock_guard move(move_mu);
      if (moved_horizon.load(std::memory_order_acquire) >= stamp) return Status::Ok();
      MoveLanes();
      if (moved_horizon.load(std::memory_order_acquire) >= stamp) return Status::Ok();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::IOError(fmt::format(
          "append to {}: the ring stayed full (the lanes' earlier events could not move)", path));
    }
    // The ring is full (the drain must write first): wake the drain, look
    // again shortly. (No condition variable: a move's notify would wake
    // every append waiting for its fsync.)
    {
      std::lock_guard lock(drain_mu);
      wake = true;
    }
    wake_cv.notify_one();
    std::this_thread::sleep_for(kIdleMin);
  }
}

void Journal::Impl::MoveLanes() {
  const uint64_t horizon = lanes->Horizon();
  struct Item {
    uint64_t stamp;
    uint32_t lane;
    uint64_t position;
    bool operator<(const Item& o) const {
      return std::tie(stamp, lane, position) < std::tie(o.stamp, o.lane, o.position);
    }
  };
  std::vector<Item> items;
  std::vector<RingView> views;
  for (uint32_t i = 0; i < lanes->count(); ++i) {
    if (const int delay = lane_scan_delay_us.load(std::memory_order_relaxed); delay > 0 && i > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(delay));
    }
    lanes->lane(i).PeekFrom(lanes_moved[i] + 1, kMoveMax, &views);
    uint64_t prev = lanes_moved_stamp[i];
    for (const RingView& v : views) {
      // A record damaged in memory keeps its place in its lane.
      const uint64_t stamp = v.intact ? internal::StampOf(v.payload) : prev;
      if (stamp >= horizon) break;
      items.push_back({stamp, i, v.seq});
      prev = stamp;
    }
  }
  std::sort(items.begin(), items.end());
  const uint64_t in_ring = ring->tail() - ring->head();
  size_t n = std::min<size_t>(items.size(),
                              ring->slot_count() - std::min<uint64_t>(in_ring, ring->slot_count()));
  n = std::min(n, kMoveMax);
  std::vector<LaneRef> refs(n);
  std::vector<std::span<const uint8_t>> payloads(n);
  for (size_t k = 0; k < n; ++k) {
    refs[k] = {items[k].lane, 0, items[k].position};
    payloads[k] = {reinterpret_cast<const uint8_t*>(&refs[k]), sizeof(LaneRef)};
  }
  // The ring may have filled meanwhile (durable appends): fewer then.
  while (n > 0 && ring->AppendAll(std::span(payloads.data(), n), kLaneFlag).code != RingCode::kOk) {
    n /= 2;
  }
  for (size_t k = 0; k < n; ++k) {
    lanes_moved[items[k].lane] = items[k].position;
    lanes_moved_stamp[items[k].lane] = items[k].stamp;
  }
  // Everything stamped below this is in the ring now.
  const uint64_t moved = n == items.size() ? horizon : items[n].stamp;
  if (moved > moved_horizon.load(std::memory_order_relaxed)) {
    moved_horizon.store(moved, std::memory_order_release);
  }
}

Status Journal::Impl::WaitDrained(uint64_t through, bool sync) {
  std::unique_lock lock(drain_mu);
  const uint64_t gen = fail_gen;
  auto reached = [&] { return (sync ? synced_through : written_through) >= through; };
  if (reached()) return Status::Ok();
  wake = true;
  wake_cv.notify_one();
  // A failed write fails every waiter of its time: those of later seqs too,
  // which cannot be written before it.
  drained_cv.wait(lock, [&] { return reached() || fail_gen != gen; });
  if (reached()) return Status::Ok();
  return fail_status;
}

Status Journal::Impl::SyncThrough(uint64_t seq) {
  std::vector<RingView> views;
  for (;;) {
    {
      std::lock_guard lock(drain_mu);
      if (synced_through >= seq) return Status::Ok();
    }
    // Other durable appends pending: the drain gathers them into one
    // fsync. Alone: this thread writes, if the drain is not writing now.
    if (durable_pending.load() != 1) return WaitDrained(seq, true);
    std::unique_lock run(drain_run_mu, std::try_to_lock);
    if (!run.owns_lock()) return WaitDrained(seq, true);
    const size_t take = PeekWhole(views);
    // Nothing to take (its record is behind one still being copied, or the
    // drain is held): the drain thread sees to it.
    if (take == 0) {
      run.unlock();
      return WaitDrained(seq, true);
    }
    if (Status s = WriteTaken(views, take, true); !s.ok()) return s;
  }
}

size_t Journal::Impl::PeekWhole(std::vector<RingView>& views) {
  // A loss to journal: one LogLine for every drop since the last one.
  if (const uint64_t d = dropped.load(std::memory_order_relaxed); d > dropped_journaled) {
    const std::string e = LostEvent(
        fmt::format("{} buffered event(s) dropped: the ring was full (the drain was behind)",
                    d - dropped_journaled),
        0);
    if (ring->Append(Bytes(e)).code == RingCode::kOk) dropped_journaled = d;
  }
  size_t n = drain_held.load(std::memory_order_relaxed) ? 0 : ring->Peek(kDrainMax, &views);
  // Never cut a group of spilled events: stop before one that is not
  // whole in `views` or whose events are not in `spilled` yet.
  if (n > 0 && (views[0].flags & kSpilledFlag) != 0 && MarkerOf(views[0]).count > n) {
    n = ring->Peek(MarkerOf(views[0]).count, &views);
  }
  size_t take = 0;
  while (take < n) {
    const RingView& v = views[take];
    if (!v.intact || (v.flags & kSpilledFlag) == 0) {
      ++take;
      continue;
    }
    const RingMarker m = MarkerOf(v);
    bool whole = m.index == 0 && m.count >= 1 && take + m.count <= n;
    if (whole) {
      std::lock_guard lock(spill_mu);
      auto it = spilled.find(v.seq);
      whole = it != spilled.end() && it->second.size() == m.count;
    }
    if (!whole) break;
    take += m.count;
  }
  return take;
}

Status Journal::Impl::WriteTaken(const std::vector<RingView>& views, size_t take, bool sync) {
  const uint64_t through = views[take - 1].seq;
  Status s = WriteRingBatch(views, take, sync);
  if (s.ok()) {
    // Spilled events written: their memory goes, then their slots.
    {
      std::lock_guard lock(spill_mu);
      spilled.erase(spilled.begin(), spilled.upper_bound(through));
    }
    // The lanes' slots first: a kill between the two releases leaves RING
    // records whose seqs the database has, which the next open skips.
    if (release_skipped.load(std::memory_order_relaxed)) {
      std::lock_guard lock(drain_mu);
      written_through = through;
      if (sync) synced_through = through;
      drained_cv.notify_all();
      return s;
    }
    if (lanes) {
      std::vector<uint64_t> through_lane(lanes->count(), 0);
      for (size_t k = 0; k < take; ++k) {
        if ((views[k].flags & kLaneFlag) == 0 || !views[k].intact) continue;
        const LaneRef r = LaneRefOf(views[k].payload);
        if (r.lane < through_lane.size()) {
          through_lane[r.lane] = std::max(through_lane[r.lane], r.position);
        }
      }
      for (uint32_t i = 0; i < through_lane.size(); ++i) {
        if (through_lane[i] != 0) lanes->lane(i).Release(through_lane[i]);
      }
    }
    ring->Release(through);
    std::lock_guard lock(drain_mu);
    written_through = through;
    if (sync) synced_through = through;
    drained_cv.notify_all();
    return s;
  }
  std::lock_guard lock(drain_mu);
  ++fail_gen;
  fail_status = s;
  drained_cv.notify_all();
  return s;
}

Status Journal::Impl::DrainAll(bool sync) {
  if (lanes) {
    if (Status s = WaitMoved(internal::NextStamp()); !s.ok()) return s;
  }
  const uint64_t through = ring->tail() - 1;
  if (sync) durable_pending.fetch_add(1);
  Status s = WaitDrained(through, sync);
  if (sync) durable_pending.fetch_sub(1);
  return s;
}

Status Journal::Impl::WriteRingBatch(const std::vector<RingView>& views, size_t n, bool sync) {
  const std::string what = fmt::format("drain the ring into {}", path);
  if (Status r = Reopen(); !r.ok()) return r;
  std::shared_lock db_lock(db_mu);
  if (!db || broken.load()) return Unusable(what);
  const uint64_t through = views[n - 1].seq;
  if (Status s = Reserve(views[0].seq, through); !s.ok()) {
    std::string msg = fmt::format("{}: reserving sequence numbers: {}", what, s.message());
    return s.code() == Status::Code::kNoSpace ? Status::NoSpace(msg) : Status::IOError(msg);
  }
  rocksdb::WriteBatch batch;  // Put copies the bytes
  std::unique_lock spill_lock(spill_mu);
  for (size_t k = 0; k < n; ++k) {
    const RingView& v = views[k];
    auto key = EncodeKey(v.seq);
    rocksdb::Slice value;
    std::string lost;
    if (!v.intact) {
      lost = LostEvent(
          fmt::format("event {} lost: its record in the ring was damaged in memory", v.seq), 0);
      value = rocksdb::Slice(lost);
    } else if ((v.flags & kLaneFlag) != 0) {
      const LaneRef r = LaneRefOf(v.payload);
      const RingView lv =
          lanes && r.lane < lanes->count() ? lanes->lane(r.lane).At(r.position) : RingView{};
      if (lv.seq == 0 || !lv.intact) {
        lost = LostEvent(
            fmt::format("event {} lost: its record in a ring lane was damaged in memory", v.seq),
            0);
        value = rocksdb::Slice(lost);
      } else {
        const auto event = internal::WithoutStamp(lv.payload);
        value = rocksdb::Slice(reinterpret_cast<const char*>(event.data()), event.size());
      }
    } else if ((v.flags & kSpilledFlag) != 0) {
      const RingMarker m = MarkerOf(v);
      const std::string& bytes = spilled.at(v.seq - m.index)[m.index];  // checked by the drain
      value = rocksdb::Slice(bytes);
    } else {
      value = rocksdb::Slice(reinterpret_cast<const char*>(v.payload.data()), v.payload.size());
    }
    batch.Put(KeySlice(key), value);
  }
  spill_lock.unlock();
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  if (Status s = Guarded(what, [&] { return db->Write(wo, &batch); }); !s.ok()) return s;
  batches.fetch_add(1, std::memory_order_relaxed);
  last_seq.store(through);
  return Status::Ok();
}

void Journal::Impl::DrainLoop() {
  std::vector<RingView> views;
  int idle = 0;
  auto pause = kIdleMin;
  auto retry = std::chrono::milliseconds(1);
  int stop_failures = 0;
  // Group-commit sizing (drain thread only): durable appends in the last
  // synced batch, a moving average of a synced write, and the end of the
  // current wait for a batch to fill.
  size_t last_durable_batch = 1;
  std::chrono::nanoseconds durable_cost{0};
  std::chrono::steady_clock::time_point gather_until{};
  for (;;) {
    // The drain's turn. A lone durable append may have taken it
    // (SyncThrough): then this thread idles instead of queueing on the
    // mutex, so that the append's unlock has no one to wake.
    std::unique_lock run(drain_run_mu, std::try_to_lock);
    if (lanes && run.owns_lock() && !drain_held.load(std::memory_order_relaxed)) {
      std::lock_guard move(move_mu);
      MoveLanes();
    }
    const size_t take = run.owns_lock() ? PeekWhole(views) : 0;

    if (take == 0) {
      bool sync_owed = false, done = false;
      if (run.owns_lock()) {
        std::lock_guard lock(drain_mu);
        sync_owed = durable_pending.load() > 0 && synced_through < written_through;
        done = stopping && ring->head() == ring->tail() && (!lanes || lanes->Empty());
      }
      if (sync_owed || done) {
        // Written already but not fsync'd (taken before its waiter was
        // pending, or the last batches before a close): sync the log.
        Status s;
        {
          std::shared_lock db_lock(db_mu);
          s = Guarded(fmt::format("sync {}", path), [&] { return db->SyncWAL(); });
        }
        std::unique_lock lock(drain_mu);
        if (s.ok()) {
          synced_through = written_through;
        } else {
          ++fail_gen;
          fail_status = s;
        }
        drained_cv.notify_all();
        run.unlock();
        if (done && (s.ok() || ++stop_failures >= kStopAttempts)) return;
        if (!s.ok()) {
          wake_cv.wait_for(lock, retry);
          retry =
              std::min(retry * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kRetryMax));
          continue;
        }
      }
      if (run.owns_lock()) run.unlock();
      // Idle: spin a little, then sleep longer and longer (woken early by
      // durable appends and flushes).
      if (++idle < kIdleSpins) {
        std::this_thread::yield();
        continue;
      }
      std::unique_lock lock(drain_mu);
      wake_cv.wait_for(lock, pause, [&] { return wake; });
      if (wake) {
        pause = kIdleMin;
      } else {
        pause = std::min(pause * 2, kIdleMax);
      }
      wake = false;
      if (stopping && ring->head() == ring->tail() && (!lanes || lanes->Empty()) &&
          synced_through >= written_through) {
        return;
      }
      continue;
    }
    idle = 0;
    pause = kIdleMin;

    bool stopping_now;
    {
      std::lock_guard lock(drain_mu);
      stopping_now = stopping;
    }
    const bool sync = durable_pending.load() > 0;
    // Group commit: a synced batch with fewer durable appends than the last
    // one waits (re-peeking whenever one arrives) up to half a recent fsync,
    // at most kMaxGather, for the appenders of the last batch to come back,
    // as the direct path's leader does (journal.cpp).
    size_t durable_in = 0;
    for (size_t k = 0; k < take; ++k) durable_in += (views[k].flags & kDurableFlag) != 0;
    if (sync && !stopping_now && durable_in < last_durable_batch) {
      const auto now = std::chrono::steady_clock::now();
      if (gather_until == std::chrono::steady_clock::time_point{}) {
        gather_until = now + std::min<std::chrono::nanoseconds>(durable_cost / 2, kMaxGather);
      }
      if (now < gather_until) {
        run.unlock();
        std::unique_lock lock(drain_mu);
        wake_cv.wait_until(lock, gather_until, [&] { return wake; });
        wake = false;
        continue;
      }
    }
    gather_until = {};
    const auto write_start = std::chrono::steady_clock::now();
    Status s = WriteTaken(views, take, sync);
    run.unlock();
    if (s.ok() && sync) {
      const auto took = std::chrono::steady_clock::now() - write_start;
      last_durable_batch = std::max<size_t>(1, durable_in);
      durable_cost = durable_cost.count() == 0 ? std::chrono::nanoseconds(took)
                                               : (durable_cost * 7 + took) / 8;
    }
    if (s.ok()) {
      retry = std::chrono::milliseconds(1);
      continue;
    }
    if (stopping_now && ++stop_failures >= kStopAttempts) {
      // Closing, and the database takes nothing: the records stay in the
      // ring, for the next Open to ingest.
      std::lock_guard lock(warnings_mu);
      warnings.push_back(
          fmt::format("closing {}: the drain failed ({}); events {} to {} stay "
                      "in its ring for the next open",
                      path, s.message(), ring->head(), ring->tail() - 1));
      return;
    }
    std::unique_lock lock(drain_mu);
    wake_cv.wait_for(lock, retry, [&] { return stopping && !stopping_now; });
    retry = std::min(retry * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kRetryMax));
  }
}

}  // namespace blackbox
