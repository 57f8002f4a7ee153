// blackbox verify: check every record of every stream.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <string>

#include "blackbox/state.h"
#include "command.h"
#include "journal_access.h"
#include "progress.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

int Verify(const GlobalOptions& global) {
  std::unique_ptr<MergedReader> reader = OpenJournal(global.journal);
  uint64_t total = 0;
  for (const auto& r : reader->readers()) total += r->last_seq() + 1 - r->first_seq();

  Progress progress("verify", total);
  uint64_t problems = 0;
  uint64_t checked = 0;
  std::map<std::string, uint64_t> lost;  // stream -> records it could not give
  auto report = [&](const BadRecord& bad) {
    ++problems;
    lost[bad.stream] += bad.records;
    fmt::print("{} seq {}: {}\n", bad.stream, bad.seq, bad.reason);
  };
  for (const auto& r : reader->readers()) {
    // RocksDB checksums, the FlatBuffers verifier, seq gaps, stream names.
    auto records = r->Verify(report);
    if (!records.ok()) {
      ++problems;
      fmt::print("{}: {}\n", r->stream(), records.status().ToString());
    } else {
      checked += records.value();
    }
    // Snapshots must decode, or startup would silently fold from further back.
    auto snapshots = r->Snapshots();
    if (!snapshots.ok()) {
      ++problems;
      fmt::print("{} snapshots: {}\n", r->stream(), snapshots.status().ToString());
    } else {
      for (const Snapshot& s : snapshots.value()) {
        if (auto state = DecodeSnapshot(Bytes(s.bytes)); !state.ok()) {
          ++problems;
          fmt::print("{} snapshot at seq {}: {}\n", r->stream(), s.seq, state.status().ToString());
        }
      }
    }
    progress.Update(checked);
  }
  for (const auto& [stream, status] : reader->unreadable()) {
    ++problems;
    fmt::print("{}: cannot open the stream: {}\n", stream, status.ToString());
  }
  std::string losses;
  for (const auto& [stream, n] : lost) {
    if (n > 0)
      losses += fmt::format("{}{}: {} record(s) lost", losses.empty() ? "" : ", ", stream, n);
  }
  for (const auto& [stream, status] : reader->unreadable()) {
    losses += fmt::format("{}{}: unreadable", losses.empty() ? "" : ", ", stream);
  }
  const size_t streams = reader->readers().size() + reader->unreadable().size();
  fmt::print("{}: {} records in {} stream{}, {}{}\n", problems == 0 ? "ok" : "DAMAGED", checked,
             streams, streams == 1 ? "" : "s",
             problems == 0 ? "no problems" : fmt::format("{} problem(s)", problems),
             losses.empty() ? "" : fmt::format(" ({})", losses));
  std::fflush(stdout);
  return problems == 0 ? 0 : kExitTrouble;
}

}  // namespace

void AddVerifyCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  CLI::App* cmd = app.add_subcommand(
      "verify",
      "Check every record (checksums, FlatBuffers verifier, sequence gaps) and every "
      "write-ahead log (records dropped at open)");
  cmd->footer(
      "Prints each problem with its stream and seq, then one line naming each stream that\n"
      "lost records and how many; exits 0 only when all is well, else 1.\n"
      "Example:\n"
      "  blackbox verify --journal /var/lib/app/blackbox-journal");
  cmd->callback([&body, &global] { body = [&global] { return Verify(global); }; });
}

}  // namespace blackbox::tools
