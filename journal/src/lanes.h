// Lanes: buffered events appended without a shared counter. Not installed.
//
// A ring (ring.h) hands out its positions with a CAS on one tail. From one
// core that is cheap; from two cores the tail's cache line moves between
// them on every append, and ring_bench measured the shared counter alone at
// 0.09-0.11x per core at 8 threads (a counter per thread: 0.98-0.99x). So
// with JournalOptions::ring_lanes a buffered append goes into one of several
// rings, the lanes (<stream>/RING.lane-<i>), each its own file, tail and
// cache lines, and is numbered later, when the drain moves it into RING
// (journal_ring.cpp). A thread keeps to one lane; two threads meet on one
// only when there are more threads than lanes.
//
// Order. Records of different lanes are put in order by a stamp, read from
// CLOCK_MONOTONIC in the append, under the lane's lock, and stored in the
// record's first 8 bytes: the move sorts by (stamp, lane, position). Stamps
// strictly increase along a lane and along a thread (a stamp that would not
// is raised by one), so each thread's events keep their order, and an
// append that starts after another one returned gets a later stamp (the
// clock is monotonic across cores, and an append takes tens of ns, far more
// than the clock's resolution of 1 ns), so causality is kept too: an event
// is never numbered before one that happened before it.
//
// The horizon. A move reads the clock (H; Horizon() fences it, so that no
// lane is read before it), then takes from each lane the prefix of its
// published records stamped below H, and numbers all of them in (stamp,
// lane, position) order. That keeps causality: if p happened before r (p's
// append returned before r's began) and r is taken, then r's stamp is below
// H, so p was published before r read its stamp, before the move read H:
// the move sees p, stamped lower, and numbers it first (or an earlier move
// did). An append still in flight is not waited for: nothing can have
// happened after it yet, so records of other lanes stamped after it may be
// numbered first. The numbering follows the stamps except around appends
// in flight, and causality always; a thread preempted (or stopped) in the
// middle of an append holds up only its own lane.
//
// Why a lock per lane rather than the lane's own lock-free ring alone: with
// two threads in one lane, positions and stamps could disagree (one thread
// reserves first, the other reads its clock first), and a prefix stamped
// below H could then leave out a record stamped below H that sits behind
// one stamped above it, and that happened before a record another lane
// gives now. Under the lock a lane's positions and stamps agree. The lock
// is a CAS on the lane's own cache line, the same one a ring's tail costs,
// but two threads share it only when they share the lane.
//
// Memory order: on x86-64 the vDSO reads the clock with a fence before
// rdtsc (its loads before it are done: an append's stamp is read after
// whatever told its thread that p had returned), and Horizon() puts an
// lfence after its own read (the lanes are read after it).
//
// The locks live in this process's memory, not in the files: after the
// writer died no append is in flight, and everything published is taken.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "blackbox/status.h"
#include "ring.h"

namespace blackbox::internal {

// <dir>/RING.lane-<i>, i from 0.
inline constexpr const char* kLanePrefix = "RING.lane-";
std::string LaneFile(size_t lane);
// The lanes' files in `dir` (any count, as a writer of other options left
// them), in lane order; their numbers in *lanes. Missing dir: none.
std::vector<std::string> ListLaneFiles(const std::string& dir, std::vector<size_t>* lanes);

// A record's stamp: its payload's first 8 bytes (0 when shorter).
uint64_t StampOf(std::span<const uint8_t> payload);
// The payload without its stamp.
std::span<const uint8_t> WithoutStamp(std::span<const uint8_t> payload);

// CLOCK_MONOTONIC in ns, raised to one more than the calling thread's last
// stamp when it would not exceed it.
uint64_t NextStamp();

// A RING record that stands for a lane's record (moved: numbered, in
// RING's order) has this flag, and a LaneRef for its payload. The event
// stays in its lane's slot until the drain has written it.
inline constexpr uint32_t kLaneFlag = 4;
struct LaneRef {
  uint32_t lane = 0;
  uint32_t unused = 0;
  uint64_t position = 0;
};
// The LaneRef of such a payload (lane = UINT32_MAX when it is of another
// size).
LaneRef LaneRefOf(std::span<const uint8_t> payload);

// A stream's lane files read back (ScanRing), by lane number.
using LaneScans = std::map<uint32_t, RingScan>;
// The record at `position` of `lane` in `lanes`, when it was read and is
// long enough for a stamp; null otherwise.
RingRecord* FindLaneRecord(LaneScans& lanes, uint32_t lane, uint64_t position);

// A lane record no RING record refers to: one its writer never moved.
struct LaneLeftover {
  uint64_t stamp = 0;
  uint32_t lane = 0;
  uint64_t position = 0;
  RingRecord* record = nullptr;  // in the LaneScans it came from
};
// The records of `lanes` from each lane's head on, past the last position
// that a record of `ring` (RING read back, drained records included or
// not) refers to: what a dead writer left unmoved, in the order the next
// open numbers it (stamp, lane, position). Records too short for a stamp
// are not events: counted in *unstamped.
std::vector<LaneLeftover> LaneLeftovers(const std::vector<RingRecord>& ring, LaneScans& lanes,
                                        uint64_t* unstamped);

// With RING unreadable nothing refers to the lane records the database has
// already (a kill between the drain's write and its release): removes from
// `leftovers` each whose event (its payload without the stamp) is one of
// `written`, the newest values of the database, and returns how many. A
// value stands for one record: of two identical events, one written and one
// not, one is kept.
size_t DropWritten(std::vector<LaneLeftover>* leftovers, const std::vector<std::string>& written);

struct LaneAppend {
  RingCode code = RingCode::kOk;
  uint32_t lane = 0;
  uint64_t position = 0;  // in its lane, when kOk
};

class Lanes {
 public:
  // Opens (or replaces) <dir>/RING.lane-0 .. -<count - 1>, each of
  // `per_lane` bytes (ring.h's Open: the same checks), numbered from 1.
  static Result<std::unique_ptr<Lanes>> Open(const std::string& dir, size_t count,
                                             const RingOptions& per_lane);
  ~Lanes();
  Lanes(const Lanes&) = delete;
  Lanes& operator=(const Lanes&) = delete;

  // Copies `payload` (stamped) into the calling thread's lane, or the next
  // idle one when another thread holds it. Never blocks: kFull when the
  // lane has no free slot, or every lane stayed busy through a few rounds.
  LaneAppend Append(std::span<const uint8_t> payload, uint32_t flags = 0);

  // The clock, read so that the lanes are read after it: a move takes the
  // records stamped below it (see the top of this file). Never 0.
  uint64_t Horizon() const;

  size_t count() const { return rings_.size(); }
  Ring& lane(size_t i) { return *rings_[i]; }
  const Ring& lane(size_t i) const { return *rings_[i]; }
  // The longest event a lane slot holds (its payload less the stamp).
  size_t payload_max() const { return rings_[0]->payload_max() - sizeof(uint64_t); }
  // Every lane drained (head == tail).
  bool Empty() const;

 private:
  struct alignas(64) State {
    std::atomic<uint64_t> value{0};  // the lane's lock: 0 free, 1 held
    uint64_t last = 0;               // the lane's last stamp (under the lock)
  };
  Lanes(std::vector<std::unique_ptr<Ring>> rings);
  std::vector<std::unique_ptr<Ring>> rings_;
  std::unique_ptr<State[]> states_;
};

}  // namespace blackbox::internal
