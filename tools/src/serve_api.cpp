#include "serve_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <bitset>
#include <charconv>
#include <cmath>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "blackbox/state.h"
#include "incident_list.h"
#include "journal_access.h"
#include "serve_model.h"
#include "state_load.h"
#include "time_spec.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

constexpr uint64_t kDefaultEventLimit = 10000;
constexpr uint64_t kDefaultPoints = 600;
constexpr uint64_t kMaxPoints = 10000;
constexpr int64_t kSecondsBeforeCrash = 10;

// Every value of `name`, comma-separated lists split.
std::vector<std::string> Values(const QueryParams& q, const std::string& name) {
  std::vector<std::string> out;
  auto [first, last] = q.equal_range(name);
  for (auto it = first; it != last; ++it) {
    std::string_view rest = it->second;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      if (!item.empty()) out.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

// The single value of `name` ("" when absent); given twice is an error.
std::string Single(const QueryParams& q, const std::string& name) {
  if (q.count(name) > 1) BadArgument(fmt::format("{}: given more than once", name));
  auto it = q.find(name);
  return it == q.end() ? "" : it->second;
}

uint64_t WholeNumberParam(const QueryParams& q, const std::string& name, uint64_t fallback,
                          uint64_t low, uint64_t high) {
  std::string text = Single(q, name);
  if (text.empty()) return fallback;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < low || value > high) {
    BadArgument(
        fmt::format("{}: must be a whole number from {} to {}, not '{}'", name, low, high, text));
  }
  return value;
}

// Counts damaged records quietly (a server answering many requests would
// repeat the same warning on every one).
struct DamageCount {
  uint64_t records = 0;
  BadRecordFn callback() {
    return [this](const BadRecord& bad) { records += bad.records > 0 ? bad.records : 1; };
  }
};

void CheckWindow(const Bound& since, const Bound& until, const std::string& since_text,
                 const std::string& until_text) {
  if (since.set && until.set && since.at.time_ns > until.at.time_ns) {
    BadArgument(fmt::format("since {} is after until {}", since_text, until_text));
  }
}

[[noreturn]] void Unreadable(const std::string& root, const Status& s) {
  Trouble(fmt::format("cannot read journal '{}': {}", root, s.ToString()));
}

}  // namespace

namespace {

// One event to answer with, found in the model.
struct Pick {
  int64_t t;
  const std::string* stream;
  uint64_t seq;
  bool operator<(const Pick& o) const {
    return std::tie(t, *stream, seq) < std::tie(o.t, *o.stream, o.seq);
  }
};

// Per stream, the newest `limit` marks and health samples that `keep` admits,
// all of them merged in (time, stream, seq) order and cut to the newest
// `limit`. `matched` gets how many `keep` admitted in all.
// REQUIRES: model.in_time_order().
template <typename Keep>
std::vector<Pick> NewestPicks(const JournalModel& model, uint64_t limit, bool health, Keep keep,
                              uint64_t* matched) {
  std::vector<Pick> picks;
  for (const auto& [name, stream] : model.streams()) {
    uint64_t taken = 0;
    for (auto it = stream.marks.rbegin(); it != stream.marks.rend(); ++it) {
      if (!keep(it->t, it->type)) continue;
      ++*matched;
      if (taken < limit) picks.push_back({it->t, &name, it->seq}), ++taken;
    }
    if (!health) continue;
    taken = 0;
    for (auto it = stream.health.rbegin(); it != stream.health.rend(); ++it) {
      if (!keep(it->t, fb::Payload::Health)) continue;
      ++*matched;
      if (taken < limit) picks.push_back({it->t, &name, it->seq}), ++taken;
    }
  }
  std::sort(picks.begin(), picks.end());
  if (picks.size() > limit) picks.erase(picks.begin(), picks.end() - static_cast<long>(limit));
  return picks;
}

// The events of `picks` as replay --json objects, in that order: the text
// the model keeps, else read from the stream, once per run of nearby seqs.
Json ReadPicks(const std::string& root, const JournalModel& model, const std::vector<Pick>& picks) {
  // A gap of up to this many seqs is read through rather than sought over.
  constexpr uint64_t kReadThrough = 64;
  std::vector<std::string> text(picks.size());
  std::map<std::string_view, std::vector<std::pair<uint64_t, size_t>>> wanted;  // seq, index
  for (size_t i = 0; i < picks.size(); ++i) {
    const JournalModel::Stream& stream = model.streams().find(*picks[i].stream)->second;
    auto kept = stream.text.find(picks[i].seq);
    if (kept != stream.text.end()) {
      text[i] = kept->second;
    } else {
      wanted[*picks[i].stream].push_back({picks[i].seq, i});
    }
  }
  for (auto& [name, list] : wanted) {
    std::sort(list.begin(), list.end());
    const Reader* reader = nullptr;
    for (const std::unique_ptr<Reader>& r : model.reader().readers()) {
      if (r->stream() == name) reader = r.get();
    }
    if (reader == nullptr) continue;
    size_t next = 0;
    while (next < list.size()) {
      size_t last = next;
      while (last + 1 < list.size() && list[last + 1].first - list[last].first <= kReadThrough) {
        ++last;
      }
      ScanOptions scan;
      scan.from_seq = list[next].first;
      scan.until_seq = list[last].first;
      Status s = reader->Scan(scan, [&](const Record& r) {
        while (next <= last && list[next].first < r.seq) ++next;
        if (next <= last && list[next].first == r.seq) {
          AppendEventJson(text[list[next].second], *r.event, r.stream, r.seq);
          ++next;
        }
        return next <= last;
      });
      if (!s.ok()) Unreadable(root, s);
      next = last + 1;
    }
  }
  Json events = Json::array();
  for (const std::string& one : text) {
    if (!one.empty()) events.push_back(Json::parse(one));
  }
  return events;
}

}  // namespace

Json ServeEvents(const std::string& root, const QueryParams& q) {
  std::vector<std::string> streams = Values(q, "stream");
  std::bitset<256> types;
  std::vector<std::string> type_names = Values(q, "type");
  if (type_names.empty()) types.set();
  for (const std::string& name : type_names) {
    fb::Payload type = PayloadFromName(name);
    if (type == fb::Payload::NONE) {
      BadArgument(fmt::format(
          "type: unknown event type '{}' (types: error, crash, health, lifecycle, restart, "
          "callback, gauge, log, limit, config)",
          name));
    }
    types.set(static_cast<size_t>(type));
  }
  const uint64_t limit =
      WholeNumberParam(q, "limit", kDefaultEventLimit, 0, std::numeric_limits<uint32_t>::max());
  std::string since_text = Single(q, "since");
  std::string until_text = Single(q, "until");
  if (streams.empty() && since_text.empty() && until_text.empty()) {
    // The newest of some types over every stream (what the page asks for):
    // from the model's marks, reading only the events answered.
    JournalModel& model = ModelFor(root);
    std::lock_guard lock(model.mu);
    model.CatchUp();
    if (model.in_time_order()) {
      uint64_t matched = 0;
      std::vector<Pick> picks = NewestPicks(
          model, limit, types.test(static_cast<size_t>(fb::Payload::Health)),
          [&](int64_t, fb::Payload type) { return types.test(static_cast<size_t>(type)); },
          &matched);
      Json out = Json::object();
      out["events"] = ReadPicks(root, model, picks);
      out["truncated"] = matched > picks.size();
      out["damaged"] = model.damaged();
      return out;
    }
  }
  std::unique_ptr<MergedReader> reader = OpenJournal(root, streams);
  std::string default_stream = streams.size() == 1 ? streams[0] : "";
  Bound since = ResolveBound(since_text, "since", *reader, default_stream);
  Bound until = ResolveBound(until_text, "until", *reader, default_stream);
  CheckWindow(since, until, since_text, until_text);

  DamageCount damage;
  std::deque<std::string> kept;  // the newest `limit` lines
  bool truncated = false;
  MergedReader::Options scan;
  scan.since_ns = since.set ? since.at.time_ns : 0;
  scan.until_ns = until.set ? until.at.time_ns : 0;
  scan.on_bad = damage.callback();
  std::string line;
  Status s = reader->Scan(scan, [&](const Record& r) {
    if (!types.test(static_cast<size_t>(r.event->payload_type()))) return true;
    if (!AtOrAfter(r, since) || !AtOrBefore(r, until)) return true;
    if (limit == 0) {
      truncated = true;
      return true;
    }
    line.clear();
    AppendEventJson(line, *r.event, r.stream, r.seq);
    if (kept.size() == limit) {
      kept.pop_front();
      truncated = true;
    }
    kept.push_back(line);
    return true;
  });
  if (!s.ok()) Unreadable(root, s);
  Json events = Json::array();
  for (const std::string& text : kept) events.push_back(Json::parse(text));
  Json out = Json::object();
  out["events"] = std::move(events);
  out["truncated"] = truncated;
  out["damaged"] = damage.records;
  return out;
}

Json ServeState(const std::string& root, const QueryParams& q) {
  std::string at = Single(q, "at");
  if (at.empty()) {
    JournalModel& model = ModelFor(root);
    std::lock_guard lock(model.mu);
    model.CatchUp();
    Json out = Json::parse(SystemStateJson(model.state(), -1));
    out["damaged"] = model.state_damaged();
    return out;
  }
  {
    // From the model's checkpoints when it can tell; a moment before the
    // journal gets LoadStateAt's error.
    JournalModel& model = ModelFor(root);
    std::lock_guard lock(model.mu);
    model.CatchUp();
    Bound bound = ResolveBound(at, "at", model.reader(), "");
    std::optional<SystemState> state;
    if (bound.at.time_ns > 0) state = model.StateAt(bound.at.time_ns);
    if (state && state->timestamp_ns != 0) {
      Json out = Json::parse(SystemStateJson(*state, -1));
      out["damaged"] = model.state_damaged();
      return out;
    }
  }
  uint64_t damaged = 0;
  SystemState state = LoadStateAt(root, at, "at", &damaged);
  Json out = Json::parse(SystemStateJson(state, -1));
  out["damaged"] = damaged;
  return out;
}

Json ServeCrashes(const std::string& root) {
  JournalModel& model = ModelFor(root);
  std::lock_guard lock(model.mu);
  model.CatchUp();
  const Incidents& all = model.incidents();
  Json list = Json::array();
  for (const Incident& i : all.list) list.push_back(IncidentToJson(all, i));
  Json out = Json::object();
  out["crashes"] = std::move(list);
  out["damaged"] = model.damaged();
  return out;
}

Json ServeCrash(const std::string& root, const std::string& number) {
  JournalModel& model = ModelFor(root);
  std::unique_lock lock(model.mu);
  model.CatchUp();
  const Incidents& all = model.incidents();
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
  if (ec != std::errc() || end != number.data() + number.size() || n == 0 || n > all.list.size()) {
    BadArgument(fmt::format("no crash '{}' (the journal holds {}; numbers start at 1)", number,
                            all.list.size()));
  }
  const Incident& i = all.list[n - 1];
  // What `blackbox crashes show N` shows before it: every stream, without
  // the incident's own records.
  const int64_t since_ns = i.time_ns - kSecondsBeforeCrash * 1'000'000'000;
  auto own = [&](std::string_view stream, uint64_t seq) {
    for (const IncidentSource& src : i.sources) {
      if (stream == src.stream && seq == src.seq) return true;
    }
    return false;
  };
  Json before = Json::array();
  if (model.in_time_order()) {
    uint64_t matched = 0;
    std::vector<Pick> picks = NewestPicks(
        model, std::numeric_limits<uint32_t>::max(), true,
        [&](int64_t t, fb::Payload) { return t >= since_ns && t <= i.time_ns; }, &matched);
    std::erase_if(picks, [&](const Pick& p) { return own(*p.stream, p.seq); });
    before = ReadPicks(root, model, picks);
  } else {
    MergedReader::Options scan;
    scan.since_ns = since_ns;
    scan.until_ns = i.time_ns;
    Status s = model.reader().Scan(scan, [&](const Record& r) {
      if (!own(r.stream, r.seq)) before.push_back(EventToJson(*r.event, r.stream, r.seq));
      return true;
    });
    if (!s.ok()) Unreadable(root, s);
  }
  Json out = IncidentToJson(all, i);
  out["before"] = std::move(before);
  const uint64_t damaged = model.damaged();
  const int64_t time_ns = i.time_ns;
  // The state at the death: from the model's checkpoints when it can tell
  // (a fold of the whole journal meets every damaged record, as the model's
  // read did), else folded afresh, as `blackbox state --at`.
  if (std::optional<SystemState> at = model.StateAt(time_ns)) {
    out["state"] = Json::parse(SystemStateJson(*at, -1));
    out["damaged"] = damaged + model.state_damaged();
    return out;
  }
  lock.unlock();
  uint64_t state_damaged = 0;
  out["state"] =
      Json::parse(SystemStateJson(LoadStateAt(root, FormatUtc(time_ns), "at", &state_damaged), -1));
  out["damaged"] = damaged + state_damaged;
  return out;
}

namespace {

bool InWindow(const HealthSample& x, std::string_view stream, const Bound& since,
              const Bound& until) {
  auto key = [&](const Bound& b) {
    return std::tuple(b.at.time_ns, std::string_view(b.at.stream), b.at.seq);
  };
  if (since.set &&
      (since.exact ? std::tuple(x.t, stream, x.seq) < key(since) : x.t < since.at.time_ns))
    return false;
  if (until.set &&
      (until.exact ? std::tuple(x.t, stream, x.seq) > key(until) : x.t > until.at.time_ns))
    return false;
  return true;
}

}  // namespace

Json ServeHealth(const std::string& root, const QueryParams& q) {
  const uint64_t points = WholeNumberParam(q, "points", kDefaultPoints, 1, kMaxPoints);
  std::string since_text = Single(q, "since");
  std::string until_text = Single(q, "until");
  JournalModel& model = ModelFor(root);
  std::lock_guard lock(model.mu);
  model.CatchUp();
  Bound since = ResolveBound(since_text, "since", model.reader(), "");
  Bound until = ResolveBound(until_text, "until", model.reader(), "");
  CheckWindow(since, until, since_text, until_text);

  // Per stream, the samples of the window: a range of the cache, which
  // holds each stream's samples in journal (time) order.
  using Range = std::pair<size_t, size_t>;
  std::map<std::string_view, Range> window;
  for (const auto& [stream, kept] : model.streams()) {
    const std::deque<HealthSample>& all = kept.health;
    size_t lo = 0, hi = all.size();
    while (lo < hi && !InWindow(all[lo], stream, since, until)) ++lo;
    while (hi > lo && !InWindow(all[hi - 1], stream, since, until)) --hi;
    if (lo < hi) window.emplace(stream, Range{lo, hi});
  }
  Json limits = Json::object();
  limits["max_memory_mb"] = nullptr;
  limits["max_cpu_percent"] = nullptr;
  if (model.max_memory_mb()) limits["max_memory_mb"] = *model.max_memory_mb();
  if (model.max_cpu_percent()) limits["max_cpu_percent"] = *model.max_cpu_percent();

  // One time axis for every stream, so their buckets line up.
  int64_t first = std::numeric_limits<int64_t>::max(), last = std::numeric_limits<int64_t>::min();
  for (const auto& [stream, range] : window) {
    const std::deque<HealthSample>& list = model.streams().find(stream)->second.health;
    first = std::min(first, list[range.first].t);
    last = std::max(last, list[range.second - 1].t);
  }
  if (since.set) first = since.at.time_ns;
  if (until.set) last = until.at.time_ns;
  Json series = Json::object();
  for (const auto& [stream, range] : window) {
    const std::deque<HealthSample>& list = model.streams().find(stream)->second.health;
    Json buckets = Json::array();
    const int64_t span = std::max<int64_t>(last - first + 1, 1);
    const int64_t width = (span + static_cast<int64_t>(points) - 1) / static_cast<int64_t>(points);
    size_t i = range.first;
    const size_t end = range.second;
    while (i < end) {
      if (!InWindow(list[i], stream, since, until)) {
        ++i;
        continue;
      }
      const int64_t index = (list[i].t - first) / width;
      const int64_t start = first + index * width;
      uint64_t count = 0;
      float rss_min = list[i].rss_mb, rss_max = list[i].rss_mb;
      float cpu_min = list[i].cpu, cpu_max = list[i].cpu;
      for (; i < end && (list[i].t - first) / width == index; ++i) {
        if (!InWindow(list[i], stream, since, until)) continue;
        ++count;
        rss_min = std::min(rss_min, list[i].rss_mb);
        rss_max = std::max(rss_max, list[i].rss_mb);
        cpu_min = std::min(cpu_min, list[i].cpu);
        cpu_max = std::max(cpu_max, list[i].cpu);
      }
      auto round2 = [](float v) { return std::round(static_cast<double>(v) * 100) / 100; };
      buckets.push_back(Json::array({start, start + width - 1, count, round2(rss_min),
                                     round2(rss_max), round2(cpu_min), round2(cpu_max)}));
    }
    series[std::string(stream)] = std::move(buckets);
  }
  Json out = Json::object();
  out["columns"] = Json::array(
      {"t_start_ns", "t_end_ns", "samples", "rss_min_mb", "rss_max_mb", "cpu_min", "cpu_max"});
  out["series"] = std::move(series);
  out["limits"] = std::move(limits);
  out["damaged"] = model.damaged();
  return out;
}

}  // namespace blackbox::tools
