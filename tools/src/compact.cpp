// blackbox compact: fold the journal into a snapshot, then drop the events the
// snapshot covers (keeping what --keep-events / --keep-days ask for).
//
// The folded state after compaction is the state before it: the snapshot
// holds everything folded so far and later folds start from it. Compaction
// needs every stream's writer lock, so the app and the watchdog must be
// stopped; a live writer is refused, never disturbed.
#include <fmt/format.h>

#include <memory>
#include <optional>

#include "blackbox/journal.h"
#include "blackbox/state.h"
#include "command.h"
#include "journal_access.h"
#include "option_checks.h"
#include "progress.h"
#include "state_load.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct CompactOptions {
  std::optional<uint64_t> keep_events;
  std::optional<double> keep_days;
};

std::string Size(uint64_t bytes) {
  if (bytes >= (1u << 20)) return fmt::format("{:.1f} MB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= (1u << 10)) return fmt::format("{:.1f} KB", static_cast<double>(bytes) / (1 << 10));
  return fmt::format("{} B", bytes);
}

int Compact(const GlobalOptions& global, const CompactOptions& o) {
  auto streams = ListStreams(global.journal);
  if (!streams.ok()) {
    Trouble(
        fmt::format("cannot read journal '{}': {}", global.journal, streams.status().ToString()));
  }
  if (streams->empty()) Trouble(NoStreamsMessage(global.journal));
  Retention retention;
  retention.keep_events = o.keep_events;
  if (o.keep_days) retention.keep_ns = static_cast<int64_t>(*o.keep_days * 86400e9);

  // Lock every stream first: nothing may be appended between the fold and
  // the snapshot, or the snapshot would claim events it never saw.
  std::vector<std::unique_ptr<Journal>> journals;
  JournalOptions writer;
  writer.create_if_missing = false;
  for (const auto& stream : *streams) {
    // A damaged stream set aside is kept as it was found: read, never written.
    if (StreamOrigin(stream) != stream) continue;
    auto j = Journal::Open(global.journal, stream, writer);
    if (!j.ok()) {
      if (j.status().code() == Status::Code::kBusy) {
        Trouble(
            fmt::format("stream '{}' is open by a running process (the app or the "
                        "watchdog); stop it before compacting: {}",
                        stream, j.status().message()));
      }
      Trouble(
          fmt::format("cannot open stream '{}' for writing: {}", stream, j.status().ToString()));
    }
    journals.push_back(std::move(j.value()));
  }

  Progress progress("compact", journals.size() + 1);
  SystemState state = LoadStateAt(global.journal, "", "");
  std::string snapshot = EncodeSnapshot(state);

  fmt::print("{:<12} {:>14} {:>14} {:>14} {:>14}\n", "stream", "events before", "events after",
             "bytes before", "bytes after");
  CompactionStats total;
  for (size_t i = 0; i < journals.size(); ++i) {
    Journal& j = *journals[i];
    progress.Update(i + 1);
    auto covered = state.covered.find(j.stream());
    if (covered != state.covered.end() && covered->second > 0) {
      if (Status s = j.PutSnapshot(covered->second, Bytes(snapshot)); !s.ok()) {
        Trouble(
            fmt::format("cannot store a snapshot in stream '{}': {}", j.stream(), s.ToString()));
      }
    }
    auto stats = j.Compact(retention);
    if (!stats.ok()) {
      Trouble(fmt::format("cannot compact stream '{}': {}", j.stream(), stats.status().ToString()));
    }
    fmt::print("{:<12} {:>14} {:>14} {:>14} {:>14}\n", j.stream(), stats->events_before,
               stats->events_after, Size(stats->bytes_before), Size(stats->bytes_after));
    total.events_before += stats->events_before;
    total.events_after += stats->events_after;
    total.bytes_before += stats->bytes_before;
    total.bytes_after += stats->bytes_after;
  }
  fmt::print("{:<12} {:>14} {:>14} {:>14} {:>14}\n", "total", total.events_before,
             total.events_after, Size(total.bytes_before), Size(total.bytes_after));
  return 0;
}

}  // namespace

void AddCompactCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<CompactOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compact", "Snapshot the state, drop older events and reclaim space (writers stopped)");
  auto* events = cmd->add_option("--keep-events", o->keep_events,
                                 "Keep at least the last N events of each stream")
                     ->check(WholeNumber());
  auto* days = cmd->add_option("--keep-days", o->keep_days, "Keep the events of the last D days")
                   ->check(NonNegativeNumber());
  events->excludes(days);
  cmd->footer(
      "Without --keep-*, every event folded into the snapshot is dropped except the newest of\n"
      "each stream. The folded state (blackbox state) is the same before and after.\n"
      "Examples:\n"
      "  blackbox compact --keep-days 30\n"
      "  blackbox compact --keep-events 100000");
  cmd->callback([&body, &global, o] { body = [&global, o] { return Compact(global, *o); }; });
}

}  // namespace blackbox::tools
