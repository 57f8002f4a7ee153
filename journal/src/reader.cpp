// Read-only access to one stream. RocksDB's read-only mode takes no lock and
// writes nothing, so it never blocks or disturbs the live writer; it sees what
// was committed (WAL included) when it was opened.
//
// The ring. A writer in ring mode (JournalOptions::ring_bytes) has its
// newest buffered events in <stream>/RING until its drain writes them to
// the database, and after it died until the next writer's open ingests
// them. A reader reads the ring too (ScanRing: pread only, never a mapping)
// and shows, after the database's records, the ones that continue them
// without a gap: from the database's last seq + 1, consecutive, each
// verified like a database record and naming this stream, up to the first
// seq that is not such a record. That prefix is what the drain (or the next
// writer's ingest) writes under the same seqs: a seq after it may be a
// live writer's append in flight, a torn slot or a hole that the next
// writer fills with a placeholder, or a marker whose event is still in the
// writer's memory (kSpilledFlag), so nothing past it is shown, and nothing
// is reported: none of it is damage. A ring whose records start past the
// database's last seq + 1 means the drain wrote (and released) records
// after the database was opened: the database is opened once more, and if
// the ring has moved on again the ring is left out of this view rather
// than show a gap that is not one. A ring that cannot be read (not a ring,
// truncated, another user's) is left out the same way.
#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/env.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <map>
#include <thread>
#include <tuple>

#include "cursor.h"
#include "internal.h"
#include "journal_impl.h"
#include "lanes.h"
#include "reader_impl.h"
#include "wal_scan.h"

namespace blackbox {

namespace {

// A reader must not write RocksDB's info LOG: opening would rotate the live
// writer's LOG file. Readers log nothing.
class SilentLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

}  // namespace

namespace {

// The MANIFEST the stream's CURRENT names, and its size. A writer's flush
// appends its edit to the MANIFEST before it deletes the log whose records
// it flushed: a read-only open that read the MANIFEST before such a flush
// and listed the logs after it holds neither the new table nor the old log,
// and misses a memtable's worth of records without an error. The mark
// changes across such an open.
std::string ManifestMark(const std::string& path) {
  std::string current;
  const int fd = ::open((path + "/CURRENT").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return {};
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return {};
  current.assign(buf, static_cast<size_t>(n));
  while (!current.empty() && (current.back() == '\n' || current.back() == '\r')) {
    current.pop_back();
  }
  struct stat st {};
  if (current.find('/') != std::string::npos || ::stat((path + "/" + current).c_str(), &st) != 0) {
    return current;
  }
  return fmt::format("{}:{}", current, st.st_size);
}

// Whether no process holds the stream's database open for writing: its
// LOCK file carries no lock. RocksDB locks it with a classic fcntl lock; the
// query is an open-file-description one, which a classic lock conflicts
// with even when this very process holds it (a reader beside its own
// writer). Unknown (an error) counts as held.
bool WriterGone(const std::string& path) {
  const int fd = ::open((path + "/LOCK").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno == ENOENT;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  const bool gone = ::fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_UNLCK;
  ::close(fd);
  return gone;
}

}  // namespace

Status Reader::Impl::OpenReadOnly() {
  rocksdb::DBOptions db_options = internal::MakeDBOptions(options);
  db_options.create_if_missing = false;
  db_options.info_log = std::make_shared<SilentLogger>();
  // A damaged or truncated table file must not keep the rest of the stream
  // from being read: open without checking the files, and let the cursor
  // skip (and report) what turns out to be unreadable.
  db_options.paranoid_checks = false;
  db_options.skip_checking_sst_file_sizes_on_db_open = true;
  rocksdb::ColumnFamilyOptions cf_options = internal::MakeColumnFamilyOptions(options);

  // The writer may be switching WAL or SST files while we open; such a race
  // shows up as a missing file, and a second try sees the new set.
  // A flush during the open (ManifestMark) is a race of the same kind, but a
  // silent one: it is checked for too.
  rocksdb::Status rs;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string mark = ManifestMark(path);
    std::vector<std::string> names;
    rs = rocksdb::DB::ListColumnFamilies(db_options, path, &names);
    if (!rs.ok()) {
      if (rs.IsIOError() || rs.IsPathNotFound()) {
        return Status::NotFound(fmt::format("no journal stream at {}: {}", path, rs.ToString()));
      }
      return internal::FromRocks(rs, fmt::format("open {}", path));
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, cf_options}};
    bool has_snapshots = false;
    for (const auto& n : names) {
      if (n == internal::kSnapshotsColumnFamily) {
        has_snapshots = true;
        cfs.emplace_back(n, cf_options);
      }
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    rs = rocksdb::DB::OpenForReadOnly(db_options, path, cfs, &handles, &raw,
                                      /*error_if_wal_file_exists=*/false);
    if (rs.ok()) {
      db.reset(raw);
      events_cf = db->DefaultColumnFamily();
      db->DestroyColumnFamilyHandle(handles[0]);
      snapshots_cf = has_snapshots ? handles[1] : nullptr;
      if (attempt + 1 == 5 || ManifestMark(path) == mark) return Status::Ok();
      Close();
      continue;
    }
    if (!rs.IsIOError() && !rs.IsPathNotFound() && !rs.IsNotFound()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10 << attempt));
  }
  return internal::FromRocks(rs, fmt::format("open {} read-only", path));
}

void Reader::Impl::Close() {
  internal::CloseJournalDb(db, events_cf, snapshots_cf);
  ring.clear();
  db_last.reset();
}

uint64_t Reader::Impl::DbLastSeq() const {
  if (!db_last) {
    uint64_t first = 0, last = 0;
    internal::SeqBounds(db.get(), events_cf, &first, &last);
    db_last = last;
  }
  return *db_last;
}

Reader::Impl::RingFit Reader::Impl::ReadRing(uint64_t after) {
  // Drained records too: the drain moves records on to the database every
  // few milliseconds, and a reopen of the database costs milliseconds of CPU;
  // a record still in its slot needs none.
  auto scan = internal::ScanRing(path + "/" + internal::kRingFile, after, /*drained_too=*/true);
  has_ring = scan.ok() || scan.status().code() != Status::Code::kNotFound;
  if (!scan.ok()) return RingFit::kNone;
  uint64_t next = after + 1;
  if (scan->available_from > next || (!scan->records.empty() && scan->records.front().seq > next)) {
    return RingFit::kBehind;
  }
  // A writer with lanes moves their records into RING as LaneRefs: read
  // the lanes (after RING, so that a ref read there finds its record, unless
  // the drain released and reused its slot meanwhile: then it is in the
  // database, and a reopen shows it).
  internal::LaneScans lanes;
  std::vector<size_t> lane_ids;
  const std::vector<std::string> lane_files = internal::ListLaneFiles(path, &lane_ids);
  for (size_t k = 0; k < lane_files.size(); ++k) {
    auto ls = internal::ScanRing(lane_files[k], 0, /*drained_too=*/true);
    if (ls.ok()) lanes.emplace(static_cast<uint32_t>(lane_ids[k]), std::move(*ls));
  }
  auto fits = [&](const std::string& payload) {
    // Heap-allocated (or in-object) copies are aligned as VerifyEvent requires.
    const fb::Event* e = VerifyEvent(Bytes(payload));
    return e != nullptr && e->stream() != nullptr &&
           e->stream()->string_view() == StreamOrigin(stream);
  };
  bool whole = true;  // every record of RING after `after` is shown
  for (auto& r : scan->records) {
    whole = false;
    if (r.seq == next && (r.flags & kLaneFlag) != 0 && r.seq <= scan->complete_through) {
      const LaneRef ref = LaneRefOf(Bytes(r.payload));
      internal::RingRecord* event = internal::FindLaneRecord(lanes, ref.lane, ref.position);
      if (event == nullptr) {
        // Drained already (its lane slot reused): the database has it.
        if (r.seq < scan->head) return RingFit::kBehind;
        break;
      }
      r.payload = event->payload.substr(sizeof(uint64_t));
      r.flags &= ~kLaneFlag;
    }
    // A drained marker's event is in the database already: reopen for it.
    if (r.seq == next && (r.flags & kSpilledFlag) != 0 && r.seq < scan->head) {
      return RingFit::kBehind;
    }
    if (r.seq != next || r.seq > scan->complete_through || (r.flags & kSpilledFlag) != 0) break;
    if (!fits(r.payload)) break;
    ring.push_back(std::move(r));
    ++next;
    whole = true;
  }
  // A writer that died with events in its lanes not yet moved into RING:
  // the next writer's open numbers them after RING's last, in the order of
  // their appends (IngestLeftRing), and so does this view. Only when it is
  // gone: a live writer's lanes hold appends in flight and events it has
  // not moved yet, and it numbers them itself.
  if (whole && !lanes.empty() && WriterGone(path)) {
    auto all = internal::ScanRing(path + "/" + internal::kRingFile, 0);
    if (!all.ok()) return RingFit::kFits;
    uint64_t unstamped = 0;
    for (const internal::LaneLeftover& l :
         internal::LaneLeftovers(all->records, lanes, &unstamped)) {
      internal::RingRecord rec;
      rec.seq = next;
      rec.payload = l.record->payload.substr(sizeof(uint64_t));
      if (!fits(rec.payload)) break;
      ring.push_back(std::move(rec));
      ++next;
    }
  }
  return RingFit::kFits;
}

Status Reader::Impl::Open() {
  for (int attempt = 0;; ++attempt) {
    if (Status s = OpenReadOnly(); !s.ok()) return s;
    // Most streams have no ring: skip the database's bounds then.
    struct stat st {};
    if (::lstat((path + "/" + internal::kRingFile).c_str(), &st) != 0 && errno == ENOENT) {
      has_ring = false;
      return Status::Ok();
    }
    if (ReadRing(DbLastSeq()) != RingFit::kBehind || attempt == 1) return Status::Ok();
    Close();
  }
}

Reader::Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::~Reader() = default;

Result<std::unique_ptr<Reader>> Reader::Open(std::string_view root, std::string_view stream,
                                             const JournalOptions& options) {
  auto impl = std::make_unique<Impl>();
  if (options.check_permissions) {
    if (Status s = CheckRootPermissions(root); !s.ok()) return s;
    if (Status s = CheckRootPermissions(internal::StreamPath(root, stream)); !s.ok()) return s;
  }
  impl->root = std::string(root);
  impl->stream = std::string(stream);
  impl->path = internal::StreamPath(root, stream);
  impl->options = options;
  if (Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<Reader>(new Reader(std::move(impl)));
}

Status Reader::Refresh() {
  impl_->Close();
  return impl_->Open();
}

bool Reader::RefreshRing() {
  const bool had_ring = impl_->has_ring;
  if (impl_->ReadRing(last_seq()) == Impl::RingFit::kBehind) return false;
  // A ring that went away: its writer closed, maybe after draining it.
  return impl_->has_ring || !had_ring;
}

bool Reader::has_ring() const { return impl_->has_ring; }

Status Reader::Scan(const ScanOptions& options, const RecordFn& fn) const {
  for (internal::Cursor c(impl_->db.get(), impl_->events_cf, impl_->stream, options, {},
                          impl_->ring, options.from_seq > impl_->DbLastSeq());
       c.Valid(); c.Next()) {
    if (!fn(c.record())) break;
  }
  return Status::Ok();
}

uint64_t Reader::last_seq() const {
  return impl_->ring.empty() ? impl_->DbLastSeq() : impl_->ring.back().seq;
}

uint64_t Reader::first_seq() const {
  uint64_t first = 0, last = 0;
  internal::SeqBounds(impl_->db.get(), impl_->events_cf, &first, &last);
  if (last == 0) return impl_->ring.empty() ? 1 : impl_->ring.front().seq;
  return first;
}

Result<std::optional<Snapshot>> Reader::LatestSnapshot() const {
  return internal::LatestSnapshotOf(impl_->db.get(), impl_->snapshots_cf);
}

Result<std::vector<Snapshot>> Reader::Snapshots() const {
  std::vector<Snapshot> out;
  if (impl_->snapshots_cf == nullptr) return out;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->snapshots_cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    uint64_t seq = 0;
    if (internal::DecodeKey({it->key().data(), it->key().size()}, &seq)) {
      out.push_back(Snapshot{seq, it->value().ToString()});
    }
  }
  if (!it->status().ok()) return internal::FromRocks(it->status(), "reading snapshots");
  return out;
}

Result<uint64_t> Reader::Verify(const BadRecordFn& on_bad) const {
  // 1. Every block of every file against its checksum.
  rocksdb::Status rs = impl_->db->VerifyChecksum();
  // (The records it hides are counted by the scan below.)
  if (!rs.ok()) {
    on_bad(BadRecord{impl_->stream, 0, fmt::format("checksum: {}", rs.ToString()), 0});
  }

  // 2. Records dropped at open from a damaged write-ahead log.
  std::vector<internal::SeqRange> reported;
  auto logs = CheckLogs();
  if (!logs.ok()) {
    on_bad(BadRecord{impl_->stream, 0, logs.status().ToString(), 0});
  } else if (logs.value()) {
    on_bad(DescribeLogDamage(impl_->stream, *logs.value()));
    reported.push_back({logs.value()->first_seq, logs.value()->last_seq});
  }

  // 3. Every record: readable, verified, of this stream; the cursor reports
  // the damaged ones and the gaps in the numbering (less what step 2 told).
  uint64_t checked = 0;  // records read, intact or not (a gap holds none)
  ScanOptions so;
  so.on_bad = [&](const BadRecord& bad) {
    if (!bad.reason.starts_with(internal::kGapReason)) ++checked;
    on_bad(bad);
  };
  for (internal::Cursor c(impl_->db.get(), impl_->events_cf, impl_->stream, so, std::move(reported),
                          impl_->ring);
       c.Valid(); c.Next()) {
    const Record& r = c.record();
    ++checked;
    const auto* s = r.event->stream();
    if (s == nullptr || s->string_view() != StreamOrigin(impl_->stream)) {
      on_bad(BadRecord{impl_->stream, r.seq,
                       fmt::format("event names stream '{}'", s ? s->string_view() : ""), 0});
    }
  }
  return checked;
}

Result<std::optional<LogDamage>> Reader::CheckLogs() const {
  internal::WalScan scan = internal::ScanWals(impl_->path);
  // The seqs the logs hold intact after a damage that this view lacks.
  std::vector<std::pair<uint64_t, size_t>> missing;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::string value;
  for (const auto& [seq, damage] : scan.seqs_after) {
    rocksdb::Status rs =
        impl_->db->Get(ro, impl_->events_cf, internal::KeySlice(internal::EncodeKey(seq)), &value);
    // Anything but "not found" (a damaged table file) is the cursor's to report.
    if (rs.IsNotFound()) missing.emplace_back(seq, damage);
  }
  if (missing.empty()) return std::optional<LogDamage>();
  LogDamage d;
  const internal::WalScan::Damage& where = scan.damages[missing.front().second];
  d.file = where.file;
  d.offset = where.offset;
  d.intact = missing.size();
  d.last_seq = missing.back().first;
  // The database's view: the ring's records continue it and are no log's.
  const uint64_t seen_last = impl_->DbLastSeq();
  if (missing.front().first > seen_last) {
    // Point-in-time recovery keeps a prefix: everything after what is seen,
    // up to the last intact record, is gone from the view.
    d.first_seq = seen_last + 1;
    d.dropped = d.last_seq - seen_last;
  } else {
    // Some records past the damage are seen (RocksDB resumed reading after
    // it). Missing are the records in the damaged bytes too: from the one
    // after the last seq seen before the first intact one missing.
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events_cf));
    it->SeekForPrev(internal::KeySlice(internal::EncodeKey(missing.front().first)));
    uint64_t before = 0;
    if (it->Valid() && internal::DecodeKey(it->key().ToStringView(), &before)) {
      d.first_seq = before + 1;
    } else {
      d.first_seq = missing.front().first;
    }
    uint64_t seen = 0;  // seqs of first_seq..last_seq the view holds
    for (it->Seek(internal::KeySlice(internal::EncodeKey(d.first_seq))); it->Valid(); it->Next()) {
      uint64_t seq = 0;
      if (!internal::DecodeKey(it->key().ToStringView(), &seq) || seq > d.last_seq) break;
      ++seen;
    }
    d.dropped = d.last_seq - d.first_seq + 1 - seen;
  }
  return std::optional<LogDamage>(std::move(d));
}

BadRecord DescribeLogDamage(std::string_view stream, const LogDamage& d) {
  return BadRecord{
      std::string(stream), d.first_seq,
      fmt::format("write-ahead log {} damaged at byte {}: {} record(s) dropped at open (seqs "
                  "{}..{}; {} of them intact in the log after the damage)",
                  d.file, d.offset, d.dropped, d.first_seq, d.last_seq, d.intact),
      d.dropped};
}

const std::string& Reader::stream() const { return impl_->stream; }
const std::string& Reader::path() const { return impl_->path; }

}  // namespace blackbox
