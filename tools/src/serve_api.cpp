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
  uint64_t damaged = 0;
  SystemState state = LoadStateAt(root, Single(q, "at"), "at", &damaged);
  Json out = Json::parse(SystemStateJson(state, -1));
  out["damaged"] = damaged;
  return out;
}

Json ServeCrashes(const std::string& root) {
  std::unique_ptr<MergedReader> reader = OpenJournal(root);
  DamageCount damage;
  Incidents all;
  if (Status s = ListIncidents(*reader, damage.callback(), &all); !s.ok()) Unreadable(root, s);
  Json list = Json::array();
  for (const Incident& i : all.list) list.push_back(IncidentToJson(all, i));
  Json out = Json::object();
  out["crashes"] = std::move(list);
  out["damaged"] = damage.records;
  return out;
}

Json ServeCrash(const std::string& root, const std::string& number) {
  std::unique_ptr<MergedReader> reader = OpenJournal(root);
  DamageCount damage;
  Incidents all;
  if (Status s = ListIncidents(*reader, damage.callback(), &all); !s.ok()) Unreadable(root, s);
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
  if (ec != std::errc() || end != number.data() + number.size() || n == 0 || n > all.list.size()) {
    BadArgument(fmt::format("no crash '{}' (the journal holds {}; numbers start at 1)", number,
                            all.list.size()));
  }
  const Incident& i = all.list[n - 1];
  // What `blackbox crashes show N` shows before it: every stream, without
  // the incident's own records.
  Json before = Json::array();
  MergedReader::Options scan;
  scan.since_ns = i.time_ns - kSecondsBeforeCrash * 1'000'000'000;
  scan.until_ns = i.time_ns;
  scan.on_bad = damage.callback();
  Status s = reader->Scan(scan, [&](const Record& r) {
    for (const IncidentSource& src : i.sources) {
      if (r.stream == src.stream && r.seq == src.seq) return true;
    }
    before.push_back(EventToJson(*r.event, r.stream, r.seq));
    return true;
  });
  if (!s.ok()) Unreadable(root, s);
  Json out = IncidentToJson(all, i);
  out["before"] = std::move(before);
  uint64_t state_damaged = 0;
  out["state"] = Json::parse(
      SystemStateJson(LoadStateAt(root, FormatUtc(i.time_ns), "at", &state_damaged), -1));
  out["damaged"] = damage.records + state_damaged;
  return out;
}

namespace {

// The health samples and the watchdog's limits of one journal, kept between
// requests with the reader that found them: each request reads only the
// events journaled since the one before (MergedReader::Options::after), so a
// month of samples is scanned once, not on every redraw.
struct HealthSample {
  int64_t t;
  uint64_t seq;
  float rss_mb;
  float cpu;
};

struct HealthCache {
  std::mutex mu;
  std::unique_ptr<MergedReader> reader;
  std::map<std::string, uint64_t, std::less<>> last_seq;
  // A deque grows in blocks, never holding twice the samples while it moves them.
  std::map<std::string, std::deque<HealthSample>, std::less<>> samples;
  std::optional<double> max_memory_mb, max_cpu_percent;
  uint64_t damaged = 0;
};

HealthCache& HealthCacheFor(const std::string& root) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<HealthCache>, std::less<>> caches;
  std::lock_guard lock(mu);
  std::unique_ptr<HealthCache>& c = caches[root];
  if (!c) c = std::make_unique<HealthCache>();
  return *c;
}

// Reads what was journaled since the last call into `c` (the first call
// reads everything).
void CatchUp(const std::string& root, HealthCache& c) {
  if (!c.reader) {
    c.reader = OpenJournal(root);
  } else if (Status s = c.reader->Refresh(); !s.ok()) {
    Unreadable(root, s);
  }
  DamageCount damage;
  MergedReader::Options scan;
  scan.after.assign(c.last_seq.begin(), c.last_seq.end());
  scan.on_bad = damage.callback();
  Status s = c.reader->Scan(scan, [&](const Record& r) {
    auto seen = c.last_seq.find(r.stream);
    if (seen == c.last_seq.end()) seen = c.last_seq.emplace(std::string(r.stream), 0).first;
    seen->second = std::max(seen->second, r.seq);
    if (const fb::Health* h = r.event->payload_as_Health()) {
      auto it = c.samples.find(r.stream);
      if (it == c.samples.end()) it = c.samples.emplace(std::string(r.stream), 0).first;
      it->second.push_back({r.event->time_ns(), r.seq,
                            static_cast<float>(h->rss_bytes() / 1048576.0),
                            static_cast<float>(h->cpu_percent())});
    } else if (const fb::Config* cfg = r.event->payload_as_Config(); cfg && cfg->entries()) {
      for (const fb::ConfigEntry* e : *cfg->entries()) {
        if (!e->key() || !e->value()) continue;
        std::string_view key = e->key()->string_view();
        if (key != "max_memory_mb" && key != "max_cpu_percent") continue;
        char* stop = nullptr;
        std::string value(e->value()->string_view());
        double v = std::strtod(value.c_str(), &stop);
        if (stop == value.c_str() || *stop != '\0') continue;
        (key == "max_memory_mb" ? c.max_memory_mb : c.max_cpu_percent) = v;
      }
    }
    return true;
  });
  if (!s.ok()) Unreadable(root, s);
  c.damaged += damage.records;
}

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
  HealthCache& cache = HealthCacheFor(root);
  std::lock_guard lock(cache.mu);
  CatchUp(root, cache);
  Bound since = ResolveBound(since_text, "since", *cache.reader, "");
  Bound until = ResolveBound(until_text, "until", *cache.reader, "");
  CheckWindow(since, until, since_text, until_text);

  // Per stream, the samples of the window: a range of the cache, which
  // holds each stream's samples in journal (time) order.
  using Range = std::pair<size_t, size_t>;
  std::map<std::string_view, Range> window;
  for (const auto& [stream, all] : cache.samples) {
    size_t lo = 0, hi = all.size();
    while (lo < hi && !InWindow(all[lo], stream, since, until)) ++lo;
    while (hi > lo && !InWindow(all[hi - 1], stream, since, until)) --hi;
    if (lo < hi) window.emplace(stream, Range{lo, hi});
  }
  Json limits = Json::object();
  limits["max_memory_mb"] = nullptr;
  limits["max_cpu_percent"] = nullptr;
  if (cache.max_memory_mb) limits["max_memory_mb"] = *cache.max_memory_mb;
  if (cache.max_cpu_percent) limits["max_cpu_percent"] = *cache.max_cpu_percent;

  // One time axis for every stream, so their buckets line up.
  int64_t first = std::numeric_limits<int64_t>::max(), last = std::numeric_limits<int64_t>::min();
  for (const auto& [stream, range] : window) {
    const std::deque<HealthSample>& list = cache.samples.find(stream)->second;
    first = std::min(first, list[range.first].t);
    last = std::max(last, list[range.second - 1].t);
  }
  if (since.set) first = since.at.time_ns;
  if (until.set) last = until.at.time_ns;
  Json series = Json::object();
  for (const auto& [stream, range] : window) {
    const std::deque<HealthSample>& list = cache.samples.find(stream)->second;
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
  out["damaged"] = cache.damaged;
  return out;
}

}  // namespace blackbox::tools
