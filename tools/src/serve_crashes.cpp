#include "serve_crashes.h"

#include <algorithm>

namespace blackbox::tools {

Status ListServedCrashes(const MergedReader& reader, const BadRecordFn& on_bad,
                         std::vector<ServedCrash>* out) {
  MergedReader::Options scan;
  scan.on_bad = on_bad;
  Status s = reader.Scan(scan, [&](const Record& r) {
    const fb::Crash* crash = r.event->payload_as_Crash();
    if (crash == nullptr) return true;
    int64_t when = crash->crash_time_ns() != 0 ? crash->crash_time_ns() : r.event->time_ns();
    out->push_back({std::string(r.stream), r.seq, std::string(r.bytes), when});
    return true;
  });
  // The order of `blackbox crashes`: an in-process crash is journaled at the
  // next start, so it is placed by when it happened.
  std::stable_sort(out->begin(), out->end(), [](const ServedCrash& a, const ServedCrash& b) {
    return a.time_ns < b.time_ns;
  });
  return s;
}

}  // namespace blackbox::tools
