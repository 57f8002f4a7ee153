// K-way merge of every stream of a root in (time_ns, stream, seq) order.
#include <fmt/format.h>

#include <algorithm>
#include <queue>

#include "cursor.h"
#include "internal.h"
#include "reader_impl.h"

namespace blackbox {

MergedReader::MergedReader(std::string root, std::vector<std::string> only, JournalOptions options)
    : root_(std::move(root)), only_(std::move(only)), options_(options) {}
MergedReader::~MergedReader() = default;

Result<std::unique_ptr<MergedReader>> MergedReader::Open(std::string_view root,
                                                         const std::vector<std::string>& streams,
                                                         const JournalOptions& options) {
  std::unique_ptr<MergedReader> m(new MergedReader(std::string(root), streams, options));
  if (Status s = m->Refresh(); !s.ok()) return s;
  return m;
}

Status MergedReader::Refresh() {
  if (options_.check_permissions) {
    if (Status s = CheckRootPermissions(root_); !s.ok()) return s;
  }
  std::vector<std::string> names = only_;
  if (names.empty()) {
    auto listed = ListStreams(root_);
    if (!listed.ok()) return listed.status();
    names = std::move(listed.value());
  }
  std::vector<std::unique_ptr<Reader>> readers;
  std::vector<std::pair<std::string, Status>> unreadable;
  for (const auto& name : names) {
    auto r = Reader::Open(root_, name, options_);
    if (!r.ok()) {
      unreadable.emplace_back(name, r.status());
      continue;
    }
    readers.push_back(std::move(r.value()));
  }
  // One broken stream must not hide the others; with none readable there is
  // nothing to show, and the reason is the error.
  if (readers.empty() && !unreadable.empty()) return unreadable.front().second;
  readers_ = std::move(readers);
  unreadable_ = std::move(unreadable);
  return Status::Ok();
}

Status MergedReader::RefreshRings() {
  for (const auto& reader : readers_) {
    if (!reader->has_ring() || reader->RefreshRing()) continue;
    // A reader whose reopen failed has no database: it must not stay listed.
    if (!reader->Refresh().ok()) return Refresh();
  }
  return Status::Ok();
}

bool MergedReader::has_rings() const {
  return std::any_of(readers_.begin(), readers_.end(),
                     [](const auto& reader) { return reader->has_ring(); });
}

Status MergedReader::Scan(const Options& options, const RecordFn& fn) const {
  std::vector<std::unique_ptr<internal::Cursor>> cursors;
  for (const auto& [stream, status] : unreadable_) {
    if (!options.on_bad || std::find(unreadable_told_.begin(), unreadable_told_.end(), stream) !=
                               unreadable_told_.end()) {
      continue;
    }
    unreadable_told_.push_back(stream);
    options.on_bad(
        BadRecord{stream, 0, fmt::format("cannot open the stream: {}", status.ToString()), 0});
  }
  for (const auto& reader : readers_) {
    auto checked = std::find_if(logs_checked_.begin(), logs_checked_.end(),
                                [&](const LogCheck& c) { return c.stream == reader->stream(); });
    if (options.on_bad && checked == logs_checked_.end()) {
      LogCheck check{reader->stream()};
      auto logs = reader->CheckLogs();
      if (!logs.ok()) {
        options.on_bad(BadRecord{reader->stream(), 0, logs.status().ToString(), 0});
      } else if (logs.value()) {
        options.on_bad(DescribeLogDamage(reader->stream(), *logs.value()));
        check.first_seq = logs.value()->first_seq;
        check.last_seq = logs.value()->last_seq;
      }
      logs_checked_.push_back(std::move(check));
      checked = logs_checked_.end() - 1;
    }
    std::vector<internal::SeqRange> reported;
    if (checked != logs_checked_.end() && checked->first_seq <= checked->last_seq) {
      reported.push_back({checked->first_seq, checked->last_seq});
    }
    ScanOptions so;
    so.since_ns = options.since_ns;
    so.until_ns = options.until_ns;
    so.on_bad = options.on_bad;
    for (const auto& [stream, seq] : options.after) {
      if (stream == reader->stream()) so.from_seq = seq + 1;
    }
    const Reader::Impl& impl = *reader->impl_;
    // Past the database's last record (a follower's polls): the ring alone.
    const bool ring_only = so.from_seq > impl.DbLastSeq();
    cursors.push_back(std::make_unique<internal::Cursor>(
        impl.db.get(), impl.events_cf, impl.stream, so, std::move(reported), impl.ring, ring_only));
  }
  // Min-heap on the current record of each cursor.
  auto later = [&](size_t a, size_t b) {
    const Record& x = cursors[a]->record();
    const Record& y = cursors[b]->record();
    if (x.event->time_ns() != y.event->time_ns()) return x.event->time_ns() > y.event->time_ns();
    if (x.stream != y.stream) return x.stream > y.stream;
    return x.seq > y.seq;
  };
  std::priority_queue<size_t, std::vector<size_t>, decltype(later)> heap(later);
  for (size_t i = 0; i < cursors.size(); ++i) {
    if (cursors[i]->Valid()) heap.push(i);
  }
  while (!heap.empty()) {
    size_t i = heap.top();
    heap.pop();
    if (!fn(cursors[i]->record())) break;
    cursors[i]->Next();
    if (cursors[i]->Valid()) heap.push(i);
  }
  return Status::Ok();
}

}  // namespace blackbox
