#include "serve_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "event_json.h"
#include "journal_access.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

[[noreturn]] void Unreadable(const std::string& root, const Status& s) {
  Trouble(fmt::format("cannot read journal '{}': {}", root, s.ToString()));
}

BadRecordFn Counter(uint64_t* count) {
  return [count](const BadRecord& bad) { *count += bad.records > 0 ? bad.records : 1; };
}

// A Config entry of the watchdog's limits, as a number.
void TakeLimits(const fb::Config& cfg, std::optional<double>* max_memory_mb,
                std::optional<double>* max_cpu_percent) {
  if (!cfg.entries()) return;
  for (const fb::ConfigEntry* e : *cfg.entries()) {
    if (!e->key() || !e->value()) continue;
    std::string_view key = e->key()->string_view();
    if (key != "max_memory_mb" && key != "max_cpu_percent") continue;
    char* stop = nullptr;
    std::string value(e->value()->string_view());
    double v = std::strtod(value.c_str(), &stop);
    if (stop == value.c_str() || *stop != '\0') continue;
    *(key == "max_memory_mb" ? max_memory_mb : max_cpu_percent) = v;
  }
}

}  // namespace

void JournalModel::CatchUp() {
  if (!reader_) return ReadAll();
  if (Status s = reader_->Refresh(); !s.ok()) Unreadable(root_, s);
  uint64_t damaged = 0;
  MergedReader::Options scan;
  for (const auto& [name, stream] : streams_) scan.after.emplace_back(name, stream.last_seq);
  scan.on_bad = Counter(&damaged);
  bool in_order = true;
  Status s = reader_->Scan(scan, [&](const Record& r) {
    if (Key(r.event->time_ns(), r.stream, r.seq) < newest_) {
      in_order = false;
      return false;
    }
    Add(r);
    return true;
  });
  if (!s.ok()) Unreadable(root_, s);
  if (!in_order) return ReadAll();
  damaged_ += damaged;
  state_damaged_ += damaged;
}

void JournalModel::ReadAll() {
  reader_.reset();
  streams_.clear();
  newest_ = Key();
  max_memory_mb_.reset();
  max_cpu_percent_.reset();
  texted_.clear();
  text_bytes_ = 0;
  builder_ = IncidentBuilder();
  incidents_ = Incidents();
  incidents_current_ = false;
  state_ = SystemState();
  checkpoints_.clear();
  folded_ = 0;
  state_after_.clear();
  damaged_ = 0;
  state_damaged_ = 0;

  // Kept only once read whole: a failure leaves the next call to start over.
  std::unique_ptr<MergedReader> reader = OpenJournal(root_);
  // With no snapshot anywhere LoadState folds every event from the start:
  // the same scan gives it.
  bool snapshots = false;
  for (const std::unique_ptr<Reader>& stream : reader->readers()) {
    Result<std::optional<Snapshot>> latest = stream->LatestSnapshot();
    if (!latest.ok() || latest.value()) snapshots = true;
  }
  fold_ = !snapshots;
  from_first_event_ = !snapshots;
  MergedReader::Options scan;
  scan.on_bad = Counter(&damaged_);
  Status s = reader->Scan(scan, [&](const Record& r) {
    Add(r);
    return true;
  });
  if (!s.ok()) Unreadable(root_, s);
  if (!snapshots) {
    state_damaged_ = damaged_;
    reader_ = std::move(reader);
    return;
  }
  LoadStateOptions options;
  options.on_bad = Counter(&state_damaged_);
  Result<SystemState> state = LoadState(root_, options);
  if (!state.ok()) Unreadable(root_, state.status());
  state_ = std::move(state.value());
  // As LoadState positions each reader: after its origin's covered seq.
  for (const std::unique_ptr<Reader>& stream : reader->readers()) {
    auto it = state_.covered.find(StreamOrigin(stream->stream()));
    if (it != state_.covered.end()) state_after_[stream->stream()] = it->second;
  }
  fold_ = true;
  reader_ = std::move(reader);
}

void JournalModel::Add(const Record& r) {
  auto it = streams_.find(r.stream);
  if (it == streams_.end()) it = streams_.emplace(std::string(r.stream), Stream()).first;
  Stream& stream = it->second;
  const int64_t t = r.event->time_ns();
  stream.last_seq = std::max(stream.last_seq, r.seq);
  if (t < stream.last_time_ns) stream.in_time_order = false;
  stream.last_time_ns = std::max(stream.last_time_ns, t);
  Key key(t, r.stream, r.seq);
  if (newest_ < key) newest_ = std::move(key);

  const fb::Payload type = r.event->payload_type();
  if (const fb::Health* h = r.event->payload_as_Health()) {
    stream.health.push_back({t, r.seq, static_cast<float>(h->rss_bytes() / 1048576.0),
                             static_cast<float>(h->cpu_percent())});
  } else {
    stream.marks.push_back({t, r.seq, type});
    std::string& text = stream.text[r.seq];
    AppendEventJson(text, *r.event, r.stream, r.seq);
    text_bytes_ += text.size();
    texted_.emplace_back(&stream, r.seq);
    while (text_bytes_ > kMarkTextBudget) {
      auto [oldest, seq] = texted_.front();
      texted_.pop_front();
      auto gone = oldest->text.find(seq);
      text_bytes_ -= gone->second.size();
      oldest->text.erase(gone);
    }
    if (const fb::Config* cfg = r.event->payload_as_Config()) {
      TakeLimits(*cfg, &max_memory_mb_, &max_cpu_percent_);
    }
  }
  builder_.Add(r.stream, r.seq, *r.event);
  if (type == fb::Payload::Crash) {
    incidents_.crash_bytes.emplace(std::pair{std::string(r.stream), r.seq}, std::string(r.bytes));
  }
  incidents_current_ = false;
  if (fold_) {
    auto after = state_after_.find(r.stream);
    if (after == state_after_.end() || r.seq > after->second) {
      Fold(state_, *r.event, r.stream, r.seq);
      if (from_first_event_ && ++folded_ % kCheckpointEvents == 0) {
        Checkpoint c{state_, {}};
        for (const auto& [name, kept] : streams_) c.after.emplace_back(name, kept.last_seq);
        checkpoints_.push_back(std::move(c));
      }
    }
  }
}

std::optional<SystemState> JournalModel::StateAt(int64_t until_ns) const {
  if (!from_first_event_ || !in_time_order()) return std::nullopt;
  // In time order the events up to until_ns come first in the merged
  // order: a checkpoint of none later is a prefix of them.
  const Checkpoint* from = nullptr;
  for (const Checkpoint& c : checkpoints_) {
    if (c.state.timestamp_ns > until_ns) break;
    from = &c;
  }
  SystemState state = from ? from->state : SystemState();
  MergedReader::Options scan;
  if (from) scan.after = from->after;
  Status s = reader_->Scan(scan, [&](const Record& r) {
    if (r.event->time_ns() > until_ns) return false;
    Fold(state, *r.event, r.stream, r.seq);
    return true;
  });
  if (!s.ok()) Unreadable(root_, s);
  return state;
}

bool JournalModel::in_time_order() const {
  return std::all_of(streams_.begin(), streams_.end(),
                     [](const auto& entry) { return entry.second.in_time_order; });
}

const Incidents& JournalModel::incidents() {
  if (!incidents_current_) {
    IncidentBuilder finished = builder_;  // Finish() hands its incidents over
    incidents_.list = finished.Finish();
    incidents_current_ = true;
  }
  return incidents_;
}

JournalModel& ModelFor(const std::string& root) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<JournalModel>, std::less<>> models;
  std::lock_guard lock(mu);
  std::unique_ptr<JournalModel>& m = models[root];
  if (!m) m = std::make_unique<JournalModel>(root);
  return *m;
}

}  // namespace blackbox::tools
