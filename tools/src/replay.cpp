// blackbox replay: the timeline of every stream, merged in time order.
#include <fmt/format.h>
#include <unistd.h>

#include <bitset>
#include <cctype>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <thread>

#include "command.h"
#include "event_json.h"
#include "human_format.h"
#include "journal_access.h"
#include "option_checks.h"
#include "output_file.h"
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
  bool json = false;
};

constexpr auto kFollowInterval = std::chrono::milliseconds(200);

// --grep: TEXT anywhere in the event's text fields. Case-insensitive unless
// TEXT has a capital letter ("smart case", like journalctl and ripgrep).
class TextMatcher {
 public:
  explicit TextMatcher(std::string text) : text_(std::move(text)) {
    for (char c : text_) {
      if (std::isupper(static_cast<unsigned char>(c))) ignore_case_ = false;
    }
    if (ignore_case_) text_ = Fold(text_);
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
  static std::string Fold(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  bool Contains(const std::string& s) const {
    return (ignore_case_ ? Fold(s) : s).find(text_) != std::string::npos;
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
  if (o.follow && !o.until.empty()) BadArgument("--follow cannot be combined with --until");
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal, o.streams);
  std::string default_stream = o.streams.size() == 1 ? o.streams[0] : "";
  Bound since = ResolveBound(o.since, "--since", *reader, default_stream);
  Bound until = ResolveBound(o.until, "--until", *reader, default_stream);
  // An empty window is a mistake (the two swapped), not a quiet "no events".
  if (since.set && until.set && since.at.time_ns > until.at.time_ns) {
    BadArgument(fmt::format("--since {} is after --until {}", o.since, o.until));
  }
  TextMatcher grep(o.grep);

  UseLargeStdoutBuffer();
  HumanStyle style{WantColour(STDOUT_FILENO), StreamColumnWidth(*reader)};
  std::deque<std::string> last;  // -n: the newest lines seen so far
  bool keep_last = o.lines >= 0;

  auto emit = [&](std::string_view line) {
    if (keep_last) {
      if (o.lines == 0) return;
      if (last.size() == static_cast<size_t>(o.lines)) last.pop_front();
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
    auto it = seen.find(r.stream);
    if (it == seen.end()) it = seen.emplace(std::string(r.stream), 0).first;
    it->second = r.seq;
    if (!types.test(static_cast<size_t>(r.event->payload_type()))) return true;
    if (!AtOrAfter(r, since) || !AtOrBefore(r, until)) return true;
    if (o.json) {
      line.clear();
      AppendEventJson(line, *r.event, r.stream, r.seq);
      if (!grep.empty() && !grep.Matches(Json::parse(line))) return true;
      emit(line);
    } else {
      if (!grep.empty() && !grep.Matches(EventToJson(*r.event, r.stream, r.seq))) return true;
      emit(FormatEventLine(*r.event, r.stream, r.seq, style));
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
  for (const auto& kept : last) {
    std::fwrite(kept.data(), 1, kept.size(), stdout);
    std::fputc('\n', stdout);
  }
  keep_last = false;
  std::fflush(stdout);

  while (o.follow) {
    std::this_thread::sleep_for(kFollowInterval);
    if (Status s = reader->Refresh(); !s.ok()) {
      Trouble(fmt::format("cannot read journal '{}': {}", global.journal, s.ToString()));
    }
    scan.after.assign(seen.begin(), seen.end());
    if (Status s = reader->Scan(scan, visit); !s.ok()) {
      Trouble(fmt::format("cannot read journal '{}': {}", global.journal, s.ToString()));
    }
    if (std::fflush(stdout) != 0) return kExitTrouble;  // the reader went away
  }
  damage.Summarize();
  if (std::fflush(stdout) != 0) Trouble("cannot write to stdout");
  // Everything readable was shown, but not everything the journal held.
  return damage.count() > 0 ? kExitTrouble : 0;
}

}  // namespace

void AddReplayCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<ReplayOptions>();
  CLI::App* cmd = app.add_subcommand("replay", "Print the timeline of events, oldest first");
  cmd->add_option("--stream", o->streams, "Only this stream (repeatable): app, watchdog, …");
  cmd->add_option("--type", o->types,
                  "Only this event type (repeatable): error, crash, health, lifecycle, restart, "
                  "callback, gauge, log, limit, config");
  cmd->add_option("--since", o->since,
                  "From this time or sequence number: 2026-01-15T10:30:00Z, \"2026-01-15 "
                  "10:30\", -5m, 120, watchdog:40");
  cmd->add_option("--until", o->until, "Up to this time or sequence number (inclusive)");
  cmd->add_option("--grep", o->grep,
                  "Only events with TEXT in a text field (case-insensitive unless TEXT has "
                  "capitals)");
  cmd->add_option("-n,--lines", o->lines, "Only the last N matching events")
      ->check(WholeNumber(INT64_MAX));
  cmd->add_flag("-f,--follow", o->follow, "Keep printing new events as writers append them");
  cmd->add_flag("--json", o->json, "One JSON object per line (JSON Lines)");
  cmd->footer(
      "Examples:\n"
      "  blackbox replay --since -10m\n"
      "  blackbox replay --type error --type crash --grep timeout\n"
      "  blackbox replay -n 20 --follow\n"
      "  blackbox replay --stream watchdog --since 120 --json | jq .");
  cmd->callback([&body, &global, o] { body = [&global, o] { return Replay(global, *o); }; });
}

}  // namespace blackbox::tools
