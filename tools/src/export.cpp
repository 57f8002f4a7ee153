// blackbox export: system_state.json for existing consumers, or the whole
// history as JSON Lines (or one JSON array) for pipelines and for `import`.
#include <fmt/format.h>

#include <memory>

#include "blackbox/state_io.h"
#include "command.h"
#include "event_json.h"
#include "journal_access.h"
#include "output_file.h"
#include "progress.h"
#include "state_load.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct ExportOptions {
  std::string state_file;
  std::string history_file;
  std::string format = "jsonl";
  std::string at;
};

int ExportState(const GlobalOptions& global, const ExportOptions& o) {
  SystemState state = LoadStateAt(global.journal, o.at, "--at");
  if (o.state_file == "-") {
    fmt::print("{}\n", SystemStateJson(state, 2));
    if (std::fflush(stdout) != 0) Trouble("cannot write to stdout");
    return 0;
  }
  if (Status s = WriteStateFileAtomically(o.state_file, state); !s.ok()) {
    Trouble(fmt::format("cannot write '{}': {}", o.state_file, s.ToString()));
  }
  return 0;
}

int ExportHistory(const GlobalOptions& global, const ExportOptions& o) {
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal);
  uint64_t total = 0;
  for (const auto& r : reader->readers()) total += r->last_seq() + 1 - r->first_seq();
  bool array = o.format == "json";

  if (o.history_file == "-") UseLargeStdoutBuffer();
  OutputFile out(o.history_file);
  Progress progress("export", total);
  DamageReport damage;
  uint64_t written = 0;
  // Lines are gathered into large writes.
  constexpr size_t kChunk = 256 << 10;
  std::string chunk;
  chunk.reserve(kChunk + 4096);
  if (array) chunk += '[';
  MergedReader::Options scan;
  scan.on_bad = damage.callback();
  Status s = reader->Scan(scan, [&](const Record& r) {
    if (array) chunk += written == 0 ? "\n" : ",\n";
    AppendEventJson(chunk, *r.event, r.stream, r.seq);
    if (!array) chunk += '\n';
    if (chunk.size() >= kChunk) {
      out.Write(chunk);
      chunk.clear();
    }
    progress.Update(++written);
    return true;
  });
  if (!s.ok()) Trouble(fmt::format("cannot read journal '{}': {}", global.journal, s.ToString()));
  if (array) chunk += written == 0 ? "]\n" : "\n]\n";
  out.Write(chunk);
  out.Commit();
  damage.Summarize();
  return 0;
}

}  // namespace

void AddExportCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Write system_state.json (--state) or the whole history (--history)");
  auto* state = cmd->add_option("--state", o->state_file,
                                "Write the seed's system_state.json here, atomically, mode 0600 "
                                "(- = stdout)");
  auto* history = cmd->add_option("--history", o->history_file,
                                  "Write every event here, oldest first (- = stdout)");
  state->excludes(history);
  cmd->add_option("--format", o->format, "History format: jsonl (one event per line) or json")
      ->check(CLI::IsMember({"jsonl", "json"}))
      ->capture_default_str();
  cmd->add_option("--at", o->at, "With --state: the state as of this time or sequence number");
  cmd->footer(
      "Examples:\n"
      "  blackbox export --state /var/lib/app/system_state.json\n"
      "  blackbox export --history incident.jsonl\n"
      "  blackbox export --history - --format json | jq length");
  cmd->callback([&body, &global, o] {
    if (o->state_file.empty() && o->history_file.empty()) {
      throw CLI::RequiredError("export needs --state FILE or --history FILE");
    }
    body = [&global, o] {
      return o->state_file.empty() ? ExportHistory(global, *o) : ExportState(global, *o);
    };
  });
}

}  // namespace blackbox::tools
