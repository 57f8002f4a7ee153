// The append-only event journal.
//
// A journal root is a directory holding one RocksDB database per writing
// process ("stream"): <root>/app, <root>/watchdog, … Each database has
//   - the default column family: key = 8-byte big-endian sequence number,
//     value = a FlatBuffers Event (schemas/events.fbs);
//   - the "snapshots" column family: key = the sequence number a snapshot
//     covers, value = the snapshot's bytes (usually a StateSnapshot).
// Sequence numbers start at 1, increase strictly in commit order and have no
// gaps, across any number of appending threads. Compaction removes a prefix,
// so the first sequence number of a compacted stream is above 1. A number is
// never given to two events: <root>/<stream>/HIGH_WATER keeps a bound that a
// damaged write-ahead log cannot take back, and numbering continues above it
// after such damage (the gap is the events lost).
//
// Only one process may write a stream (RocksDB's LOCK). Readers (Reader,
// MergedReader) open the database read-only and never take that lock, so a
// tool can read a journal while the app writes it.
//
// Nothing here throws or aborts on I/O failure: every call returns a Status.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/status.h"

namespace blackbox {

enum class Durability {
  // In RocksDB's write-ahead log (written with write(2), not fsync'd): survives
  // a crash of the process, not necessarily a power loss.
  kBuffered,
  // fsync'd before Append returns. Concurrent durable appends share fsyncs.
  kDurable,
};

struct JournalOptions {
  // Memtable size. Small: events are small and the journal must add only a few
  // MB to its host process (see README, "Footprint").
  size_t write_buffer_size = 1 << 20;
  // The block cache: one per process, shared by every database it opens
  // (a tool may open many streams). Its size is the one asked for by the
  // first open of the process; later values are ignored.
  size_t block_cache_size = 1 << 20;
  // Create <root> and <root>/<stream> (0700) when missing. Writers only.
  bool create_if_missing = true;
  // Refuse a root directory that other users can write to.
  bool check_permissions = true;
  // Writers only. When the stream is too damaged to open (RocksDB reports
  // corruption, e.g. a truncated table file) or its write-ahead log is
  // damaged in the middle (opening it would drop every record after the
  // damage, intact ones too), rename its directory to
  // <stream>.damaged-<UTC time YYYYmmddTHHMMSSZ>[-N] beside it (nothing is
  // deleted; readers still read it, see StreamOrigin) and start a fresh
  // stream numbered above the damaged one's high-water mark. TakeWarnings()
  // says so. The application's and the watchdog's streams do this.
  bool set_aside_damaged = false;
  // Writers only. Bytes of a ring of buffered events (<stream>/RING, mapped
  // MAP_SHARED; see journal/src/journal_ring.cpp); 0 = off: every append is
  // a RocksDB write. A power of two, two slots at least. With it, an event that
  // fits a slot is copied into the ring and a buffered append returns at
  // once, with the same promise (it survives kill -9 of the process, not a
  // power loss: the next Open ingests the ring); a drain thread writes the
  // ring to RocksDB in batches. A buffered append that finds the ring full
  // is refused (dropped_appends()). Whatever the option, Open first ingests
  // the RING an earlier writer left behind.
  size_t ring_bytes = 0;
  // Bytes per slot of the ring, a power of two from 64 to 65536, 32 of them
  // the record's header. An event longer than the rest, and AppendAll, wait
  // for the drain to write them (in memory until then).
  size_t ring_slot_bytes = 256;
  // Ring mode only: lanes of buffered events (journal/src/lanes.h), 0 = none.
  // With N lanes, a buffered append that fits a slot goes into one of N
  // rings of ring_bytes / N (rounded down to a power of two) each, one per
  // thread, with no counter shared between threads, and gets its sequence
  // number when the drain moves it (in the order the appends happened):
  // Append returns 0 for it, and last_seq() counts it only once moved. The
  // promise is the same. Durable appends, groups and events too large for
  // a slot wait for the lanes' earlier events first and keep their seqs.
  size_t ring_lanes = 0;
};

// Deletion policy for Journal::Compact. Only events already covered by the
// newest snapshot are ever deleted. With both set, an event is kept if either
// rule keeps it.
struct Retention {
  std::optional<uint64_t> keep_events;  // keep at least the last N events
  std::optional<int64_t> keep_ns;       // keep events newer than now - keep_ns
};

struct CompactionStats {
  uint64_t events_before = 0;
  uint64_t events_after = 0;
  uint64_t bytes_before = 0;  // size of the stream's directory
  uint64_t bytes_after = 0;
  uint64_t deleted_through = 0;  // highest seq deleted, 0 when none
};

struct Snapshot {
  uint64_t seq = 0;  // every event of this stream with seq <= this is covered
  std::string bytes;
};

// One event as read back, already verified.
struct Record {
  std::string_view stream;
  uint64_t seq = 0;
  std::string_view bytes;  // valid until the cursor moves
  const fb::Event* event = nullptr;
};

// A record that failed its checks; it is skipped, never dereferenced. Also
// what a reader could not read at all: a damaged block or table file, records
// dropped from a damaged write-ahead log, a gap in the numbering, a stream
// that cannot be opened (seq 0).
struct BadRecord {
  std::string stream;
  uint64_t seq = 0;  // the first seq concerned; 0 when unknown
  std::string reason;
  // The records it makes unreadable, as far as the numbering tells (a damaged
  // block counts the seqs it covered); 0 when unknown (a stream that cannot
  // be opened, a problem that hides no record).
  uint64_t records = 1;
};

using BadRecordFn = std::function<void(const BadRecord&)>;
// Return false to stop the scan.
using RecordFn = std::function<bool(const Record&)>;

struct ScanOptions {
  uint64_t from_seq = 0;   // first seq to visit (inclusive)
  uint64_t until_seq = 0;  // last seq to visit (inclusive); 0 = no limit
  int64_t since_ns = 0;    // skip events with time_ns < since_ns; 0 = no limit
  int64_t until_ns = 0;    // skip events with time_ns > until_ns; 0 = no limit
  BadRecordFn on_bad;      // called for each damaged record; may be empty
};

// The names of the streams under `root` (sorted), or an error if `root`
// cannot be listed. Damaged streams set aside by a writer
// (<stream>.damaged-<time>) are streams too, read-only.
Result<std::vector<std::string>> ListStreams(std::string_view root);

// The stream whose events a stream directory holds: "app" for
// "app.damaged-20261202T190000Z" (set aside, see set_aside_damaged), the
// name itself otherwise. The fold and verify treat both alike.
std::string_view StreamOrigin(std::string_view stream);

// Checks that `root` (a journal root or one of its stream directories) is a
// directory, not a symbolic link, and not writable by group or others; for
// kWrite also that the running user owns it.
enum class JournalAccess { kRead, kWrite };
Status CheckRootPermissions(std::string_view root, JournalAccess access = JournalAccess::kRead);

// Total size in bytes of the files below `dir`.
uint64_t DirectorySize(std::string_view dir);

// The writer of one stream. Thread-safe.
class Journal {
 public:
  // Opens (creating when allowed) <root>/<stream>. Fails with kBusy when
  // another process has the stream open for writing. When the database
  // cannot be opened for lack of space (kNoSpace), the journal is returned
  // closed: every call fails (appends are counted in failed_appends()) until
  // one finds space again and opens it; last_seq() is 0 until then.
  static Result<std::unique_ptr<Journal>> Open(std::string_view root, std::string_view stream,
                                               const JournalOptions& options = {});
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends one encoded Event. Returns its sequence number once the write has
  // the requested durability (0 for a buffered append that went into a lane:
  // ring_lanes). REQUIRES: `event` is a finished Event buffer.
  // On failure (disk full, I/O error) the append is counted in
  // failed_appends() and no acknowledged event is touched; the next call
  // retries (after closing and reopening the database, see journal.cpp). An
  // append reported as failed may still reach the journal, under a sequence
  // number that is then never given to another event.
  Result<uint64_t> Append(std::span<const uint8_t> event, Durability durability);
  // Convenience: encodes with EncodeEvent (stream set to this journal's).
  Result<uint64_t> Append(fb::EventT event, Durability durability);
  // Appends several encoded Events in one write, under consecutive sequence
  // numbers; returns the first. They reach the journal together or not at
  // all (one WriteBatch, one record of the write-ahead log), and cost one
  // write (and one fsync when durable) however many they are. Failure as
  // for Append, each event counted in failed_appends(). REQUIRES: `events`
  // is not empty, each a finished Event buffer.
  Result<uint64_t> AppendAll(std::span<const std::span<const uint8_t>> events,
                             Durability durability);

  // The highest sequence number appended (0 for an empty stream). In ring
  // mode: the highest handed out, maybe not yet in RocksDB; Scan, Sync,
  // PutSnapshot and Compact wait for the drain first.
  uint64_t last_seq() const;
  // The lowest sequence number present (last_seq() + 1 when empty).
  uint64_t first_seq() const;

  // Stores a snapshot covering every event of this stream up to `seq`.
  // Durable. REQUIRES: seq <= last_seq().
  Status PutSnapshot(uint64_t seq, std::span<const uint8_t> bytes);
  // The snapshot with the highest seq, or nullopt when none was stored.
  Result<std::optional<Snapshot>> LatestSnapshot() const;

  // Scans this stream's events in seq order (the writer's own view).
  Status Scan(const ScanOptions& options, const RecordFn& fn) const;

  // Deletes the events that `retention` lets go and that the newest snapshot
  // covers, then compacts so that the space is returned to the filesystem.
  Result<CompactionStats> Compact(const Retention& retention);

  // fsyncs everything appended so far (buffered appends included).
  Status Sync();

  const std::string& stream() const;
  const std::string& path() const;
  // Appends that failed so far.
  uint64_t failed_appends() const;
  // Of them, buffered appends refused because the ring was full (ring mode;
  // 0 otherwise). The drain journals each such loss as a LogLine event
  // (source "blackbox.journal") once the ring has room again.
  uint64_t dropped_appends() const;
  // What opening the stream found damaged and did about it, one sentence
  // each, since the last call (e.g. a write-ahead log damaged in the middle:
  // RocksDB kept the events before the damage, and numbering continues above
  // every seq ever given out, so none is reused). Empty when nothing was.
  std::vector<std::string> TakeWarnings();
  // Writes issued to RocksDB so far (one per group commit); appends per batch
  // is the number of appends divided by this.
  uint64_t batches_written() const;

  class Impl;

 private:
  explicit Journal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Records dropped when a stream was opened, because its write-ahead log is
// damaged (Reader::CheckLogs).
struct LogDamage {
  std::string file;     // the damaged log
  uint64_t offset = 0;  // the byte of it where the damage starts
  // The seqs missing from the stream as read: from the one after the last
  // seq a reader sees to the last seq the log holds intact after the damage.
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t dropped = 0;  // records missing (the ones in the damaged bytes too)
  uint64_t intact = 0;   // of them, still intact in the log after the damage
};

// "write-ahead log F damaged at byte N: D record(s) dropped at open (…)".
BadRecord DescribeLogDamage(std::string_view stream, const LogDamage& damage);

// A read-only view of one stream: never takes the writer's lock, never writes.
// Sees what was committed when it was opened (or last refreshed), and after
// it the events of a ring-mode writer's ring (<stream>/RING) that its drain
// has not written to the database yet, or that a writer killed left there
// for the next open to ingest: the ones that continue the database's seqs
// without a gap, each verified (see journal/src/reader.cpp). Scan, last_seq,
// Verify and MergedReader see both as one stream.
// Thread safety: the const methods may run on several threads at once (they
// only read RocksDB and the ring as last read); Refresh() and RefreshRing()
// may not run beside any other call.
// Damage found while reading is reported only through `on_bad` (Scan's
// ScanOptions, Verify's argument): Scan's Status fails only when the stream
// cannot be read at all.
class Reader {
 public:
  static Result<std::unique_ptr<Reader>> Open(std::string_view root, std::string_view stream,
                                              const JournalOptions& options = {});
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reopens to see what the writer has committed since.
  Status Refresh();
  // Reads the ring again for events after last_seq(), without reopening the
  // database: a few reads, cheap enough to poll every few milliseconds.
  // Returns false when the ring shows that this view is behind the
  // database (the drain has moved newer events out of the ring) or the ring
  // went away: Refresh() then. True says nothing of a stream without a ring.
  bool RefreshRing();
  // Whether <stream>/RING existed at the last Open, Refresh or RefreshRing.
  bool has_ring() const;

  Status Scan(const ScanOptions& options, const RecordFn& fn) const;
  uint64_t last_seq() const;
  uint64_t first_seq() const;
  Result<std::optional<Snapshot>> LatestSnapshot() const;
  // All snapshots, oldest first.
  Result<std::vector<Snapshot>> Snapshots() const;
  // Checks every record: RocksDB block checksums, the FlatBuffers verifier,
  // seq continuity (no gaps), that each event names this stream, and the
  // write-ahead logs (CheckLogs). Calls `on_bad` for each problem; returns
  // the number of records read (intact or damaged).
  Result<uint64_t> Verify(const BadRecordFn& on_bad) const;

  // Reads the stream's write-ahead logs on their own and compares them with
  // what this reader sees. When RocksDB opens a stream whose log has a
  // damaged record, it replays the log up to that record and drops every
  // record after it, silently (kPointInTimeRecovery, which a torn last record
  // after a crash needs). Returns nullopt when no intact record of a log is
  // missing from this view (a torn last record is not damage).
  Result<std::optional<LogDamage>> CheckLogs() const;

  const std::string& stream() const;
  const std::string& path() const;

  class Impl;

 private:
  friend class MergedReader;
  explicit Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Walks all streams of a root in (time_ns, stream, seq) order.
// Thread safety: none; one thread at a time (Scan remembers which damage it
// has reported). Damage is reported only through Options::on_bad, as by
// Reader::Scan.
class MergedReader {
 public:
  // Opens every stream under `root` (or only `streams`, when non-empty). A
  // stream that cannot be opened (its CURRENT or MANIFEST damaged, no
  // permission, refused by CheckRootPermissions) is left out and listed in
  // unreadable(), so that the others can still be read; fails only when the
  // root cannot be read or when not one of several streams opens (then with
  // the first stream's reason).
  static Result<std::unique_ptr<MergedReader>> Open(std::string_view root,
                                                    const std::vector<std::string>& streams = {},
                                                    const JournalOptions& options = {});
  ~MergedReader();

  struct Options {
    int64_t since_ns = 0;  // 0 = from the beginning
    int64_t until_ns = 0;  // 0 = to the end
    // Per-stream lower bounds: only events with seq > after[stream] are visited.
    std::vector<std::pair<std::string, uint64_t>> after;
    BadRecordFn on_bad;
  };
  // With `on_bad` set, the first scan of each stream also reports the
  // records its write-ahead log lost at open (Reader::CheckLogs).
  Status Scan(const Options& options, const RecordFn& fn) const;
  // Reopens every stream (and picks up new ones) to see newer events.
  Status Refresh();
  // Brings the streams that have a ring up to date, cheaply enough to poll
  // every few milliseconds: re-reads each one's ring (Reader::RefreshRing)
  // and reopens only a stream whose ring says its database has moved on
  // (when that fails, everything is reopened, as by Refresh). Streams
  // without a ring, and new streams, wait for Refresh().
  Status RefreshRings();
  // Whether one of the streams has a ring (Reader::has_ring).
  bool has_rings() const;

  const std::vector<std::unique_ptr<Reader>>& readers() const { return readers_; }
  // The streams left out at the last Open or Refresh, each with its reason.
  // With `on_bad` set, Scan reports each of them once (seq 0, 0 records).
  const std::vector<std::pair<std::string, Status>>& unreadable() const { return unreadable_; }

 private:
  MergedReader(std::string root, std::vector<std::string> only, JournalOptions options);
  std::string root_;
  std::vector<std::string> only_;
  JournalOptions options_;
  std::vector<std::unique_ptr<Reader>> readers_;
  std::vector<std::pair<std::string, Status>> unreadable_;
  mutable std::vector<std::string> unreadable_told_;
  // Streams whose logs were checked already (reported once, not per
  // refresh), each with the seqs the report covered (none: first > last),
  // which their gaps then do not count again.
  struct LogCheck {
    std::string stream;
    uint64_t first_seq = 1;
    uint64_t last_seq = 0;
  };
  mutable std::vector<LogCheck> logs_checked_;
};

}  // namespace blackbox
