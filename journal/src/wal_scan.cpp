#include "wal_scan.h"

#include <fcntl.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <utility>

#include "internal.h"

namespace blackbox::internal {
namespace {

constexpr size_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;             // crc (4), length (2), type (1)
constexpr size_t kRecyclableHeaderSize = 11;  // … and the log number (4)

// Record types (RocksDB's db/log_format.h).
constexpr uint8_t kFullType = 1;
constexpr uint8_t kFirstType = 2;
constexpr uint8_t kMiddleType = 3;
constexpr uint8_t kLastType = 4;
constexpr uint8_t kRecyclableFullType = 5;
constexpr uint8_t kRecyclableLastType = 8;
constexpr uint8_t kMaxType = 11;  // metadata types 9..11 carry no batch; 11 is recyclable

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), one table lookup per
// byte.
constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

uint32_t Crc32c(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = kCrcTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// RocksDB stores checksums masked, so that a CRC of data holding CRCs is not
// degenerate.
uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

struct PhysicalRecord {
  size_t size = 0;  // header + payload; 0 when no intact record starts here
  uint8_t type = 0;
  std::string_view payload;
};

// A record's header: the log number follows in recyclable records.
size_t HeaderSizeOf(uint8_t type) {
  const bool recyclable =
      (type >= kRecyclableFullType && type <= kRecyclableLastType) || type == kMaxType;
  return recyclable ? kRecyclableHeaderSize : kHeaderSize;
}

PhysicalRecord IntactRecordAt(std::string_view data, size_t pos) {
  PhysicalRecord r;
  const size_t room = std::min(kBlockSize - pos % kBlockSize, data.size() - pos);
  if (room < kHeaderSize) return r;
  const auto* h = reinterpret_cast<const uint8_t*>(data.data() + pos);
  const uint8_t type = h[6];
  if (type == 0 || type > kMaxType) return r;
  const bool recyclable_data = type >= kRecyclableFullType && type <= kRecyclableLastType;
  const size_t header = HeaderSizeOf(type);
  const size_t length = size_t{h[4]} | (size_t{h[5]} << 8);
  if (header + length > room) return r;
  const uint32_t stored =
      uint32_t{h[0]} | (uint32_t{h[1]} << 8) | (uint32_t{h[2]} << 16) | (uint32_t{h[3]} << 24);
  if (Mask(Crc32c(h + 6, header - 6 + length)) != stored) return r;
  r.size = header + length;
  r.type = recyclable_data ? static_cast<uint8_t>(type - (kRecyclableFullType - kFullType)) : type;
  r.payload = data.substr(pos + header, length);
  return r;
}

// Applies the events column family's puts and deletes of a batch to `seqs`.
class SeqCollector : public rocksdb::WriteBatch::Handler {
 public:
  SeqCollector(std::map<uint64_t, size_t>* seqs, size_t damage) : seqs_(seqs), damage_(damage) {}
  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice&) override {
    uint64_t seq = 0;
    if (cf == 0 && DecodeKey({key.data(), key.size()}, &seq)) (*seqs_)[seq] = damage_;
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
    uint64_t seq = 0;
    if (cf == 0 && DecodeKey({key.data(), key.size()}, &seq)) seqs_->erase(seq);
    return rocksdb::Status::OK();
  }
  rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
    return DeleteCF(cf, key);
  }
  rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice& begin,
                                const rocksdb::Slice& end) override {
    uint64_t from = 0, to = 0;
    if (cf == 0 && DecodeKey({begin.data(), begin.size()}, &from) &&
        DecodeKey({end.data(), end.size()}, &to)) {
      seqs_->erase(seqs_->lower_bound(from), seqs_->lower_bound(to));
    }
    return rocksdb::Status::OK();
  }
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }
  rocksdb::Status PutBlobIndexCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    return rocksdb::Status::OK();
  }

 private:
  std::map<uint64_t, size_t>* seqs_;
  size_t damage_;
};

bool ReadWhole(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return n == 0;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

// The logs of `dir`, by file number (the names are zero-padded numbers).
std::vector<std::string> LogFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 4 && name.ends_with(".log") &&
        std::all_of(name.begin(), name.end() - 4, [](char c) { return c >= '0' && c <= '9'; })) {
      out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return out;
}

WalScan ScanOnce(const std::string& dir) {
  WalScan scan;
  bool bad_pending = false;  // a damaged record not yet followed by an intact one
  WalScan::Damage pending;
  std::string data;
  for (const std::string& name : LogFiles(dir)) {
    const std::string path = dir + "/" + name;
    if (!ReadWhole(path, &data)) continue;
    data.resize(WalEnd(data));
    // Past the last non-zero byte: the zeros of a preallocated log's end.
    const size_t written = data.find_last_not_of('\0') + 1;  // npos + 1 == 0
    std::string fragments;
    bool in_fragments = false;
    size_t pos = 0;
    while (pos < data.size()) {
      const size_t in_block = kBlockSize - pos % kBlockSize;
      if (in_block < kHeaderSize) {  // the zero-filled trailer of a block
        pos += in_block;
        continue;
      }
      if (pos >= written) break;
      PhysicalRecord r = IntactRecordAt(data, pos);
      if (r.size == 0) {
        if (!bad_pending) pending = WalScan::Damage{path, pos};
        bad_pending = true;
        in_fragments = false;
        ++pos;
        continue;
      }
      if (bad_pending) {
        scan.damages.push_back(pending);
        bad_pending = false;
      }
      pos += r.size;
      std::string_view batch;
      switch (r.type) {
        case kFullType:
          in_fragments = false;
          batch = r.payload;
          break;
        case kFirstType:
          fragments.assign(r.payload);
          in_fragments = true;
          break;
        case kMiddleType:
          if (in_fragments) fragments.append(r.payload);
          break;
        case kLastType:
          if (in_fragments) {
            fragments.append(r.payload);
            batch = fragments;
          }
          in_fragments = false;
          break;
        default:  // metadata records
          break;
      }
      if (batch.empty() || scan.damages.empty()) continue;
      rocksdb::WriteBatch wb{std::string(batch)};
      SeqCollector collector(&scan.seqs_after, scan.damages.size() - 1);
      // A batch that does not decode to the end still gave what it decoded.
      (void)wb.Iterate(&collector);
    }
  }
  return scan;
}

}  // namespace

WalScan ScanWals(const std::string& dir) {
  WalScan scan = ScanOnce(dir);
  for (int reading = 1; reading < 3 && !scan.damages.empty(); ++reading) {
    WalScan again = ScanOnce(dir);
    const bool same = again.damages == scan.damages;
    scan = std::move(again);
    if (same) break;
  }
  return scan;
}

uint64_t WalEnd(std::string_view data) {
  const size_t last = data.find_last_not_of('\0');
  if (last == std::string_view::npos) return 0;
  return std::min<uint64_t>(data.size(), (last / kBlockSize + 1) * kBlockSize);
}

uint64_t WalReadEnd(std::string_view data) {
  const size_t last = data.find_last_not_of('\0');
  if (last == std::string_view::npos) return 0;
  const uint64_t block_end = WalEnd(data);
  // Follow the records' lengths to the one that reaches past the last
  // non-zero byte (checking no checksum before it: RocksDB does).
  size_t pos = 0;
  while (pos <= last) {
    const size_t in_block = kBlockSize - pos % kBlockSize;
    if (in_block < kHeaderSize) {  // the zero-filled trailer of a block
      pos += in_block;
      continue;
    }
    if (pos + kHeaderSize > last + 1) {
      // A header cut short: a kill cuts a write at a page boundary, which
      // can lie inside the header of a batch's next fragment. It ends where
      // its bytes do, so that it reads as a torn tail (RocksDB takes a
      // header cut short at the end of a log for one), not as a zero header
      // in the middle of a batch, which the strict open takes for damage.
      return last + 1;
    }
    const auto* h = reinterpret_cast<const uint8_t*>(data.data() + pos);
    const uint8_t type = h[6];
    const size_t length = size_t{h[4]} | (size_t{h[5]} << 8);
    const size_t header = HeaderSizeOf(type);
    if (type == 0 || type > kMaxType || header + length > in_block) {
      return block_end;  // not a record: damage (or zeros) before data, as RocksDB reads it
    }
    if (pos + header + length <= last) {
      pos += header + length;
      continue;
    }
    // The last record. Intact: the log ends after it, whatever zeros its
    // payload ends with. Not: it is the torn write of a process killed while
    // writing it, and ends where its bytes do, so that it reads as cut short
    // (a torn last record) rather than as a record gone bad before zeros.
    if (IntactRecordAt(data, pos).size != 0) return pos + header + length;
    return last + 1;
  }
  return pos;
}

uint64_t WalReadEnd(int fd, uint64_t size) {
  std::string data(size, '\0');
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, data.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // shorter than it was: read what there is
    done += static_cast<uint64_t>(n);
  }
  data.resize(done);
  return WalReadEnd(data);
}

}  // namespace blackbox::internal
