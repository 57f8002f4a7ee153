// <stream dir>/RING: see ring.h.
#include "ring.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "unique_fd.h"

namespace blackbox::internal {

namespace {

using Atomic = std::atomic<uint64_t>;
static_assert(Atomic::is_always_lock_free, "the ring's atomics live in a shared mapping");
static_assert(sizeof(Atomic) == 8);

constexpr char kMagic[8] = {'B', 'B', 'X', 'R', 'I', 'N', 'G', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kRecordHeader = 32;
constexpr size_t kMinSlot = 64, kMaxSlot = 65536;

struct alignas(64) Line {
  Atomic value;
};

struct RingHeader {
  char magic[8];
  uint32_t version;
  uint32_t slot_size;
  uint64_t slot_count;
  uint64_t reserved_[5];
  Line tail;
  Line head;
  Line dropped;
};
static_assert(sizeof(RingHeader) <= kHeaderBytes);
static_assert(offsetof(RingHeader, tail) == 64);

struct Slot {
  Atomic turn;
  uint64_t checksum;
  uint64_t seq;
  uint32_t length;
  uint32_t flags;
  // payload follows
};
static_assert(sizeof(Slot) == kRecordHeader);

// The same record header as plain data, for a copy taken out of a slot.
struct SlotCopy {
  uint64_t turn;
  uint64_t checksum;
  uint64_t seq;
  uint32_t length;
  uint32_t flags;
};
static_assert(sizeof(SlotCopy) == kRecordHeader);

bool PowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// XXH3 over seq|length|flags|payload, which lie contiguous after `checksum`.
uint64_t Checksum(const uint8_t* slot, uint32_t length) {
  return XXH3_64bits(slot + 16, 16 + static_cast<size_t>(length));
}

class Mapping {
 public:
  Mapping(void* p, size_t n) : p_(p), n_(n) {}
  ~Mapping() {
    if (p_ != MAP_FAILED) ::munmap(p_, n_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* get() const { return static_cast<uint8_t*>(p_); }
  bool ok() const { return p_ != MAP_FAILED; }
  void* Release() { return std::exchange(p_, MAP_FAILED); }

 private:
  void* p_;
  size_t n_;
};

RingHeader* HeaderOf(uint8_t* base) { return reinterpret_cast<RingHeader*>(base); }
const RingHeader* HeaderOf(const uint8_t* base) {
  return reinterpret_cast<const RingHeader*>(base);
}

// The checks every opener makes of an open fd: a regular file of ours,
// owner-only.
Status CheckFile(int fd, const std::string& path, struct stat* st) {
  if (::fstat(fd, st) != 0) return Errno("cannot stat", path, errno);
  if (!S_ISREG(st->st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  if (st->st_uid != ::geteuid()) {
    return Status::InvalidArgument(path + " is owned by another user");
  }
  if ((st->st_mode & 077) != 0) {
    return Status::InvalidArgument(path + " is readable or writable by other users");
  }
  return Status::Ok();
}

// Checks a mapped header against the file's size. Reads the fields once.
Status CheckHeader(const uint8_t* base, size_t file_size, const std::string& path,
                   size_t* slot_size, size_t* slot_count) {
  auto bad = [&](std::string_view why) {
    return Status::Corruption(fmt::format("{} is not a ring file: {}", path, why));
  };
  if (file_size < kHeaderBytes) return bad("shorter than its header");
  const RingHeader* h = HeaderOf(base);
  if (std::memcmp(h->magic, kMagic, sizeof kMagic) != 0) return bad("wrong magic");
  if (h->version != kVersion) return bad(fmt::format("version {}", h->version));
  const uint64_t size = h->slot_size, count = h->slot_count;
  if (!PowerOfTwo(size) || size < kMinSlot || size > kMaxSlot) {
    return bad(fmt::format("slot size {}", size));
  }
  if (!PowerOfTwo(count) || count < 2 || count > (uint64_t{1} << 40) / size) {
    return bad(fmt::format("slot count {}", count));
  }
  if (file_size != kHeaderBytes + size * count) {
    return bad(fmt::format("{} bytes for {} slots of {}", file_size, count, size));
  }
  *slot_size = size;
  *slot_count = count;
  return Status::Ok();
}

}  // namespace

Ring::Ring(std::string path, uint8_t* base, size_t bytes, size_t slot_size, size_t slot_count)
    : path_(std::move(path)),
      base_(base),
      bytes_(bytes),
      slot_size_(slot_size),
      slot_count_(slot_count) {}

Ring::~Ring() { ::munmap(base_, bytes_); }

Result<std::unique_ptr<Ring>> Ring::Open(const std::string& dir, const RingOptions& options,
                                         uint64_t next_seq) {
  const std::string path = dir + "/" + options.name;
  if (!PowerOfTwo(options.slot_size) || options.slot_size < kMinSlot ||
      options.slot_size > kMaxSlot || !PowerOfTwo(options.size) ||
      options.size < 2 * options.slot_size) {
    return Status::InvalidArgument(
        fmt::format("ring of {} bytes in slots of {}: both must be powers of two, two slots "
                    "at least, slots of 64 to 65536 bytes",
                    options.size, options.slot_size));
  }
  if (next_seq == 0) return Status::InvalidArgument("ring numbered from 0");
  const size_t bytes = kHeaderBytes + options.size;
  const size_t count = options.size / options.slot_size;

  // The existing file, when it is a ring of these sizes, is reused in place.
  {
    Fd fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0 && errno != ENOENT) return Errno("cannot open", path, errno);
    if (fd.get() >= 0) {
      struct stat st {};
      Status s = CheckFile(fd.get(), path, &st);
      if (!s.ok()) return s;
      if (static_cast<size_t>(st.st_size) == bytes) {
        // Fill any hole (a file copied sparse) before storing into it.
        if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes)); err != 0) {
          return Errno("cannot allocate", path, err);
        }
        Mapping m(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0), bytes);
        if (!m.ok()) return Errno("cannot map", path, errno);
        size_t size = 0, n = 0;
        if (CheckHeader(m.get(), bytes, path, &size, &n).ok() && size == options.slot_size &&
            n == count) {
          std::unique_ptr<Ring> ring(
              new Ring(path, static_cast<uint8_t*>(m.Release()), bytes, size, n));
          ring->Reset(next_seq);
          return ring;
        }
      }
    }
  }

  // A fresh ring, built in a temporary and renamed over RING.
  std::string temp = dir + "/" + kRingTempPrefix + "XXXXXX";
  Fd fd(::mkostemp(temp.data(), O_CLOEXEC));  // O_EXCL, 0600
  if (fd.get() < 0) return Errno("cannot create", temp, errno);
  auto fail = [&](std::string_view what, int err) {
    ::unlink(temp.c_str());
    return Errno(what, temp, err);
  };
  if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes)); err != 0) {
    return fail("cannot allocate", err);
  }
  Mapping m(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0), bytes);
  if (!m.ok()) return fail("cannot map", errno);
  RingHeader* h = HeaderOf(m.get());
  h->version = kVersion;
  h->slot_size = static_cast<uint32_t>(options.slot_size);
  h->slot_count = count;
  std::unique_ptr<Ring> ring(
      new Ring(path, static_cast<uint8_t*>(m.Release()), bytes, options.slot_size, count));
  ring->Reset(next_seq);
  std::memcpy(h->magic, kMagic, sizeof kMagic);
  if (::rename(temp.c_str(), path.c_str()) != 0) return fail("cannot rename", errno);
  return ring;
}

void Ring::Reset(uint64_t next_seq) {
  RingHeader* h = HeaderOf(base_);
  const uint64_t mask = slot_count_ - 1;
  for (uint64_t i = 0; i < slot_count_; ++i) {
    // The first seq >= next_seq that lands in slot i.
    const uint64_t s = next_seq + ((i - next_seq) & mask);
    auto* slot = reinterpret_cast<Slot*>(base_ + kHeaderBytes + i * slot_size_);
    slot->turn.store(2 * s, std::memory_order_relaxed);
  }
  h->head.value.store(next_seq, std::memory_order_relaxed);
  h->dropped.value.store(0, std::memory_order_relaxed);
  h->tail.value.store(next_seq, std::memory_order_release);
}

RingAppend Ring::Append(std::span<const uint8_t> payload, uint32_t flags) {
  return AppendImpl(nullptr, payload, flags);
}

RingAppend Ring::AppendPrefixed(uint64_t prefix, std::span<const uint8_t> payload, uint32_t flags) {
  return AppendImpl(&prefix, payload, flags);
}

RingAppend Ring::AppendImpl(const uint64_t* prefix, std::span<const uint8_t> payload,
                            uint32_t flags) {
  const size_t extra = prefix == nullptr ? 0 : sizeof *prefix;
  if (payload.size() + extra > RingPayloadMax(slot_size_)) return {RingCode::kTooLarge, 0};
  RingHeader* h = HeaderOf(base_);
  const uint64_t mask = slot_count_ - 1;
  uint64_t s = h->tail.value.load(std::memory_order_relaxed);
  uint8_t* p;
  for (;;) {
    p = base_ + kHeaderBytes + (s & mask) * slot_size_;
    auto* slot = reinterpret_cast<Slot*>(p);
    const uint64_t turn = slot->turn.load(std::memory_order_acquire);
    if (turn == 2 * s) {
      if (h->tail.value.compare_exchange_weak(s, s + 1, std::memory_order_relaxed)) break;
      // s now holds the tail another thread moved to.
    } else if (turn < 2 * s) {
      // The slot still holds s - slot_count: full, unless tail moved on.
      const uint64_t now = h->tail.value.load(std::memory_order_relaxed);
      if (now == s) {
        h->dropped.value.fetch_add(1, std::memory_order_relaxed);
        return {RingCode::kFull, 0};
      }
      s = now;
    } else {
      s = h->tail.value.load(std::memory_order_relaxed);
    }
  }
  auto* slot = reinterpret_cast<Slot*>(p);
  slot->seq = s;
  slot->length = static_cast<uint32_t>(payload.size() + extra);
  slot->flags = flags;
  if (prefix != nullptr) std::memcpy(p + kRecordHeader, prefix, extra);
  if (!payload.empty()) std::memcpy(p + kRecordHeader + extra, payload.data(), payload.size());
  slot->checksum = Checksum(p, slot->length);
  slot->turn.store(2 * s + 1, std::memory_order_release);
  return {RingCode::kOk, s};
}

RingAppend Ring::AppendAll(std::span<const std::span<const uint8_t>> payloads, uint32_t flags) {
  const uint64_t n = payloads.size();
  if (n == 0 || n > slot_count_) return {RingCode::kTooLarge, 0};
  for (const auto& p : payloads) {
    if (p.size() > RingPayloadMax(slot_size_)) return {RingCode::kTooLarge, 0};
  }
  RingHeader* h = HeaderOf(base_);
  const uint64_t mask = slot_count_ - 1;
  auto slot_of = [&](uint64_t seq) {
    return reinterpret_cast<Slot*>(base_ + kHeaderBytes + (seq & mask) * slot_size_);
  };
  uint64_t s = h->tail.value.load(std::memory_order_relaxed);
  for (;;) {
    // All n slots free for their seqs? A slot free for s + j stays so until
    // s + j is reserved, which needs tail to pass s: the CAS below fails then.
    uint64_t j = 0;
    uint64_t turn = 0;
    for (; j < n; ++j) {
      turn = slot_of(s + j)->turn.load(std::memory_order_acquire);
      if (turn != 2 * (s + j)) break;
    }
    if (j == n) {
      if (h->tail.value.compare_exchange_weak(s, s + n, std::memory_order_relaxed)) break;
      continue;  // s holds the tail another thread moved to
    }
    const uint64_t now = h->tail.value.load(std::memory_order_relaxed);
    if (turn < 2 * (s + j) && now == s) return {RingCode::kFull, 0};
    s = now;
  }
  for (uint64_t j = 0; j < n; ++j) {
    auto* slot = slot_of(s + j);
    auto* p = reinterpret_cast<uint8_t*>(slot);
    slot->seq = s + j;
    slot->length = static_cast<uint32_t>(payloads[j].size());
    slot->flags = flags;
    if (!payloads[j].empty())
      std::memcpy(p + kRecordHeader, payloads[j].data(), payloads[j].size());
    slot->checksum = Checksum(p, slot->length);
    slot->turn.store(2 * (s + j) + 1, std::memory_order_release);
  }
  return {RingCode::kOk, s};
}

size_t Ring::Peek(size_t max, std::vector<RingView>* out) const {
  // Only the drain writes head.
  return PeekFrom(HeaderOf(base_)->head.value.load(std::memory_order_relaxed), max, out);
}

size_t Ring::PeekFrom(uint64_t from, size_t max, std::vector<RingView>* out) const {
  out->clear();
  for (uint64_t s = from; out->size() < max; ++s) {
    RingView v = At(s);
    if (v.seq == 0) break;
    out->push_back(v);
  }
  return out->size();
}

RingView Ring::At(uint64_t s) const {
  RingView v;
  const uint8_t* p = base_ + kHeaderBytes + (s & (slot_count_ - 1)) * slot_size_;
  const auto* slot = reinterpret_cast<const Slot*>(p);
  if (s == 0 || slot->turn.load(std::memory_order_acquire) != 2 * s + 1) return v;
  v.seq = s;
  v.flags = slot->flags;
  const uint32_t length = slot->length;
  v.intact = slot->seq == s && length <= RingPayloadMax(slot_size_) &&
             slot->checksum == Checksum(p, length);
  if (v.intact) v.payload = {p + kRecordHeader, length};
  return v;
}

void Ring::Release(uint64_t through) {
  RingHeader* h = HeaderOf(base_);
  const uint64_t mask = slot_count_ - 1;
  uint64_t s = h->head.value.load(std::memory_order_relaxed);
  for (; s <= through; ++s) {
    auto* slot = reinterpret_cast<Slot*>(base_ + kHeaderBytes + (s & mask) * slot_size_);
    slot->turn.store(2 * (s + slot_count_), std::memory_order_release);
  }
  h->head.value.store(s, std::memory_order_release);
}

uint64_t Ring::head() const { return HeaderOf(base_)->head.value.load(std::memory_order_acquire); }
uint64_t Ring::tail() const { return HeaderOf(base_)->tail.value.load(std::memory_order_acquire); }
uint64_t Ring::dropped() const {
  return HeaderOf(base_)->dropped.value.load(std::memory_order_relaxed);
}

namespace {

// Reads exactly `n` bytes at `offset`. A short read means the file shrank
// under the reader (its owner truncated or replaced it in place).
Status ReadAt(int fd, void* buf, size_t n, uint64_t offset, const std::string& path) {
  auto* p = static_cast<uint8_t*>(buf);
  for (size_t done = 0; done < n;) {
    const ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Errno("cannot read", path, errno);
    if (r == 0) {
      return Status::Corruption(fmt::format("{} shrank while being read (byte {} of {})", path,
                                            offset + done, offset + n));
    }
    done += static_cast<size_t>(r);
  }
  return Status::Ok();
}

uint64_t TurnOf(const uint8_t* slot_copy) {
  uint64_t turn;
  std::memcpy(&turn, slot_copy, sizeof turn);
  return turn;
}

// How many slots ScanRing copies per read: 64 KB at a time.
constexpr size_t kScanChunkBytes = 64 << 10;

}  // namespace

// The file is read with pread, never mapped: a reader does not own it, and a
// mapping of a file that its owner truncates raises SIGBUS on the next load
// past the new end; a read just comes back short (an error here). The
// seqlock of ring.h is kept with whole reads in place of loads: the slots of
// a chunk are read three times, for their turns, for their records, and for
// their turns again, with an acquire fence between the reads; a record is
// kept when both turns say "published with s" and its checksum verifies.
// (One read per slot would be a system call each; three per 64 KB cost
// about a millisecond for a 4 MB ring.)
Result<RingScan> ScanRing(const std::string& path, uint64_t after_seq, bool drained_too) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ELOOP) return Status::InvalidArgument(path + " is a symbolic link");
    if (errno == ENOENT) return Status::NotFound(path + " does not exist");
    return Errno("cannot open", path, errno);
  }
  struct stat st {};
  if (Status s = CheckFile(fd.get(), path, &st); !s.ok()) return s;
  const size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes < kHeaderBytes) {
    return Status::Corruption(fmt::format("{} is not a ring file: shorter than its header", path));
  }
  alignas(64) uint8_t header[kHeaderBytes];
  if (Status s = ReadAt(fd.get(), header, kHeaderBytes, 0, path); !s.ok()) return s;
  size_t slot_size = 0, count = 0;
  if (Status s = CheckHeader(header, bytes, path, &slot_size, &count); !s.ok()) return s;
  RingScan scan;
  // head before tail: both only grow and head never passes tail, so
  // head <= tail as read unless the file is damaged. A live ring can move
  // on between the two reads: tail - head > count then, and the seqs below
  // tail - count were drained (reserving s + count needs s released).
  if (Status s = ReadAt(fd.get(), &scan.head, 8, offsetof(RingHeader, head), path); !s.ok()) {
    return s;
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  if (Status s = ReadAt(fd.get(), &scan.tail, 8, offsetof(RingHeader, tail), path); !s.ok()) {
    return s;
  }
  if (scan.head > scan.tail) {
    return Status::Corruption(
        fmt::format("{} is not a ring file: head {} past tail {}", path, scan.head, scan.tail));
  }
  if (scan.tail - scan.head > count) {
    scan.drained += scan.tail - count - scan.head;
    scan.head = scan.tail - count;
  }
  const uint64_t mask = count - 1;
  // A drained slot keeps its record until an append of the next lap takes
  // it: the seqs from tail - count up may still be there.
  const uint64_t lowest = drained_too ? std::max<uint64_t>(scan.tail, count) - count : scan.head;
  const uint64_t first = std::max({lowest, after_seq + 1, uint64_t{1}});
  scan.complete_through = first - 1;
  scan.available_from = first;
  bool gap = false;
  const size_t chunk_slots = std::max<size_t>(1, kScanChunkBytes / slot_size);
  std::vector<uint8_t> turns_buf(chunk_slots * slot_size), records_buf(chunk_slots * slot_size);
  std::vector<uint64_t> turns_before(chunk_slots);
  // Slot j of the chunk read: whether its copy is seq s's record, whole
  // (its header in *rec); and keeping it.
  auto intact = [&](size_t j, uint64_t s, SlotCopy& rec) {
    const uint8_t* copy = records_buf.data() + j * slot_size;
    std::memcpy(&rec, copy, sizeof rec);
    return rec.seq == s && rec.length <= RingPayloadMax(slot_size) &&
           rec.checksum == Checksum(copy, rec.length);
  };
  auto keep = [&](size_t j, uint64_t s, const SlotCopy& rec) {
    const uint8_t* copy = records_buf.data() + j * slot_size;
    scan.records.push_back(
        {s, rec.flags,
         std::string(reinterpret_cast<const char*>(copy + kRecordHeader), rec.length)});
    if (!gap) scan.complete_through = s;
  };
  for (uint64_t s = first; s < scan.tail;) {
    // Consecutive seqs in consecutive slots: a chunk stops at the ring's end.
    const uint64_t index = s & mask;
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>({chunk_slots, scan.tail - s, count - index}));
    const uint64_t offset = kHeaderBytes + index * slot_size;
    const size_t len = n * slot_size;
    if (Status st = ReadAt(fd.get(), turns_buf.data(), len, offset, path); !st.ok()) return st;
    for (size_t j = 0; j < n; ++j) turns_before[j] = TurnOf(turns_buf.data() + j * slot_size);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (Status st = ReadAt(fd.get(), records_buf.data(), len, offset, path); !st.ok()) return st;
    std::atomic_thread_fence(std::memory_order_acquire);
    if (Status st = ReadAt(fd.get(), turns_buf.data(), len, offset, path); !st.ok()) return st;
    for (size_t j = 0; j < n; ++j, ++s) {
      const uint64_t turn = turns_before[j];
      // Drained: below the head as read, or (with drained_too) released
      // since: a live drain moves on between the read of head and of the
      // slots. Its slot was released for seq s + count (turn 2(s + count))
      // and may be rewritten already. Kept only if the slot was not taken
      // before or after the copy and the copy is seq s's record whole; a
      // slot that lost it cuts off every seq before it.
      SlotCopy rec;
      if (s < scan.head || (drained_too && turn > 2 * s + 1)) {
        if (turn != 2 * (s + count) || TurnOf(turns_buf.data() + j * slot_size) != turn ||
            !intact(j, s, rec)) {
          scan.records.clear();
          scan.available_from = s + 1;
          scan.complete_through = s;
          gap = false;
          continue;
        }
        keep(j, s, rec);
        continue;
      }
      if (turn != 2 * s + 1) {
        if (turn > 2 * s + 1) {
          ++scan.drained;  // released, maybe reused, by a live drain: in the database
        } else {
          ++scan.holes;
          gap = true;
        }
        continue;
      }
      if (TurnOf(turns_buf.data() + j * slot_size) != turn) {
        ++scan.drained;  // rewritten while being read
        continue;
      }
      if (!intact(j, s, rec)) {
        ++scan.torn;
        gap = true;
        continue;
      }
      keep(j, s, rec);
    }
  }
  return scan;
}

}  // namespace blackbox::internal
