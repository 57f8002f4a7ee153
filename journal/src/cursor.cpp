#include "cursor.h"

#include <fmt/format.h>

#include <cstring>

#include "internal.h"

namespace blackbox::internal {

Cursor::Cursor(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string stream,
               ScanOptions options)
    : db_(db), cf_(cf), stream_(std::move(stream)), options_(std::move(options)) {
  read_options_.verify_checksums = true;
  // A full scan must not evict what the writer keeps hot.
  read_options_.fill_cache = false;
  uint64_t first = 0;
  SeqBounds(db_, cf_, &first, &stream_last_seq_);
  it_.reset(db_->NewIterator(read_options_, cf_));
  it_->Seek(KeySlice(EncodeKey(options_.from_seq)));
  Settle();
}

void Cursor::Next() {
  if (!valid_) return;
  it_->Next();
  Settle();
}

void Cursor::Report(uint64_t seq, std::string reason) {
  if (options_.on_bad) options_.on_bad(BadRecord{stream_, seq, std::move(reason)});
}

bool Cursor::Resume() {
  // The iterator stopped on an error (a damaged block). Everything from the
  // last good record up to the next readable key is unreadable: report it and
  // probe forward with growing steps for a key that reads again.
  std::string why = it_->status().ToString();
  uint64_t next = last_seq_seen_ + 1;
  Report(next, fmt::format("unreadable: {}", why));
  for (uint64_t step = 1; next + step <= stream_last_seq_ && resumes_ < 10000; step *= 2) {
    ++resumes_;
    it_.reset(db_->NewIterator(read_options_, cf_));
    it_->Seek(KeySlice(EncodeKey(next + step)));
    if (it_->status().ok()) {
      last_seq_seen_ = next + step - 1;
      return true;
    }
  }
  return false;
}

void Cursor::Settle() {
  valid_ = false;
  while (true) {
    if (!it_->Valid()) {
      if (it_->status().ok() || !Resume()) return;
      continue;
    }
    uint64_t seq = 0;
    rocksdb::Slice key = it_->key();
    if (!DecodeKey({key.data(), key.size()}, &seq)) {
      Report(last_seq_seen_, fmt::format("malformed key of {} bytes", key.size()));
      it_->Next();
      continue;
    }
    last_seq_seen_ = seq;
    if (options_.until_seq != 0 && seq > options_.until_seq) return;
    rocksdb::Slice value = it_->value();
    if (reinterpret_cast<uintptr_t>(value.data()) % alignof(uint64_t) != 0) {
      aligned_.resize((value.size() + sizeof(uint64_t) - 1) / sizeof(uint64_t));
      std::memcpy(aligned_.data(), value.data(), value.size());
      value = rocksdb::Slice(reinterpret_cast<const char*>(aligned_.data()), value.size());
    }
    std::string why;
    const fb::Event* event =
        VerifyEvent({reinterpret_cast<const uint8_t*>(value.data()), value.size()}, &why);
    if (event == nullptr) {
      Report(seq, std::move(why));
      it_->Next();
      continue;
    }
    if ((options_.since_ns != 0 && event->time_ns() < options_.since_ns) ||
        (options_.until_ns != 0 && event->time_ns() > options_.until_ns)) {
      it_->Next();
      continue;
    }
    record_ = Record{stream_, seq, {value.data(), value.size()}, event};
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
