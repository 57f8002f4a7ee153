// The crashes `blackbox serve` lists: the one place the server asks which
// deaths there were, so a different notion (one incident per death) can
// replace it here alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "blackbox/journal.h"

namespace blackbox::tools {

struct ServedCrash {
  std::string stream;
  uint64_t seq = 0;
  std::string bytes;    // the event, copied out of the scan
  int64_t time_ns = 0;  // when it happened (the crash's own time when known)
  const fb::Event& event() const { return *fb::GetEvent(bytes.data()); }
};

// Every crash event of `reader`, in the order `blackbox crashes` numbers
// them (by when the crash happened). Damaged records go to `on_bad`.
// Returns a non-OK status when the journal cannot be read.
Status ListServedCrashes(const MergedReader& reader, const BadRecordFn& on_bad,
                         std::vector<ServedCrash>* out);

}  // namespace blackbox::tools
