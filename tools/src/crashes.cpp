// blackbox crashes: every incident (one per death, incidents.h), newest last;
// `crashes show N`: one incident and what the service was doing before it.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>

#include "command.h"
#include "event_json.h"
#include "human_format.h"
#include "incident_list.h"
#include "incidents.h"
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
  std::string reason;  // crashes --reason/--pid: only those incidents
  int64_t pid = 0;
  std::string signature;  // crashes --signature: only incidents of it
  bool group = false;     // crashes --group: one row per signature
  // crashes show
  int64_t index = 0;
  double before_seconds = 10;
};

Incidents FindIncidents(const MergedReader& reader, DamageReport& damage) {
  Incidents out;
  Status s = ListIncidents(reader, damage.callback(), &out);
  if (!s.ok()) Trouble(fmt::format("cannot read journal: {}", s.ToString()));
  return out;
}

// --since/--until: a time bounds when the run died (the time shown); a
// sequence number bounds the incident's main record.
bool InWindow(const Incidents& all, const Incident& i, const Bound& since, const Bound& until) {
  const fb::Event* e = all.Primary(i);
  auto exact = [&](const Bound& b, bool after) {
    if (!e) return false;
    Record r{i.primary_stream, i.primary_seq, {}, e};
    return after ? AtOrAfter(r, b) : AtOrBefore(r, b);
  };
  if (since.set && (since.exact ? !exact(since, true) : i.time_ns < since.at.time_ns)) return false;
  if (until.set && (until.exact ? !exact(until, false) : i.time_ns > until.at.time_ns)) {
    return false;
  }
  return true;
}

std::string SignalText(const Incident& i) {
  if (i.signal != 0) return SignalName(i.signal);
  if (i.exit_code >= 0) return fmt::format("exit {}", i.exit_code);
  return "-";
}

std::string LivedText(const Incident& i) {
  if (!i.lived_ns) return "-";
  double s = static_cast<double>(*i.lived_ns) / 1e9;
  if (s < 60) return fmt::format("{:.1f}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return fmt::format("{}h{:02}m", static_cast<int>(s) / 3600, static_cast<int>(s) / 60 % 60);
}

std::string SeenBy(const Incident& i) {
  std::string out;
  for (const char* kind : {"capture", "watchdog", "limit", "restart", "unclean"}) {
    bool has = std::any_of(i.sources.begin(), i.sources.end(),
                           [&](const IncidentSource& s) { return s.kind == kind; });
    if (has) out += out.empty() ? kind : fmt::format("+{}", kind);
  }
  return out;
}

// crashes --group: one row per signature among the incidents shown, in the
// order each was first seen. NEW: first seen in the newest run that died (the
// process of the journal's last incident).
int Group(const GlobalOptions& global, const CrashesOptions& o, const Incidents& all,
          const std::vector<const Incident*>& shown, bool filtered, DamageReport& damage) {
  std::vector<SignatureGroup> rows = GroupBySignature(shown);
  const int32_t newest_pid = all.list.empty() ? 0 : all.list.back().pid;
  // Whether the signature's first incident in the whole journal is of the newest run.
  std::map<std::string, int32_t> first_pid;
  for (const Incident& i : all.list) {
    if (i.first_seen) first_pid.emplace(i.signature, i.pid);
  }
  auto is_new = [&](const SignatureGroup& r) {
    return first_pid[r.first->signature] == newest_pid;
  };
  // Human: the newest build's ID, shortened, and how many others.
  auto builds = [](const SignatureGroup& r) {
    if (r.builds.empty()) return std::string("-");
    std::string newest = r.builds.back().substr(0, 8);
    return r.builds.size() == 1 ? newest : fmt::format("{} +{}", newest, r.builds.size() - 1);
  };
  auto top = [](const Incident& i) {
    std::vector<std::string> f = SignatureFrames(i.frames, 1);
    return f.empty() ? std::string() : f[0];
  };
  StartPager(global.no_pager);
  UseLargeStdoutBuffer();
  const bool colour = WantColour(STDOUT_FILENO);
  if (o.json) {
    for (const SignatureGroup& r : rows) {
      Json j = Json::object();
      j["signature"] = r.first->signature;
      j["count"] = r.count;
      j["first_time"] = FormatUtc(r.first->time_ns);
      j["first_time_ns"] = r.first->time_ns;
      j["last_time"] = FormatUtc(r.last->time_ns);
      j["last_time_ns"] = r.last->time_ns;
      j["example"] = r.last->number;
      j["reason"] = r.last->reason;
      j["signal_name"] = r.last->signal != 0 ? Json(SignalName(r.last->signal)) : Json(nullptr);
      j["exception_type"] =
          r.last->exception_type.empty() ? Json(nullptr) : Json(r.last->exception_type);
      std::string t = top(*r.last);
      j["top_frame"] = t.empty() ? Json(nullptr) : Json(t);
      j["new"] = is_new(r);
      j["builds"] = r.builds;
      fmt::print("{}\n", j.dump());
    }
  } else if (rows.empty()) {
    fmt::print("no crashes with a signature in {}{}\n", global.journal,
               filtered ? " that match" : "");
  } else {
    fmt::print("{:<12}  {:>5}  {:<23}  {:<23}  {:>7}  {:<9}  {:<3}  {:<12}  {}\n", "SIGNATURE",
               "COUNT", "FIRST SEEN", "LAST SEEN", "EXAMPLE", "REASON", "NEW", "BUILDS",
               "TOP FRAME");
    for (const SignatureGroup& r : rows) {
      std::string t = top(*r.last);
      fmt::print("{:<12}  {:>5}  {:<23}  {:<23}  {:>7}  {}  {}  {:<12}  {}\n", r.first->signature,
                 r.count, FormatLocalMs(r.first->time_ns), FormatLocalMs(r.last->time_ns),
                 r.last->number, Paint(fmt::format("{:<9}", r.last->reason), kRed, colour),
                 is_new(r) ? Paint("NEW", kRed, colour) : std::string("   "), builds(r),
                 t.empty() ? "-" : t);
    }
  }
  FinishStdout();
  ClosePager();
  damage.Summarize();
  return 0;
}

int List(const GlobalOptions& global, const CrashesOptions& o) {
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal);
  Bound since = ResolveBound(o.since, "--since", *reader, "");
  Bound until = ResolveBound(o.until, "--until", *reader, "");
  if (since.set && until.set && since.at.time_ns > until.at.time_ns) {
    BadArgument(fmt::format("--since {} is after --until {}", o.since, o.until));
  }
  DamageReport damage;
  Incidents all = FindIncidents(*reader, damage);
  // The numbers stay those of the whole list, so `crashes show N` finds the
  // incident a filtered list showed as N.
  std::vector<const Incident*> shown;
  for (const Incident& i : all.list) {
    if (!InWindow(all, i, since, until)) continue;
    if (!o.reason.empty() && i.reason != o.reason) continue;
    if (o.pid != 0 && i.pid != o.pid) continue;
    if (!o.signature.empty() && i.signature != o.signature) continue;
    shown.push_back(&i);
  }
  const bool filtered =
      since.set || until.set || !o.reason.empty() || o.pid != 0 || !o.signature.empty();
  if (o.group) return Group(global, o, all, shown, filtered, damage);
  StartPager(global.no_pager);
  UseLargeStdoutBuffer();
  const bool colour = WantColour(STDOUT_FILENO);
  if (o.json) {
    for (const Incident* i : shown) fmt::print("{}\n", IncidentToJson(all, *i).dump());
  } else if (shown.empty()) {
    fmt::print("no crashes in {}{}\n", global.journal, filtered ? " that match" : "");
  } else {
    fmt::print("{:>3}  {:<23}  {:<7}  {:<9}  {:<8}  {:>7}  {:<12}  {:<32}  {}\n", "#", "TIME",
               "PID", "REASON", "SIGNAL", "LIVED", "SIGNATURE", "SEEN BY", "WHAT");
    for (const Incident* i : shown) {
      std::string what;
      if (!i->exception_type.empty()) {
        what = fmt::format("{}: {}", i->exception_type, i->exception_message);
      }
      // The padding is outside the colour, so the columns stay aligned.
      fmt::print("{:>3}  {:<23}  {:<7}  {}  {}  {:>7}  {:<12}  {:<32}  {}\n", i->number,
                 FormatLocalMs(i->time_ns), i->pid,
                 Paint(fmt::format("{:<9}", i->reason), kRed, colour),
                 Paint(fmt::format("{:<8}", SignalText(*i)), kRed, colour), LivedText(*i),
                 i->signature.empty() ? "-" : i->signature, SeenBy(*i), Paint(what, kRed, colour));
      for (int f = 0; f < o.frames && f < static_cast<int>(i->frames.size()); ++f) {
        fmt::print("{:>5}#{} {}\n", "", f, i->frames[static_cast<size_t>(f)]);
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
  if (!o.since.empty() || !o.until.empty() || !o.reason.empty() || o.pid != 0 ||
      !o.signature.empty() || o.group) {
    BadArgument(
        "crashes show N takes no --since/--until/--reason/--pid/--signature/--group: N is the "
        "number `blackbox "
        "crashes` prints, with or without them");
  }
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal);
  DamageReport damage;
  Incidents all = FindIncidents(*reader, damage);
  auto count = static_cast<int64_t>(all.list.size());
  int64_t n = o.index > 0 ? o.index - 1 : count + o.index;  // -1 = the newest
  if (o.index == 0 || n < 0 || n >= count) {
    BadArgument(
        fmt::format("no crash {} (the journal holds {} incident{}; numbers start at 1, -1 "
                    "is the newest)",
                    o.index, count, count == 1 ? "" : "s"));
  }
  const Incident& i = all.list[static_cast<size_t>(n)];

  // What the service was doing: every stream, in the window before the death.
  MergedReader::Options scan;
  scan.since_ns = i.time_ns - static_cast<int64_t>(o.before_seconds * 1e9);
  scan.until_ns = i.time_ns;
  scan.on_bad = damage.callback();
  HumanStyle style{WantColour(STDOUT_FILENO), StreamColumnWidth(*reader)};
  Json before_json = Json::array();
  std::string before_text;
  Status s = reader->Scan(scan, [&](const Record& r) {
    for (const auto& src : i.sources) {
      if (r.stream == src.stream && r.seq == src.seq) return true;
    }
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
    Json out = IncidentToJson(all, i);
    out["before"] = std::move(before_json);
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("{}\n", Paint(fmt::format("crash {} of {}: {}", n + 1, count, i.reason), kRed,
                             style.colour));
    fmt::print("  time       {}  ({})\n", FormatLocalMs(i.time_ns), FormatUtc(i.time_ns));
    fmt::print("  process    pid {}{}\n", i.pid,
               i.lived_ns ? fmt::format(", lived {}", LivedText(i)) : "");
    if (!i.build_id.empty()) fmt::print("  build      {}\n", i.build_id);
    if (i.signal != 0) {
      fmt::print("  signal     {} ({}){}\n", Paint(SignalName(i.signal), kRed, style.colour),
                 i.signal, i.fault_address != 0 ? fmt::format(" at {:#x}", i.fault_address) : "");
    }
    if (i.exit_code >= 0) fmt::print("  exit code  {}\n", i.exit_code);
    if (i.core_dumped) fmt::print("  core       dumped\n");
    if (!i.exception_type.empty()) {
      fmt::print("  exception  {}: {}\n", i.exception_type, i.exception_message);
    }
    if (i.restart_time_ns) {
      fmt::print("  restart    attempt {} at {} after {} ms, new pid {}\n", i.restart_attempt,
                 FormatLocalMs(*i.restart_time_ns), i.restart_delay_ms, i.restart_pid);
    }
    fmt::print("  recorded\n");
    for (const auto& src : i.sources) {
      fmt::print("    {:<9} {} seq {}\n", src.kind, src.stream, src.seq);
    }
    if (!i.frames.empty()) {
      fmt::print("  frames\n");
      for (size_t f = 0; f < i.frames.size(); ++f) {
        fmt::print("    #{:<3} {}\n", f, i.frames[f]);
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
      "crashes", "List every incident: each death of a run that was not a clean stop, once");
  cmd->add_flag("--json", o->json, "One JSON object per line, like replay --json");
  cmd->add_option("--frames", o->frames, "Stack frames shown per crash")
      ->check(WholeNumber(1'000'000))
      ->capture_default_str();
  cmd->add_option("--since", o->since,
                  "Only crashes that happened at or after this time (the times of replay "
                  "--since: today, -1h, 05:14, 2026-01-15T10:30:00Z) or sequence number");
  cmd->add_option("--until", o->until, "Only crashes up to this time or sequence number");
  cmd->add_option("--reason", o->reason,
                  "Only incidents of this reason (segfault, abort, terminate, hang, memory, cpu, "
                  "unclean, exit, signal, bus, fpe, illegal)");
  cmd->add_option("--pid", o->pid, "Only incidents of this process")->check(WholeNumber(1 << 30));
  cmd->add_option("--signature", o->signature,
                  "Only incidents of this signature (the 12 hex digits of the SIGNATURE column)")
      ->check(CLI::Validator(
          [](const std::string& v) {
            bool hex = v.size() == 12 && std::all_of(v.begin(), v.end(), [](char c) {
                         return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                       });
            return hex ? std::string() : "a signature is 12 lowercase hex digits, not '" + v + "'";
          },
          "HEX"));
  cmd->add_flag("--group", o->group,
                "One row per signature: count, first and last seen, an example incident; NEW "
                "when first seen in the newest run");
  cmd->footer(
      "Crash numbers are those of the whole list, with or without --since/--until.\n"
      "Examples:\n"
      "  blackbox crashes\n"
      "  blackbox crashes --since yesterday --until today\n"
      "  blackbox crashes --group\n"
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
