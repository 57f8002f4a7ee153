// blackbox import: a JSON Lines history (from `export --history`) back into a
// journal.
//
// Sequence numbers are part of the history: an event imported into a stream
// gets the seq it had when exported, so that export → import → export is
// byte-identical. That needs each stream of the file to continue its target
// stream exactly (an empty stream and an uncompacted export: seq 1, 2, …).
// Anything else is refused before a single event is written, unless
// --renumber asks to append with fresh sequence numbers.
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "blackbox/journal.h"
#include "command.h"
#include "event_json.h"
#include "progress.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct ImportOptions {
  std::string file;
  bool renumber = false;
};

// What the first pass learned about one stream of the file.
struct StreamPlan {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t events = 0;
  std::unique_ptr<Journal> journal;
};

// Calls fn(line_number, event) for every event of the history in `in`.
// Accepts JSON Lines (blank lines skipped) and, for `export --format json`
// output, a single JSON array. Throws ToolError (exit 2) naming the line of
// the first malformed event.
template <class Fn>
uint64_t ForEachEvent(std::istream& in, const std::string& name, Fn&& fn) {
  ParsedEvent parsed;
  std::string why;
  uint64_t count = 0;
  auto take = [&](const Json& j, uint64_t where) {
    if (!JsonToEvent(j, &parsed, &why)) BadArgument(fmt::format("{}:{}: {}", name, where, why));
    fn(where, parsed);
    ++count;
  };
  in >> std::ws;
  if (in.peek() == '[') {
    Json all = Json::parse(in, nullptr, false);
    if (all.is_discarded() || !all.is_array()) {
      BadArgument(fmt::format("{}: not a JSON array of events", name));
    }
    for (size_t i = 0; i < all.size(); ++i) take(all[i], i + 1);
    return count;
  }
  std::string line;
  for (uint64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) BadArgument(fmt::format("{}:{}: not valid JSON", name, number));
    take(j, number);
  }
  if (in.bad()) Trouble(fmt::format("cannot read '{}'", name));
  return count;
}

int Import(const GlobalOptions& global, const ImportOptions& o) {
  // The input is read twice (check, then write), so stdin is kept in memory.
  std::ifstream file;
  std::stringstream buffered;
  std::istream* in = &file;
  if (o.file == "-") {
    buffered << std::cin.rdbuf();
    in = &buffered;
  } else {
    file.open(o.file);
    if (!file) BadArgument(fmt::format("cannot open '{}'", o.file));
  }
  auto rewind = [&] {
    in->clear();
    in->seekg(0);
  };

  // Pass 1: every line parses, and every stream's seqs are consecutive.
  std::map<std::string, StreamPlan> plans;
  uint64_t total = ForEachEvent(*in, o.file, [&](uint64_t line, const ParsedEvent& e) {
    StreamPlan& plan = plans[e.stream];
    if (plan.events == 0) {
      plan.first_seq = e.seq;
    } else if (!o.renumber && e.seq != plan.last_seq + 1) {
      BadArgument(
          fmt::format("{}:{}: stream '{}' jumps from seq {} to {}; use --renumber to "
                      "import with new sequence numbers",
                      o.file, line, e.stream, plan.last_seq, e.seq));
    }
    plan.last_seq = e.seq;
    ++plan.events;
  });

  // Take every writer's lock before writing anything.
  for (auto& [stream, plan] : plans) {
    auto journal = Journal::Open(global.journal, stream);
    if (!journal.ok()) {
      Trouble(fmt::format("cannot open stream '{}' of '{}' for writing: {}", stream, global.journal,
                          journal.status().ToString()));
    }
    plan.journal = std::move(journal.value());
    uint64_t next = plan.journal->last_seq() + 1;
    if (!o.renumber && plan.first_seq != next) {
      BadArgument(fmt::format(
          "stream '{}' would continue at seq {} but the file starts it at {} (a non-empty "
          "target, or an export of a compacted journal); use --renumber to append anyway",
          stream, next, plan.first_seq));
    }
  }

  // Pass 2: write.
  rewind();
  Progress progress("import", total);
  flatbuffers::FlatBufferBuilder fbb(512);
  uint64_t written = 0;
  ForEachEvent(*in, o.file, [&](uint64_t line, const ParsedEvent& e) {
    StreamPlan& plan = plans[e.stream];
    PackEvent(e.event, fbb);
    auto seq = plan.journal->Append(Bytes(fbb), Durability::kBuffered);
    if (!seq.ok()) {
      Trouble(fmt::format("{}:{}: cannot append to stream '{}': {} ({} events imported)", o.file,
                          line, e.stream, seq.status().ToString(), written));
    }
    if (!o.renumber && seq.value() != e.seq) {
      Trouble(fmt::format("{}:{}: stream '{}' assigned seq {} instead of {}; another writer?",
                          o.file, line, e.stream, seq.value(), e.seq));
    }
    progress.Update(++written);
  });
  for (auto& [stream, plan] : plans) {
    if (Status s = plan.journal->Sync(); !s.ok()) {
      Trouble(fmt::format("cannot sync stream '{}': {}", stream, s.ToString()));
    }
  }
  fmt::print(stderr, "imported {} events into {} stream{} of {}\n", written, plans.size(),
             plans.size() == 1 ? "" : "s", global.journal);
  return 0;
}

}  // namespace

void AddImportCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<ImportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "import", "Read a JSON Lines history (from export --history) into a journal");
  cmd->add_option("FILE", o->file, "The history (- = stdin)")->required();
  cmd->add_flag("--renumber", o->renumber,
                "Append with new sequence numbers instead of requiring the file's own");
  cmd->footer(
      "Examples:\n"
      "  blackbox export --history incident.jsonl\n"
      "  blackbox --journal /tmp/copy import incident.jsonl");
  cmd->callback([&body, &global, o] { body = [&global, o] { return Import(global, *o); }; });
}

}  // namespace blackbox::tools
