#include "cursor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "internal.h"

namespace blackbox::internal {

Cursor::Cursor(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string stream,
               ScanOptions options, std::vector<SeqRange> reported,
               std::span<const RingRecord> ring, bool ring_only)
    : db_(db),
      cf_(cf),
      stream_(std::move(stream)),
      options_(std::move(options)),
      reported_(std::move(reported)),
      ring_(ring) {
  if (ring_only) {
    in_ring_ = true;
    SettleRing();
    return;
  }
  // A mark that cannot be read only makes a jump's gap read as lost records.
  if (auto mark = ReadHighWater(db_->GetName()); mark.ok()) unused_ = std::move(mark->unused);
  read_options_.verify_checksums = true;
  // A full scan must not evict what the writer keeps hot.
  read_options_.fill_cache = false;
  it_.reset(db_->NewIterator(read_options_, cf_));
  it_->Seek(KeySlice(EncodeKey(options_.from_seq)));
  Settle();
}

void Cursor::Next() {
  if (!valid_) return;
  if (in_ring_) {
    ++ring_pos_;
    SettleRing();
    return;
  }
  RawNext();
  Settle();
}

void Cursor::Report(uint64_t first, uint64_t last, std::string reason) {
  accounted_ = std::max(accounted_, last);
  if (options_.on_bad) {
    options_.on_bad(
        BadRecord{stream_, first, std::move(reason), last >= first ? last - first + 1 : 1});
  }
}

namespace {

// How many seqs of first..last lie in `ranges`; appends those pieces to `in`.
uint64_t Overlap(uint64_t first, uint64_t last, const std::vector<SeqRange>& ranges,
                 std::vector<SeqRange>* in) {
  uint64_t n = 0;
  for (const SeqRange& r : ranges) {
    const uint64_t a = std::max(first, r.first);
    const uint64_t b = std::min(last, r.last);
    if (a > b) continue;
    n += b - a + 1;
    if (in) in->push_back({a, b});
  }
  return n;
}

}  // namespace

void Cursor::Account(uint64_t seq) {
  // Writers number without gaps and never reuse a number, so a gap is
  // records lost (typically to a damaged write-ahead log that a writer
  // reopened afterwards: RocksDB kept the part before the damage), less the
  // numbers that reopen skipped without giving them out, and less what the
  // caller has reported already.
  if (accounted_ != 0 && seq > accounted_ + 1) {
    const uint64_t first = accounted_ + 1;
    const uint64_t last = seq - 1;
    std::vector<SeqRange> skipped;
    const uint64_t never = Overlap(first, last, unused_, &skipped);
    const uint64_t told = Overlap(first, last, reported_, nullptr);
    const uint64_t size = last - first + 1;
    const uint64_t lost = size > never + told ? size - never - told : 0;
    if (lost > 0) {
      std::string why =
          fmt::format("{}: seqs {}..{} are missing ({} record(s)", kGapReason, first, last, lost);
      for (const SeqRange& r : skipped) {
        why += fmt::format("; {}..{} were reserved and never given out", r.first, r.last);
      }
      if (told > 0) why += fmt::format("; {} reported above", told);
      why += ")";
      accounted_ = std::max(accounted_, last);
      if (options_.on_bad) options_.on_bad(BadRecord{stream_, first, std::move(why), lost});
    }
  }
  accounted_ = std::max(accounted_, seq);
}

void Cursor::StartSalvage() {
  salvage_ = true;
  const uint64_t from = std::max(options_.from_seq, last_seq_seen_ + 1);
  if (last_seq_seen_ != 0) {
    auto k = EncodeKey(last_seq_seen_);
    last_key_.assign(k.data(), k.size());
  }
  std::vector<rocksdb::LiveFileMetaData> files;
  db_->GetLiveFilesMetaData(&files);
  rocksdb::Options options(db_->GetDBOptions(), db_->GetOptions(cf_));
  for (const auto& f : files) {
    if (f.column_family_name != cf_->GetName()) continue;
    Source s;
    s.name = f.db_path + "/" + f.relative_filename;
    uint64_t smallest = 0;
    DecodeKey(f.smallestkey, &smallest);
    DecodeKey(f.largestkey, &s.largest);
    if (s.largest < from) continue;
    s.reader = std::make_unique<rocksdb::SstFileReader>(options);
    if (rocksdb::Status rs = s.reader->Open(s.name); !rs.ok()) {
      Report(smallest, s.largest,
             fmt::format("{}: seqs {}..{} unreadable: {}", s.name, smallest, s.largest,
                         rs.ToString()));
      continue;
    }
    s.last_good = from - 1;
    s.it.reset(s.reader->NewIterator(read_options_));
    s.it->Seek(KeySlice(EncodeKey(from)));
    sources_.push_back(std::move(s));
  }
  // What the WAL held and no table file has yet.
  Source mem;
  mem.name = "memtable";
  mem.last_good = from - 1;
  rocksdb::ReadOptions ro = read_options_;
  ro.read_tier = rocksdb::kMemtableTier;
  mem.it.reset(db_->NewIterator(ro, cf_));
  mem.it->Seek(KeySlice(EncodeKey(from)));
  sources_.push_back(std::move(mem));
  for (auto& s : sources_) SettleSource(s);
}

void Cursor::SettleSource(Source& s) {
  while (s.it != nullptr) {
    if (s.it->Valid()) {
      DecodeKey({s.it->key().data(), s.it->key().size()}, &s.last_good);
      return;
    }
    if (s.it->status().ok() || s.reader == nullptr) {
      s.it.reset();  // exhausted (or the memtable failed: nothing to probe)
      return;
    }
    // A damaged block: probe forward within this file with growing steps.
    std::string why = s.it->status().ToString();
    const uint64_t next = s.last_good + 1;
    uint64_t lost_until = s.largest;
    bool resumed = false;
    for (uint64_t step = 1; next + step <= s.largest; step *= 2) {
      s.it.reset(s.reader->NewIterator(read_options_));
      s.it->Seek(KeySlice(EncodeKey(next + step)));
      uint64_t seq = 0;
      if (s.it->Valid() && DecodeKey({s.it->key().data(), s.it->key().size()}, &seq)) {
        lost_until = seq - 1;
        resumed = true;
        break;
      }
    }
    Report(next, lost_until,
           fmt::format("{}: a damaged block, its seqs in {}..{} lost: {}", s.name, next, lost_until,
                       why));
    if (!resumed) s.it.reset();
  }
}

Cursor::Source* Cursor::PickSource() {
  Source* best = nullptr;
  for (auto& s : sources_) {
    // Table files overlap the memtable and each other only by keys already
    // returned (a flush or compaction in progress); each seq is returned once.
    while (s.it != nullptr && !last_key_.empty() &&
           s.it->key().compare(rocksdb::Slice(last_key_)) <= 0) {
      s.it->Next();
      SettleSource(s);
    }
    if (s.it == nullptr) continue;
    if (best == nullptr || s.it->key().compare(best->it->key()) < 0) best = &s;
  }
  return best;
}

bool Cursor::RawValid() {
  if (!salvage_) return it_->Valid();
  current_ = PickSource();
  return current_ != nullptr;
}

rocksdb::Slice Cursor::RawKey() const { return salvage_ ? current_->it->key() : it_->key(); }

rocksdb::Slice Cursor::RawValue() const { return salvage_ ? current_->it->value() : it_->value(); }

void Cursor::RawNext() {
  if (!salvage_) {
    it_->Next();
    return;
  }
  last_key_ = current_->it->key().ToString();
  current_->it->Next();
  SettleSource(*current_);
}

void Cursor::Settle() {
  valid_ = false;
  while (true) {
    if (!RawValid()) {
      if (salvage_ || it_->status().ok()) {
        in_ring_ = true;
        SettleRing();
        return;
      }
      StartSalvage();
      continue;
    }
    uint64_t seq = 0;
    rocksdb::Slice key = RawKey();
    if (!DecodeKey({key.data(), key.size()}, &seq)) {
      Report(last_seq_seen_, last_seq_seen_, fmt::format("malformed key of {} bytes", key.size()));
      RawNext();
      continue;
    }
    last_seq_seen_ = seq;
    if (options_.until_seq != 0 && seq > options_.until_seq) return;
    Account(seq);
    rocksdb::Slice value = RawValue();
    if (reinterpret_cast<uintptr_t>(value.data()) % alignof(uint64_t) != 0) {
      aligned_.resize((value.size() + sizeof(uint64_t) - 1) / sizeof(uint64_t));
      std::memcpy(aligned_.data(), value.data(), value.size());
      value = rocksdb::Slice(reinterpret_cast<const char*>(aligned_.data()), value.size());
    }
    std::string why;
    const fb::Event* event =
        VerifyEvent({reinterpret_cast<const uint8_t*>(value.data()), value.size()}, &why);
    if (event == nullptr) {
      Report(seq, seq, std::move(why));
      RawNext();
      continue;
    }
    if ((options_.since_ns != 0 && event->time_ns() < options_.since_ns) ||
        (options_.until_ns != 0 && event->time_ns() > options_.until_ns)) {
      RawNext();
      continue;
    }
    record_ = Record{stream_, seq, {value.data(), value.size()}, event};
    valid_ = true;
    return;
  }
}

void Cursor::SettleRing() {
  valid_ = false;
  for (; ring_pos_ < ring_.size(); ++ring_pos_) {
    const RingRecord& r = ring_[ring_pos_];
    if (r.seq <= last_seq_seen_ || r.seq < options_.from_seq) continue;
    if (options_.until_seq != 0 && r.seq > options_.until_seq) return;
    last_seq_seen_ = r.seq;
    Account(r.seq);
    const fb::Event* event = VerifyEvent(Bytes(r.payload));
    if (event == nullptr) continue;  // verified when read: not reached
    if ((options_.since_ns != 0 && event->time_ns() < options_.since_ns) ||
        (options_.until_ns != 0 && event->time_ns() > options_.until_ns)) {
      continue;
    }
    record_ = Record{stream_, r.seq, r.payload, event};
    valid_ = true;
    return;
  }
}

void SeqBounds(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, uint64_t* first, uint64_t* last) {
  *first = 0;
  *last = 0;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  // Keys of any other length (only possible through outside damage) are skipped.
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    if (DecodeKey({it->key().data(), it->key().size()}, last)) break;
  }
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (DecodeKey({it->key().data(), it->key().size()}, first)) break;
  }
  if (*last == 0) *first = 0;
}

Status ScanEvents(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& stream,
                  const ScanOptions& options, const RecordFn& fn) {
  for (Cursor c(db, cf, stream, options); c.Valid(); c.Next()) {
    if (!fn(c.record())) break;
  }
  return Status::Ok();
}

Result<std::optional<Snapshot>> LatestSnapshotOf(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  if (cf == nullptr) return std::optional<Snapshot>();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    uint64_t seq = 0;
    if (DecodeKey({it->key().data(), it->key().size()}, &seq)) {
      return std::optional<Snapshot>(Snapshot{seq, it->value().ToString()});
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading snapshots");
  return std::optional<Snapshot>();
}

}  // namespace blackbox::internal
