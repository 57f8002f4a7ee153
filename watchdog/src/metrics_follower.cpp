#include "metrics_follower.h"

#include "blackbox/journal.h"

namespace blackbox::metrics {

Status JournalFollower::CatchUp() {
  Result<std::vector<std::string>> streams = ListStreams(root_);
  if (!streams.ok()) return streams.status();
  JournalOptions options;
  options.create_if_missing = false;
  for (const std::string& stream : streams.value()) {
    Result<std::unique_ptr<Reader>> reader = Reader::Open(root_, stream, options);
    if (!reader.ok()) return reader.status();
    uint64_t& last = folded_[stream];
    ScanOptions scan;
    scan.from_seq = last + 1;
    Status st = reader.value()->Scan(scan, [&](const Record& record) {
      FoldMetrics(state_, *record.event, record.stream);
      last = record.seq;
      return true;
    });
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace blackbox::metrics
