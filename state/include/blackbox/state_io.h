// Reading a journal root into its folded state, and writing the state file.
// The pure part (the state, the fold, the snapshot codec and the JSON) is in
// blackbox/state.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/journal.h"
#include "blackbox/state.h"
#include "blackbox/status.h"

namespace blackbox {

// Writes SystemStateJson to `path` atomically: a temp file in the same
// directory, fsync, rename, fsync of the directory. Mode 0600.
Status WriteStateFileAtomically(const std::string& path, const SystemState& state);

struct LoadStateOptions {
  // Time travel: fold only events with time_ns <= until_ns (0 = everything).
  int64_t until_ns = 0;
  // Only these streams (empty = all streams of the root).
  std::vector<std::string> streams;
  BadRecordFn on_bad;
};

// Folds a journal root: the newest usable snapshot, then the events after it
// in merged (time, stream, seq) order. Used by the tool, the watchdog and the
// recovery manager at startup.
// A snapshot is usable when it decodes, covers only selected streams, and
// (with until_ns) its timestamp_ns <= until_ns. Snapshots of every selected
// stream are considered; the one with the highest timestamp_ns wins. A root
// with no streams folds to the default state. A stream that cannot be opened
// is left out and reported through `on_bad` (see MergedReader); fails when
// the root cannot be read or no stream can be opened.
Result<SystemState> LoadState(std::string_view root, const LoadStateOptions& options = {});

}  // namespace blackbox
