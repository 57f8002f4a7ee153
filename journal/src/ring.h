// A crash-safe ring of buffered events, in <stream dir>/RING. Not installed.
//
// A buffered append copies its encoded event into a slot of a file mapped
// MAP_SHARED and returns: no system call, no lock, one CAS. The pages belong
// to the page cache, so a record published before the process dies (kill -9
// included, not a power loss) is still in the file for the next start, which
// ingests it (ScanRing) before appending. A drain thread of the writing
// process moves published records into RocksDB (Peek, then Release).
//
// Layout (all integers native-endian; the file never leaves the machine):
//   page 0: RingHeader: magic, version, slot size and count, then on their
//           own cache lines the atomics `tail` (the next seq to reserve),
//           `head` (the next seq to drain) and `dropped` (appends refused
//           because the ring was full);
//   then slot_count slots of slot_size bytes (both powers of two). Slot i
//   holds the seqs s with s % slot_count == i, one lap at a time:
//     turn (atomic u64) | checksum u64 | seq u64 | length u32 | flags u32 |
//     payload[length]
//   The checksum is XXH3-64 over seq|length|flags|payload (contiguous).
//
// The queue is Vyukov's bounded MPMC queue with the journal's sequence
// numbers as its positions: slot(s).turn == 2s means free for s, 2s + 1
// means s is published. Append reserves s = tail when slot(s) is free for s
// (CAS tail s -> s + 1), writes the record and publishes it (turn = 2s + 1).
// A slot still holding s - slot_count means the ring is full: the append is
// counted in `dropped` and refused (kFull); it never waits for the drain.
// Release(through) frees the drained slots for their next lap
// (turn = 2(s + slot_count)) and advances head.
//
// Memory orders. Append loads turn with acquire (pairs with Release's
// release store: the drain has finished reading the slot before it is
// rewritten) and publishes with a release store (the record's bytes are
// visible to whoever acquires turn == 2s + 1). The CAS on tail is relaxed:
// it only hands out positions; the slot's turn carries all the data
// ordering. Peek loads turn with acquire. Release stores turn with release
// and head with release (ScanRing reads head with acquire). Counters are
// relaxed. ScanRing, which may run in another process beside a live writer,
// reads each slot seqlock-style: turn, copy, acquire fence, turn again (with
// pread, see below); a copy is kept only when both reads say "published with
// s" and the checksum verifies, so a slot rewritten during the copy is never
// returned.
//
// Differences from the first design, and why:
//   - XXH3 is compiled inline (XXH_INLINE_ALL, header of libxxhash-dev): the
//     checksum of a 144-byte event then costs a few ns with no call into a
//     shared library, and the journal library gains no link dependency.
//   - Open writes a fresh ring (header and Reset) under its name in one step
//     when the file is missing, damaged or of another size: it is built in a
//     temporary (mkostemp, 0600) and renamed over RING, so a reader that has
//     the old file mapped keeps its (old) inode and is never truncated under
//     its feet (a store or load beyond a file's end raises SIGBUS). A valid
//     file of the right size is reused in place (Reset then renumbers it).
//   - Append returns a small code rather than a Status: the hot path builds
//     no string.
//   - ScanRing reads with pread into its own buffers instead of mapping the
//     file: a reader does not own the file, and a load from a mapping past
//     the end of a file truncated meanwhile raises SIGBUS, where a read just
//     comes back short (an error). It copies the records anyway.
//
// Sizing: the file is allocated with posix_fallocate, never sparse: a store
// to a MAP_SHARED page of a hole on a full disk raises SIGBUS in the host
// process. When allocation fails Open fails (kNoSpace) and the caller keeps
// using the direct path.
//
// REQUIRES of the caller: one writing process per stream (the database's
// LOCK, taken before the ring is opened), records of the old ring recovered
// (ScanRing) before Open, and one drain thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/status.h"

namespace blackbox::internal {

inline constexpr const char* kRingFile = "RING";
// A fresh ring is built in <dir>/RING.tmp.XXXXXX and renamed over RING.
inline constexpr const char* kRingTempPrefix = "RING.tmp.";

struct RingOptions {
  // The file's name in the directory: RING, or a lane's (lanes.h).
  std::string name = kRingFile;
  // Bytes of slots (the file is one page more). A power of two.
  size_t size = 4 << 20;
  // Bytes per slot, a power of two from 64 to 65536; 32 of them are the
  // record's header, the rest its payload (RingPayloadMax).
  size_t slot_size = 256;
};

// The longest payload a slot of `slot_size` bytes holds.
constexpr size_t RingPayloadMax(size_t slot_size) { return slot_size - 32; }

enum class RingCode {
  kOk,
  kFull,      // no free slot: the drain is behind (counted in dropped())
  kTooLarge,  // payload longer than RingPayloadMax: use the direct path
};

struct RingAppend {
  RingCode code = RingCode::kOk;
  uint64_t seq = 0;  // when kOk: the event's sequence number
};

// One published record, a view into the mapping (Peek).
struct RingView {
  uint64_t seq = 0;
  uint32_t flags = 0;
  std::span<const uint8_t> payload;  // valid until Release covers seq
  bool intact = true;                // checksum and length verified
};

class Ring {
 public:
  // Opens <dir>/RING for writing (creating it, or replacing one that is
  // damaged or of other sizes) and numbers it from `next_seq` (Reset).
  // Fails (never SIGBUS later) when the file cannot be allocated (kNoSpace),
  // is not a regular file owned by this user with mode 0600 (a symlink
  // included), or `options` are not powers of two.
  static Result<std::unique_ptr<Ring>> Open(const std::string& dir, const RingOptions& options,
                                            uint64_t next_seq);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Every slot free; the next append gets `next_seq`, and head = next_seq.
  // REQUIRES: no append, Peek or Release running. next_seq >= 1.
  void Reset(uint64_t next_seq);

  // Copies `payload` into the ring under the next sequence number and
  // publishes it. Thread-safe, lock-free, no system call. Never blocks:
  // kFull when the ring has no free slot (counted in dropped()).
  RingAppend Append(std::span<const uint8_t> payload, uint32_t flags = 0);
  // The same, with the 8 bytes of `prefix` before `payload` in the record
  // (a lane's stamp, lanes.h): one copy, no buffer in between.
  RingAppend AppendPrefixed(uint64_t prefix, std::span<const uint8_t> payload, uint32_t flags = 0);
  // Several payloads under consecutive sequence numbers (the first one is
  // returned): all n slots are reserved by one CAS, then each record is
  // written and published in turn. kTooLarge when one payload is too long or
  // there are more than slot_count(); kFull (not counted in dropped(): the
  // caller waits for room) when fewer than n slots are free. REQUIRES: not
  // empty.
  RingAppend AppendAll(std::span<const std::span<const uint8_t>> payloads, uint32_t flags = 0);

  // The drain side (one thread at a time). Fills `out` with the consecutive
  // published records from head on, at most `max`; returns how many. A
  // record whose checksum or length fails (memory damage) is returned with
  // intact = false: the caller counts it lost and releases it like others.
  size_t Peek(size_t max, std::vector<RingView>* out) const;
  // The same from `from` on (head <= from): records peeked before and not
  // released yet stay published, so a reader of the drain's side may go
  // ahead of head (the lanes' move, lanes.h).
  size_t PeekFrom(uint64_t from, size_t max, std::vector<RingView>* out) const;
  // The published record at `seq`, when that slot holds it (seq = 0: none).
  RingView At(uint64_t seq) const;
  // Frees the slots of every seq from head through `through` for their next
  // lap and sets head = through + 1. REQUIRES: head <= through < the seq of
  // the last record Peek returned + 1.
  void Release(uint64_t through);

  uint64_t head() const;     // next seq to drain
  uint64_t tail() const;     // next seq to reserve
  uint64_t dropped() const;  // appends refused with kFull
  size_t slot_count() const { return slot_count_; }
  size_t payload_max() const { return RingPayloadMax(slot_size_); }
  const std::string& path() const { return path_; }

  struct Layout;

 private:
  Ring(std::string path, uint8_t* base, size_t bytes, size_t slot_size, size_t slot_count);
  RingAppend AppendImpl(const uint64_t* prefix, std::span<const uint8_t> payload, uint32_t flags);
  std::string path_;
  uint8_t* base_;
  size_t bytes_;
  size_t slot_size_;
  size_t slot_count_;
};

// A record read back by ScanRing, copied out of the file.
struct RingRecord {
  uint64_t seq = 0;
  uint32_t flags = 0;
  std::string payload;
};

struct RingScan {
  uint64_t head = 0;  // as read from the file
  uint64_t tail = 0;
  // The published records with after_seq < seq < tail and seq >= head whose
  // checksum verifies, in seq order.
  std::vector<RingRecord> records;
  // Seqs in that range not returned: published but damaged (checksum or
  // length wrong), reserved but never published (the writer died between
  // reserve and publish, or with a live writer: an append in flight), and,
  // with a live writer, drained and reused while being read (they are in
  // the database already, as are the seqs a live ring moved past between
  // the reads of head and tail).
  uint64_t torn = 0;
  uint64_t holes = 0;
  uint64_t drained = 0;
  // Every seq from max(after_seq + 1, head) through this one is in
  // `records`: the gap-free prefix (after_seq, or head - 1, when none is).
  // With `drained_too`, from `available_from` on.
  uint64_t complete_through = 0;
  // The first seq `records` may start at: max(after_seq + 1, head), or with
  // `drained_too` the oldest seq after after_seq whose slot, drained, still
  // held its record, and every drained one after it did too.
  uint64_t available_from = 0;
};

// Reads <path> (a RING file) without writing anything: O_RDONLY and pread,
// so it works beside a live writer and after one died. A file that is not a
// ring (wrong magic, version or sizes, truncated, a symlink, another user's),
// or that shrinks while being read, is an error, never a crash.
// With `drained_too` the records also include drained ones (seq < head) whose
// slots have not been taken for a later lap yet: a reader whose view of the
// database ends before them needs no reopen to see them.
Result<RingScan> ScanRing(const std::string& path, uint64_t after_seq, bool drained_too = false);

}  // namespace blackbox::internal
