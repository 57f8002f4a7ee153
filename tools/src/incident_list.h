// The incidents of a journal with the crash records they were made of, and
// their JSON: what `blackbox crashes --json` prints per line and what
// `blackbox serve` answers at /api/crashes.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "blackbox/journal.h"
#include "event_json.h"
#include "incidents.h"

namespace blackbox::tools {

// Every incident of the journal, with the crash records it was made of
// copied out (records are only valid inside a scan).
struct Incidents {
  std::vector<Incident> list;
  std::map<std::pair<std::string, uint64_t>, std::string> crash_bytes;  // (stream, seq) -> event
  const fb::Event* Primary(const Incident& i) const {
    auto it = crash_bytes.find({i.primary_stream, i.primary_seq});
    return it == crash_bytes.end() ? nullptr : fb::GetEvent(it->second.data());
  }
};

// Scans `reader` whole; damaged records go to `on_bad`. Returns a non-OK
// status when the journal cannot be read (what was read is in `out`).
Status ListIncidents(const MergedReader& reader, const BadRecordFn& on_bad, Incidents* out);

// One incident as `blackbox crashes --json` prints it.
Json IncidentToJson(const Incidents& all, const Incident& i);

}  // namespace blackbox::tools
