// blackbox replay: the timeline of every stream, merged in time order.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bitset>
#include <cctype>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "command.h"
#include "event_json.h"
#include "human_format.h"
#include "journal_access.h"
#include "option_checks.h"
#include "output_file.h"
#include "pager.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct ReplayOptions {
  std::vector<std::string> streams;
  std::vector<std::string> types;
  std::string since;
  std::string until;
  std::string grep;
  int64_t lines = -1;  // -n: only the last N; -1 = all
  bool follow = false;
  bool json = false;     // --json: the same as -o json
  std::string output;    // -o: short, json, json-pretty, cat (empty = short)
  bool reverse = false;  // -r: newest first
  std::string priority;  // -p: LEVEL or FROM..TO
  std::vector<int32_t> pids;
  bool utc = false;
};

enum class Output { kShort, kJson, kJsonPretty, kCat };

Output ParseOutput(const ReplayOptions& o) {
  if (o.json && !o.output.empty() && o.output != "json") {
    BadArgument(fmt::format("--json is -o json; it cannot be combined with -o {}", o.output));
  }
  if (o.json || o.output == "json") return Output::kJson;
  if (o.output.empty() || o.output == "short") return Output::kShort;
  if (o.output == "json-pretty") return Output::kJsonPretty;
  if (o.output == "cat") return Output::kCat;
  BadArgument(
      fmt::format("unknown output '{}' (outputs: short, json, json-pretty, cat)", o.output));
}

// A severity by the journal's name, by journalctl's (syslog's) name where one
// maps, or by syslog's number 0..7.
std::optional<fb::Severity> SeverityFromName(std::string_view name) {
  struct Alias {
    std::string_view name;
    fb::Severity severity;
  };
  static constexpr Alias kAliases[] = {
      {"debug", fb::Severity::Debug},       {"7", fb::Severity::Debug},
      {"info", fb::Severity::Info},         {"6", fb::Severity::Info},
      {"notice", fb::Severity::Info},       {"5", fb::Severity::Info},
      {"warning", fb::Severity::Warning},   {"warn", fb::Severity::Warning},
      {"4", fb::Severity::Warning},         {"error", fb::Severity::Error},
      {"err", fb::Severity::Error},         {"3", fb::Severity::Error},
      {"critical", fb::Severity::Critical}, {"crit", fb::Severity::Critical},
      {"alert", fb::Severity::Critical},    {"emerg", fb::Severity::Critical},
      {"2", fb::Severity::Critical},        {"1", fb::Severity::Critical},
      {"0", fb::Severity::Critical},
  };
  for (const Alias& a : kAliases) {
    if (a.name == name) return a.severity;
  }
  return std::nullopt;
}

// -p LEVEL: LEVEL and every more severe one; -p FROM..TO: that range (either
// order). Returns the set of severities shown.
std::bitset<256> ParsePriority(const std::string& text) {
  std::bitset<256> wanted;
  if (text.empty()) return wanted.set();
  auto level = [&](std::string_view name) {
    std::optional<fb::Severity> s = SeverityFromName(name);
    if (!s) {
      BadArgument(fmt::format(
          "unknown priority '{}' (priorities: debug, info, warning, error, critical; also "
          "journalctl's emerg, alert, crit, err, notice and 0..7)",
          name));
    }
    return static_cast<int>(*s);
  };
  int low = 0, high = static_cast<int>(fb::Severity::MAX);
  if (size_t dots = text.find(".."); dots != std::string::npos) {
    low = level(std::string_view(text).substr(0, dots));
    high = level(std::string_view(text).substr(dots + 2));
    if (low > high) std::swap(low, high);
  } else {
    low = level(text);
  }
  for (int s = low; s <= high; ++s) wanted.set(static_cast<size_t>(s));
  return wanted;
}

// --follow polls. Reopening every stream's database (Refresh) costs a few
// ms of CPU per stream, so it runs every kFollowInterval. A ring-mode
// writer's newest events are in its RING, which a reader re-reads with a
// few preads (RefreshRings, which reopens only a stream whose drain has
// moved events on to its database): while a stream has a ring, that runs
// every kFollowRingInterval, so its events show within a few ms of their
// append; an idle ring costs a handful of reads a poll.
constexpr auto kFollowInterval = std::chrono::milliseconds(200);
constexpr auto kFollowRingInterval = std::chrono::milliseconds(5);

// --grep: TEXT anywhere in the event's text fields. Case-insensitive unless
// TEXT has a capital letter ("smart case", like journalctl and ripgrep).
class TextMatcher {
 public:
  explicit TextMatcher(std::string text) : text_(std::move(text)) {
    for (char c : text_) {
      if (std::isupper(static_cast<unsigned char>(c))) ignore_case_ = false;
    }
    if (ignore_case_) text_ = LowerCase(text_);
  }
  bool empty() const { return text_.empty(); }
  bool Matches(const Json& event) const {
    for (const auto& [key, value] : event.items()) {
      if (key == "time" || key == "type" || key == "severity") continue;
      if (value.is_string() && Contains(value.get_ref<const std::string&>())) return true;
      if (value.is_array() || value.is_object()) {
        for (const auto& item : value) {
          if (item.is_string() && Contains(item.get_ref<const std::string&>())) return true;
        }
      }
    }
    return false;
  }

 private:
  static std::string LowerCase(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  bool Contains(const std::string& s) const {
    return (ignore_case_ ? LowerCase(s) : s).find(text_) != std::string::npos;
  }
  std::string text_;
  bool ignore_case_ = true;
};

std::bitset<256> ParseTypes(const std::vector<std::string>& names) {
  std::bitset<256> wanted;
  if (names.empty()) return wanted.set();
  for (const auto& name : names) {
    fb::Payload type = PayloadFromName(name);
    if (type == fb::Payload::NONE) {
      BadArgument(fmt::format(
          "unknown event type '{}' (types: error, crash, health, lifecycle, restart, callback, "
          "gauge, log, limit, config)",
          name));
    }
    wanted.set(static_cast<size_t>(type));
  }
  return wanted;
}

int Replay(const GlobalOptions& global, const ReplayOptions& o) {
  std::bitset<256> types = ParseTypes(o.types);
  std::bitset<256> severities = ParsePriority(o.priority);
  const Output output = ParseOutput(o);
  if (o.follow && !o.until.empty()) BadArgument("--follow cannot be combined with --until");
  if (o.follow && o.reverse) BadArgument("--reverse cannot be combined with --follow");
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal, o.streams);
  std::string default_stream = o.streams.size() == 1 ? o.streams[0] : "";
  Bound since = ResolveBound(o.since, "--since", *reader, default_stream);
  Bound until = ResolveBound(o.until, "--until", *reader, default_stream);
  // An empty window is a mistake (the two swapped), not a quiet "no events".
  if (since.set && until.set && since.at.time_ns > until.at.time_ns) {
    BadArgument(fmt::format("--since {} is after --until {}", o.since, o.until));
  }
  TextMatcher grep(o.grep);

  if (!o.follow) StartPager(global.no_pager);  // -f is watched live, as journalctl -f
  UseLargeStdoutBuffer();
  HumanStyle style{WantColour(STDOUT_FILENO), StreamColumnWidth(*reader), o.utc};
  std::deque<std::string> last;  // -n or -r: the newest lines seen so far
  bool keep_last = o.lines >= 0 || o.reverse;

  auto emit = [&](std::string_view line) {
    if (keep_last) {
      if (o.lines == 0) return;
      if (o.lines > 0 && last.size() == static_cast<size_t>(o.lines)) last.pop_front();
      last.emplace_back(line);
    } else {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
    }
  };

  DamageReport damage;
  std::map<std::string, uint64_t, std::less<>> seen;  // stream -> last seq read
  std::string line;
  auto visit = [&](const Record& r) {
    if (std::ferror(stdout) && StdoutGone()) return false;  // the pager quit: stop reading
    auto it = seen.find(r.stream);
    if (it == seen.end()) it = seen.emplace(std::string(r.stream), 0).first;
    it->second = r.seq;
    if (!types.test(static_cast<size_t>(r.event->payload_type()))) return true;
    if (!severities.test(static_cast<uint8_t>(r.event->severity()))) return true;
    if (!o.pids.empty() &&
        std::find(o.pids.begin(), o.pids.end(), r.event->pid()) == o.pids.end()) {
      return true;
    }
    if (!AtOrAfter(r, since) || !AtOrBefore(r, until)) return true;
    if (output == Output::kJson) {
      line.clear();
      AppendEventJson(line, *r.event, r.stream, r.seq);
      if (!grep.empty() && !grep.Matches(Json::parse(line))) return true;
      emit(line);
      return true;
    }
    if (!grep.empty() && !grep.Matches(EventToJson(*r.event, r.stream, r.seq))) return true;
    switch (output) {
      case Output::kJsonPretty:
        emit(EventToJson(*r.event, r.stream, r.seq).dump(2));
        break;
      case Output::kCat:
        emit(Summary(*r.event));
        break;
      default:
        emit(FormatEventLine(*r.event, r.stream, r.seq, style));
        break;
    }
    return true;
  };

  MergedReader::Options scan;
  scan.since_ns = since.set ? since.at.time_ns : 0;
  scan.until_ns = until.set ? until.at.time_ns : 0;
  scan.on_bad = damage.callback();
  if (Status s = reader->Scan(scan, visit); !s.ok()) {
    Trouble(fmt::format("cannot read journal '{}': {}", global.journal, s.ToString()));
  }
  auto print_kept = [](const std::string& kept) {
    std::fwrite(kept.data(), 1, kept.size(), stdout);
    std::fputc('\n', stdout);
  };
  if (o.reverse) {
    std::for_each(last.rbegin(), last.rend(), print_kept);
  } else {
    std::for_each(last.begin(), last.end(), print_kept);
  }
  keep_last = false;
  std::fflush(stdout);

  auto refresh_at = std::chrono::steady_clock::now() + kFollowInterval;
  while (o.follow) {
    if (reader->has_rings()) {
      std::this_thread::sleep_for(kFollowRingInterval);
    } else {
      std::this_thread::sleep_until(refresh_at);
    }
    const auto now = std::chrono::steady_clock::now();
    Status refreshed;
    if (now >= refresh_at) {
      refreshed = reader->Refresh();
      refresh_at = now + kFollowInterval;
    } else {
      refreshed = reader->RefreshRings();
    }
    if (!refreshed.ok()) {
      Trouble(fmt::format("cannot read journal '{}': {}", global.journal, refreshed.ToString()));
    }
    scan.after.assign(seen.begin(), seen.end());
    if (Status s = reader->Scan(scan, visit); !s.ok()) {
      Trouble(fmt::format("cannot read journal '{}': {}", global.journal, s.ToString()));
    }
    if (std::fflush(stdout) != 0) return kExitTrouble;  // the reader went away
  }
  FinishStdout();
  ClosePager();  // the damage summary comes after what the pager showed
  damage.Summarize();
  // Everything readable was shown, but not everything the journal held.
  return damage.count() > 0 ? kExitTrouble : 0;
}

}  // namespace

void AddReplayCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<ReplayOptions>();
  CLI::App* cmd =
      app.add_subcommand("replay", "Print the timeline of events, oldest first (-r: newest first)");
  cmd->add_option("--stream", o->streams, "Only this stream (repeatable): app, watchdog, …");
  cmd->add_option("--type", o->types,
                  "Only this event type (repeatable): error, crash, health, lifecycle, restart, "
                  "callback, gauge, log, limit, config");
  cmd->add_option("--since", o->since,
                  "From this time or sequence number: 2026-01-15T10:30:00Z, \"2026-01-15 "
                  "10:30\", 05:14, today, yesterday, -5min, -2hours, \"1h ago\", 120, "
                  "watchdog:40");
  cmd->add_option("--until", o->until, "Up to this time or sequence number (inclusive)");
  cmd->add_option("--grep", o->grep,
                  "Only events with TEXT in a text field (case-insensitive unless TEXT has "
                  "capitals)");
  cmd->add_option("-p,--priority", o->priority,
                  "Only events of this severity or a more severe one, or of a range FROM..TO "
                  "(journalctl's emerg, alert, crit, err, notice and 0..7 too): debug, info, "
                  "warning, error, critical");
  cmd->add_option("--pid", o->pids, "Only events written by this process (repeatable)")
      ->check(WholeNumber(INT32_MAX));
  cmd->add_option("-n,--lines", o->lines, "Only the last N matching events")
      ->check(WholeNumber(INT64_MAX));
  cmd->add_flag("-r,--reverse", o->reverse, "Newest first (with -n N: the newest N, newest first)");
  cmd->add_flag("-f,--follow", o->follow, "Keep printing new events as writers append them");
  cmd->add_option("-o,--output", o->output,
                  "How events are printed (default short): short (one aligned line each), json "
                  "(one JSON object a line), json-pretty (indented JSON), cat (what the event "
                  "says; nothing else)");
  cmd->add_flag("--json", o->json, "The same as -o json");
  cmd->add_flag("--utc", o->utc, "Times in UTC instead of local time");
  cmd->footer(
      "Examples:\n"
      "  blackbox replay --since -10min\n"
      "  blackbox replay --since today -p err\n"
      "  blackbox replay --type error --type crash --grep timeout\n"
      "  blackbox replay -r -n 20\n"
      "  blackbox replay -n 20 --follow\n"
      "  blackbox replay --pid 4242 -o cat\n"
      "  blackbox replay --stream watchdog --since 120 -o json | jq .");
  cmd->callback([&body, &global, o] { body = [&global, o] { return Replay(global, *o); }; });
}

}  // namespace blackbox::tools
