// blackbox crashes: every crash, newest last; `crashes show N`: one crash and
// what the service was doing in the seconds before it.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "command.h"
#include "event_json.h"
#include "human_format.h"
#include "journal_access.h"
#include "option_checks.h"
#include "output_file.h"
#include "pager.h"
#include "time_spec.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct CrashesOptions {
  bool json = false;
  int frames = 3;
  std::string since;  // crashes --since/--until: a window of the list
  std::string until;
  // crashes show
  int64_t index = 0;
  double before_seconds = 10;
};

// One crash, copied out of the journal (records are only valid inside a scan).
struct CrashRecord {
  std::string stream;
  uint64_t seq = 0;
  std::string bytes;
  size_t number = 0;  // its place in the whole list, from 1
  const fb::Event& event() const { return *fb::GetEvent(bytes.data()); }
  const fb::Crash& crash() const { return *event().payload_as_Crash(); }
  // When it happened: a crash captured in-process is journaled at the next
  // start, so its own time says more than the event's.
  int64_t time_ns() const {
    return crash().crash_time_ns() != 0 ? crash().crash_time_ns() : event().time_ns();
  }
};

std::string_view Str(const flatbuffers::String* s) { return s ? s->string_view() : ""; }

std::vector<CrashRecord> FindCrashes(const MergedReader& reader, DamageReport& damage) {
  std::vector<CrashRecord> crashes;
  MergedReader::Options scan;
  scan.on_bad = damage.callback();
  Status s = reader.Scan(scan, [&](const Record& r) {
    if (r.event->payload_type() == fb::Payload::Crash && r.event->payload_as_Crash()) {
      crashes.push_back({std::string(r.stream), r.seq, std::string(r.bytes)});
    }
    return true;
  });
  if (!s.ok()) Trouble(fmt::format("cannot read journal: {}", s.ToString()));
  // An in-process crash is journaled at the next start, after the watchdog
  // saw the death: order by when the crash happened, which is what is shown.
  std::stable_sort(crashes.begin(), crashes.end(), [](const CrashRecord& a, const CrashRecord& b) {
    return a.time_ns() < b.time_ns();
  });
  for (size_t i = 0; i < crashes.size(); ++i) crashes[i].number = i + 1;
  return crashes;
}

// --since/--until: a time bounds when the crash happened (the time shown); a
// sequence number bounds the crash's record.
bool InWindow(const CrashRecord& c, const Bound& since, const Bound& until) {
  Record r{c.stream, c.seq, c.bytes, &c.event()};
  if (since.set && (since.exact ? !AtOrAfter(r, since) : c.time_ns() < since.at.time_ns)) {
    return false;
  }
  if (until.set && (until.exact ? !AtOrBefore(r, until) : c.time_ns() > until.at.time_ns)) {
    return false;
  }
  return true;
}

std::string SignalText(const fb::Crash& c) {
  if (c.signal() != 0) return SignalName(c.signal());
  if (c.exit_code() >= 0) return fmt::format("exit {}", c.exit_code());
  return "-";
}

int List(const GlobalOptions& global, const CrashesOptions& o) {
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal);
  Bound since = ResolveBound(o.since, "--since", *reader, "");
  Bound until = ResolveBound(o.until, "--until", *reader, "");
  if (since.set && until.set && since.at.time_ns > until.at.time_ns) {
    BadArgument(fmt::format("--since {} is after --until {}", o.since, o.until));
  }
  DamageReport damage;
  std::vector<CrashRecord> crashes = FindCrashes(*reader, damage);
  // The numbers stay those of the whole list, so `crashes show N` finds the
  // crash a window showed as N.
  std::erase_if(crashes, [&](const CrashRecord& c) { return !InWindow(c, since, until); });
  StartPager(global.no_pager);
  UseLargeStdoutBuffer();
  const bool colour = WantColour(STDOUT_FILENO);
  if (o.json) {
    for (const auto& c : crashes) {
      fmt::print("{}\n", EventToJsonLine(c.event(), c.stream, c.seq));
    }
  } else if (crashes.empty()) {
    fmt::print("no crashes in {}{}\n", global.journal,
               since.set || until.set ? " in that window" : "");
  } else {
    size_t width = StreamColumnWidth(*reader);
    fmt::print("{:>3}  {:<23}  {:<{}}  {:<7}  {:<9}  {:<8}  {}\n", "#", "TIME", "STREAM", width,
               "PID", "ORIGIN", "SIGNAL", "WHAT");
    for (size_t i = 0; i < crashes.size(); ++i) {
      const CrashRecord& c = crashes[i];
      const fb::Crash& crash = c.crash();
      std::string what;
      if (crash.exception_type() && crash.exception_type()->size() > 0) {
        what = fmt::format("{}: {}", Str(crash.exception_type()), Str(crash.exception_message()));
      }
      // The padding is outside the colour, so the columns stay aligned.
      fmt::print("{:>3}  {:<23}  {:<{}}  {:<7}  {:<9}  {}  {}\n", c.number,
                 FormatLocalMs(c.time_ns()), c.stream, width, crash.crashed_pid(),
                 EventToJson(c.event(), c.stream, c.seq)["origin"].get<std::string>(),
                 Paint(fmt::format("{:<8}", SignalText(crash)), kRed, colour),
                 Paint(what, kRed, colour));
      if (crash.frames()) {
        for (int f = 0; f < o.frames && f < static_cast<int>(crash.frames()->size()); ++f) {
          fmt::print("{:>5}#{} {}\n", "", f, Str(crash.frames()->Get(f)));
        }
      }
    }
  }
  FinishStdout();
  ClosePager();
  damage.Summarize();
  return 0;
}

int Show(const GlobalOptions& global, const CrashesOptions& o) {
  if (o.before_seconds < 0) BadArgument("--before must not be negative");
  if (!o.since.empty() || !o.until.empty()) {
    BadArgument(
        "crashes show N takes no --since/--until: N is the number `blackbox crashes` prints, "
        "with or without a window");
  }
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal);
  DamageReport damage;
  std::vector<CrashRecord> crashes = FindCrashes(*reader, damage);
  auto count = static_cast<int64_t>(crashes.size());
  int64_t i = o.index > 0 ? o.index - 1 : count + o.index;  // -1 = the newest
  if (o.index == 0 || i < 0 || i >= count) {
    BadArgument(
        fmt::format("no crash {} (the journal holds {} crash{}; numbers start at 1, -1 "
                    "is the newest)",
                    o.index, count, count == 1 ? "" : "es"));
  }
  const CrashRecord& c = crashes[static_cast<size_t>(i)];

  // What the service was doing: every stream, in the window before the crash.
  std::vector<std::pair<std::string, std::string>> before;  // (json, human) per event
  MergedReader::Options scan;
  scan.since_ns = c.time_ns() - static_cast<int64_t>(o.before_seconds * 1e9);
  scan.until_ns = c.time_ns();
  scan.on_bad = damage.callback();
  HumanStyle style{WantColour(STDOUT_FILENO), StreamColumnWidth(*reader)};
  Json before_json = Json::array();
  std::string before_text;
  Status s = reader->Scan(scan, [&](const Record& r) {
    if (r.stream == c.stream && r.seq == c.seq) return true;
    if (o.json) {
      before_json.push_back(EventToJson(*r.event, r.stream, r.seq));
    } else {
      before_text += FormatEventLine(*r.event, r.stream, r.seq, style);
      before_text += '\n';
    }
    return true;
  });
  if (!s.ok()) Trouble(fmt::format("cannot read journal: {}", s.ToString()));

  StartPager(global.no_pager);
  UseLargeStdoutBuffer();
  if (o.json) {
    Json out = Json::object();
    out["crash"] = EventToJson(c.event(), c.stream, c.seq);
    out["before"] = std::move(before_json);
    fmt::print("{}\n", out.dump(2));
  } else {
    const fb::Crash& crash = c.crash();
    Json j = EventToJson(c.event(), c.stream, c.seq);
    fmt::print("{}\n", Paint(fmt::format("crash {} of {}", i + 1, count), kRed, style.colour));
    fmt::print("  time       {}  ({})\n", FormatLocalMs(c.time_ns()), FormatUtc(c.time_ns()));
    fmt::print("  recorded   {} seq {} at {} by pid {}\n", c.stream, c.seq,
               FormatLocalMs(c.event().time_ns()), c.event().pid());
    fmt::print("  origin     {}\n", j["origin"].get<std::string>());
    fmt::print("  process    pid {}\n", crash.crashed_pid());
    if (crash.signal() != 0) {
      fmt::print("  signal     {} ({}){}\n", Paint(SignalName(crash.signal()), kRed, style.colour),
                 crash.signal(),
                 crash.fault_address() != 0 ? fmt::format(" at {:#x}", crash.fault_address()) : "");
    }
    if (crash.exit_code() >= 0) fmt::print("  exit code  {}\n", crash.exit_code());
    if (crash.core_dumped()) fmt::print("  core       dumped\n");
    if (crash.exception_type() && crash.exception_type()->size() > 0) {
      fmt::print("  exception  {}: {}\n", Str(crash.exception_type()),
                 Str(crash.exception_message()));
    }
    if (crash.frames() && crash.frames()->size() > 0) {
      fmt::print("  frames\n");
      for (size_t f = 0; f < crash.frames()->size(); ++f) {
        fmt::print("    #{:<3} {}\n", f, Str(crash.frames()->Get(f)));
      }
    }
    fmt::print("\nevents in the {} s before:\n{}", o.before_seconds,
               before_text.empty() ? "  (none)\n" : before_text);
  }
  FinishStdout();
  ClosePager();
  damage.Summarize();
  return 0;
}

}  // namespace

void AddCrashesCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<CrashesOptions>();
  CLI::App* cmd = app.add_subcommand(
      "crashes", "List every crash (fatal signal, std::terminate, or a death the watchdog saw)");
  cmd->add_flag("--json", o->json, "One JSON object per line, like replay --json");
  cmd->add_option("--frames", o->frames, "Stack frames shown per crash")
      ->check(WholeNumber(1'000'000))
      ->capture_default_str();
  cmd->add_option("--since", o->since,
                  "Only crashes that happened at or after this time (the times of replay "
                  "--since: today, -1h, 05:14, 2026-01-15T10:30:00Z) or sequence number");
  cmd->add_option("--until", o->until, "Only crashes up to this time or sequence number");
  cmd->footer(
      "Crash numbers are those of the whole list, with or without --since/--until.\n"
      "Examples:\n"
      "  blackbox crashes\n"
      "  blackbox crashes --since yesterday --until today\n"
      "  blackbox crashes show 2\n"
      "  blackbox crashes show -1 --before 30");
  cmd->callback([&body, &global, o] {
    if (!body) body = [&global, o] { return List(global, *o); };
  });

  CLI::App* show = cmd->add_subcommand(
      "show", "Show one crash in full, with the events of the seconds before it");
  show->add_option("N", o->index, "Crash number from `blackbox crashes` (-1 = the newest)")
      ->check(Integer())
      ->required();
  show->add_option("--before", o->before_seconds, "Seconds of history before the crash")
      ->check(NonNegativeNumber())
      ->capture_default_str();
  show->add_flag("--json", o->json, "One JSON object: {\"crash\": …, \"before\": […]}");
  show->footer("Example:\n  blackbox crashes show 1 --before 30");
  show->callback([&body, &global, o] { body = [&global, o] { return Show(global, *o); }; });
}

}  // namespace blackbox::tools
