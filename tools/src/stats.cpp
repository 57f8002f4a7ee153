// blackbox stats: events per type and stream, first and last time, size on disk.
#include <fmt/format.h>

#include <map>
#include <memory>

#include "command.h"
#include "event_json.h"
#include "journal_access.h"
#include "output_file.h"
#include "progress.h"
#include "time_spec.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct StatsOptions {
  bool json = false;
};

struct StreamStats {
  uint64_t events = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  int64_t first_ns = 0;
  int64_t last_ns = 0;
  uint64_t bytes = 0;
  std::map<std::string, uint64_t> types;
};

int Stats(const GlobalOptions& global, const StatsOptions& o) {
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal);
  DamageReport damage;
  std::map<std::string, StreamStats> streams;
  StreamStats all;
  uint64_t total = 0;
  for (const auto& r : reader->readers()) total += r->last_seq() + 1 - r->first_seq();
  Progress progress("stats", total);
  for (const auto& r : reader->readers()) {
    StreamStats& s = streams[r->stream()];
    s.bytes = DirectorySize(r->path());
    all.bytes += s.bytes;
    ScanOptions scan;
    scan.on_bad = damage.callback();
    Status st = r->Scan(scan, [&](const Record& rec) {
      int64_t t = rec.event->time_ns();
      for (StreamStats* x : {&s, &all}) {
        if (x->events == 0 || t < x->first_ns) x->first_ns = t;
        if (x->events == 0 || t > x->last_ns) x->last_ns = t;
        ++x->events;
        ++x->types[std::string(PayloadName(rec.event->payload_type()))];
      }
      if (s.first_seq == 0) s.first_seq = rec.seq;
      s.last_seq = rec.seq;
      progress.Update(all.events);
      return true;
    });
    if (!st.ok()) Trouble(fmt::format("cannot read stream '{}': {}", r->stream(), st.ToString()));
  }

  if (o.json) {
    auto describe = [](const StreamStats& s) {
      Json j = Json::object();
      j["events"] = s.events;
      j["first_time"] = s.events ? Json(FormatUtc(s.first_ns)) : Json(nullptr);
      j["last_time"] = s.events ? Json(FormatUtc(s.last_ns)) : Json(nullptr);
      j["bytes"] = s.bytes;
      j["types"] = s.types;
      return j;
    };
    Json out = Json::object();
    out["journal"] = global.journal;
    Json total_json = describe(all);
    for (const auto& [key, value] : total_json.items()) out[key] = value;
    Json per_stream = Json::object();
    for (const auto& [name, s] : streams) {
      Json j = describe(s);
      j["first_seq"] = s.first_seq;
      j["last_seq"] = s.last_seq;
      per_stream[name] = std::move(j);
    }
    out["streams"] = std::move(per_stream);
    fmt::print("{}\n", out.dump(2));
  } else {
    fmt::print("journal {}: {} events, {:.1f} MB on disk\n", global.journal, all.events,
               static_cast<double>(all.bytes) / (1 << 20));
    if (all.events) {
      fmt::print("from {} to {}\n\n", FormatLocalMs(all.first_ns), FormatLocalMs(all.last_ns));
    }
    fmt::print("{:<12} {:>10} {:>10} {:>10} {:>10}  {:<23}  {:<23}\n", "STREAM", "EVENTS",
               "FIRST SEQ", "LAST SEQ", "BYTES", "FIRST", "LAST");
    for (const auto& [name, s] : streams) {
      fmt::print("{:<12} {:>10} {:>10} {:>10} {:>10}  {:<23}  {:<23}\n", name, s.events,
                 s.first_seq, s.last_seq, s.bytes, s.events ? FormatLocalMs(s.first_ns) : "-",
                 s.events ? FormatLocalMs(s.last_ns) : "-");
    }
    fmt::print("\n{:<12}", "TYPE");
    for (const auto& [name, s] : streams) fmt::print(" {:>10}", name);
    fmt::print(" {:>10}\n", "total");
    for (const auto& [type, count] : all.types) {
      fmt::print("{:<12}", type);
      for (const auto& [name, s] : streams) {
        auto it = s.types.find(type);
        fmt::print(" {:>10}", it == s.types.end() ? 0 : it->second);
      }
      fmt::print(" {:>10}\n", count);
    }
  }
  damage.Summarize();
  if (std::fflush(stdout) != 0) Trouble("cannot write to stdout");
  return 0;
}

}  // namespace

void AddStatsCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<StatsOptions>();
  CLI::App* cmd =
      app.add_subcommand("stats", "Events per type and stream, first and last time, size on disk");
  cmd->add_flag("--json", o->json, "One JSON object");
  cmd->footer("Examples:\n  blackbox stats\n  blackbox stats --json | jq .types");
  cmd->callback([&body, &global, o] { body = [&global, o] { return Stats(global, *o); }; });
}

}  // namespace blackbox::tools
