// Opening a journal root for reading, and turning --since/--until/--at into
// positions in its merged timeline.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/journal.h"

namespace blackbox::tools {

// Opens every stream of `root` (or only `streams`) read-only. Throws
// ToolError: exit 2 for a stream name the journal does not have, exit 1 when
// the journal cannot be read (with RocksDB's or the filesystem's reason) or
// holds no stream at all.
std::unique_ptr<MergedReader> OpenJournal(const std::string& root,
                                          const std::vector<std::string>& streams = {});

// "no journal streams in ROOT …": a root that exists but holds no stream is
// almost always the wrong directory, not an empty journal.
std::string NoStreamsMessage(const std::string& root);

// The width of the widest stream name (at least 8), to align columns.
size_t StreamColumnWidth(const MergedReader& reader);

// A place in the merged (time, stream, seq) order.
struct Position {
  int64_t time_ns = 0;
  std::string stream;
  uint64_t seq = 0;
};

// A --since/--until/--at argument, resolved. A time bounds by time only; a
// sequence number bounds by that event's exact place in the timeline.
struct Bound {
  bool set = false;
  bool exact = false;  // a sequence number: compare (time, stream, seq)
  Position at;
};

// Parses `text` (see time_spec.h) for `option` ("--since", …). A bare
// sequence number belongs to `default_stream`. Throws ToolError (exit 2)
// when the text is not a time, or names an event the journal does not hold.
Bound ResolveBound(const std::string& text, std::string_view option, const MergedReader& reader,
                   std::string_view default_stream);

// True when `record` is at or after / at or before the bound (an unset bound
// admits everything).
bool AtOrAfter(const Record& record, const Bound& bound);
bool AtOrBefore(const Record& record, const Bound& bound);

// The stream a bare sequence number refers to: `preferred` when given, else
// "app" when present, else the only stream; empty when ambiguous.
std::string DefaultStream(const MergedReader& reader, std::string_view preferred);

// Warns on stderr about each problem a reader met (a damaged record, block or
// file, records dropped from a damaged log, a gap, a stream that cannot be
// opened) and counts them.
class DamageReport {
 public:
  BadRecordFn callback();
  // "N damaged record(s) skipped, in P place(s); run `blackbox verify`" when
  // there were any.
  void Summarize() const;
  uint64_t count() const { return count_; }  // problems reported

 private:
  uint64_t count_ = 0;
  uint64_t records_ = 0;  // records they made unreadable, as far as known
};

}  // namespace blackbox::tools
