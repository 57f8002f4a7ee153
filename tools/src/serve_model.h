// What `blackbox serve` keeps of a journal between requests: the reader, the
// health samples, where every other event is, the incidents and the folded
// state. The first CatchUp reads the whole journal; each later one reads only
// the events journaled since (MergedReader::Options::after), so a month of
// journal is scanned once, not on every redraw of the page.
//
// Invariant: everything kept is what one scan of the journal in merged
// (time, stream, seq) order would give. Events read later are folded after
// the earlier ones, which is that order only when each of them comes after
// the newest event read before. When one does not (a crash captured by the
// app and journaled by its next run carries the crash's time, older than the
// watchdog's records of the same death), the model is read again from the
// start.
//
// The state is LoadState's: when no stream holds a snapshot it is the fold of
// the same scan; otherwise LoadState (the newest usable snapshot and the
// events after it) once, and the events read since folded onto it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "blackbox/journal.h"
#include "blackbox/state_io.h"
#include "incident_list.h"
#include "incidents.h"

namespace blackbox::tools {

struct HealthSample {
  int64_t t;
  uint64_t seq;
  float rss_mb;
  float cpu;
};

// An event other than a health sample: where it is and of what type, so that
// /api/events finds the newest of some types without a scan.
struct EventMark {
  int64_t t;
  uint64_t seq;
  fb::Payload type;
};

class JournalModel {
 public:
  struct Stream {
    // Both in seq order. A deque grows in blocks, never holding twice the
    // samples while it moves them.
    std::deque<HealthSample> health;
    std::deque<EventMark> marks;
    // The replay --json text of the newest marks (seq -> text), within
    // kMarkTextBudget over all streams: reading an event back costs a new
    // RocksDB iterator, which sorts the unflushed part of the stream.
    std::map<uint64_t, std::string> text;
    uint64_t last_seq = 0;
    int64_t last_time_ns = 0;
    bool in_time_order = true;  // time_ns never decreases with seq
  };

  // Events folded between two checkpoints of the state.
  static constexpr uint64_t kCheckpointEvents = 16384;
  // Bytes of mark text kept, over all streams.
  static constexpr size_t kMarkTextBudget = 8 << 20;

  explicit JournalModel(std::string root) : root_(std::move(root)) {}

  // Serializes requests: hold it around CatchUp and every read of the model.
  std::mutex mu;

  // Reads what was journaled since the last call (the first call reads
  // everything). Throws ToolError (kExitTrouble) when the journal cannot be
  // read.
  void CatchUp();

  // REQUIRES: CatchUp() has succeeded.
  const MergedReader& reader() const { return *reader_; }
  const std::map<std::string, Stream, std::less<>>& streams() const { return streams_; }
  // True when every stream's times rise with its seqs: the merged order is
  // then the order of (time, stream, seq), and a window or a type filter
  // picks the same events from the kept marks as a scan would.
  bool in_time_order() const;
  // Every incident, as ListIncidents over the whole journal gives them.
  const Incidents& incidents();
  // As LoadState(root) gives it now.
  const SystemState& state() const { return state_; }
  // As LoadState with until_ns gives it (the events at or before until_ns),
  // from the newest checkpoint before that moment and the events after it;
  // nullopt when the model cannot tell: its fold began at a snapshot, or a
  // stream's times go back (the events up to a moment are then not a prefix
  // of the merged order). Throws ToolError when the journal cannot be read.
  std::optional<SystemState> StateAt(int64_t until_ns) const;
  // Damaged records the scans met (as a scan of the whole journal counts
  // them), and those of the state's fold (fewer when it began at a snapshot).
  uint64_t damaged() const { return damaged_; }
  uint64_t state_damaged() const { return state_damaged_; }
  // The watchdog's configured limits, the last journaled.
  std::optional<double> max_memory_mb() const { return max_memory_mb_; }
  std::optional<double> max_cpu_percent() const { return max_cpu_percent_; }

 private:
  using Key = std::tuple<int64_t, std::string, uint64_t>;
  void ReadAll();
  void Add(const Record& r);

  std::string root_;
  std::unique_ptr<MergedReader> reader_;
  std::map<std::string, Stream, std::less<>> streams_;
  Key newest_;  // the largest (time, stream, seq) read
  std::optional<double> max_memory_mb_, max_cpu_percent_;
  // The marks with text, oldest first, and the bytes of their text.
  std::deque<std::pair<Stream*, uint64_t>> texted_;
  size_t text_bytes_ = 0;
  IncidentBuilder builder_;
  Incidents incidents_;  // crash_bytes kept as read; list finished on demand
  bool incidents_current_ = false;
  SystemState state_;
  // The state every kCheckpointEvents events, with each stream's last seq
  // folded into it; only while the fold began at the first event.
  struct Checkpoint {
    SystemState state;
    std::vector<std::pair<std::string, uint64_t>> after;
  };
  std::vector<Checkpoint> checkpoints_;
  bool from_first_event_ = false;
  uint64_t folded_ = 0;
  bool fold_ = true;  // fold while reading (false while LoadState is due)
  // Per stream, the seq up to which state_ already covers it.
  std::map<std::string, uint64_t, std::less<>> state_after_;
  uint64_t damaged_ = 0;
  uint64_t state_damaged_ = 0;
};

// The model of `root`, one per root for the life of the process.
JournalModel& ModelFor(const std::string& root);

}  // namespace blackbox::tools
