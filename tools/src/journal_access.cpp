#include "journal_access.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

#include "blackbox/event.h"
#include "time_spec.h"
#include "tool_error.h"

namespace blackbox::tools {

std::unique_ptr<MergedReader> OpenJournal(const std::string& root,
                                          const std::vector<std::string>& streams) {
  auto listed = ListStreams(root);
  if (!listed.ok()) {
    Trouble(fmt::format("cannot read journal '{}': {}", root, listed.status().ToString()));
  }
  for (const auto& s : streams) {
    if (std::find(listed->begin(), listed->end(), s) == listed->end()) {
      BadArgument(fmt::format("journal '{}' has no stream '{}' (streams: {})", root, s,
                              fmt::join(*listed, ", ")));
    }
  }
  auto reader = MergedReader::Open(root, streams);
  if (!reader.ok()) {
    Trouble(fmt::format("cannot read journal '{}': {}", root, reader.status().ToString()));
  }
  // After Open, whose permission check must speak first.
  if (listed->empty()) Trouble(NoStreamsMessage(root));
  return std::move(reader.value());
}

std::string NoStreamsMessage(const std::string& root) {
  return fmt::format("no journal streams in {} (is --journal the directory the app writes?)", root);
}

size_t StreamColumnWidth(const MergedReader& reader) {
  size_t width = 8;
  for (const auto& r : reader.readers()) width = std::max(width, r->stream().size());
  return width;
}

std::string DefaultStream(const MergedReader& reader, std::string_view preferred) {
  if (!preferred.empty()) return std::string(preferred);
  const auto& readers = reader.readers();
  for (const auto& r : readers) {
    if (r->stream() == kAppStream) return r->stream();
  }
  return readers.size() == 1 ? readers[0]->stream() : std::string();
}

Bound ResolveBound(const std::string& text, std::string_view option, const MergedReader& reader,
                   std::string_view default_stream) {
  Bound bound;
  if (text.empty()) return bound;
  std::string why;
  auto spec = ParseTimeSpec(text, WallNowNs(), &why);
  if (!spec) BadArgument(fmt::format("{}: {}", option, why));
  bound.set = true;
  if (const int64_t* ns = std::get_if<int64_t>(&*spec)) {
    bound.at.time_ns = *ns;
    return bound;
  }
  SeqRef ref = std::get<SeqRef>(*spec);
  if (ref.stream.empty()) ref.stream = DefaultStream(reader, default_stream);
  if (ref.stream.empty()) {
    BadArgument(fmt::format("{} {}: which stream? write STREAM:{} or pass --stream", option, text,
                            ref.seq));
  }
  const Reader* stream = nullptr;
  for (const auto& r : reader.readers()) {
    if (r->stream() == ref.stream) stream = r.get();
  }
  if (stream == nullptr) {
    for (const auto& [name, status] : reader.unreadable()) {
      if (name == ref.stream) {
        Trouble(fmt::format("{} {}: stream '{}' cannot be opened: {}", option, text, name,
                            status.ToString()));
      }
    }
    BadArgument(fmt::format("{} {}: the journal has no stream '{}'", option, text, ref.stream));
  }
  bool found = false;
  ScanOptions scan;
  scan.from_seq = ref.seq;
  scan.until_seq = ref.seq;
  Status s = stream->Scan(scan, [&](const Record& r) {
    bound.at = Position{r.event->time_ns(), std::string(r.stream), r.seq};
    found = true;
    return false;
  });
  if (!s.ok()) Trouble(fmt::format("cannot read stream '{}': {}", ref.stream, s.ToString()));
  if (!found) {
    BadArgument(fmt::format("{} {}: stream '{}' holds no event {} (it holds {}..{})", option, text,
                            ref.stream, ref.seq, stream->first_seq(), stream->last_seq()));
  }
  bound.exact = true;
  return bound;
}

bool AtOrAfter(const Record& r, const Bound& b) {
  if (!b.set) return true;
  if (!b.exact) return r.event->time_ns() >= b.at.time_ns;
  return std::tuple(r.event->time_ns(), r.stream, r.seq) >=
         std::tuple(b.at.time_ns, std::string_view(b.at.stream), b.at.seq);
}

bool AtOrBefore(const Record& r, const Bound& b) {
  if (!b.set) return true;
  if (!b.exact) return r.event->time_ns() <= b.at.time_ns;
  return std::tuple(r.event->time_ns(), r.stream, r.seq) <=
         std::tuple(b.at.time_ns, std::string_view(b.at.stream), b.at.seq);
}

BadRecordFn DamageReport::callback() {
  return [this](const BadRecord& bad) {
    ++count_;
    records_ += bad.records;
    // seq 0: the whole stream, or a place no seq names.
    fmt::print(stderr, "blackbox: warning: skipped {}{}: {}\n", bad.stream,
               bad.seq == 0 ? "" : fmt::format(" seq {}", bad.seq), bad.reason);
  };
}

void DamageReport::Summarize() const {
  if (count_ > 0) {
    fmt::print(stderr,
               "blackbox: {} damaged record(s) skipped, in {} place(s); run `blackbox verify`\n",
               records_, count_);
  }
}

}  // namespace blackbox::tools
