// The subcommands of `blackbox`. Each lives in its own file (replay.cpp,
// crashes.cpp, …) and registers itself on the CLI11 app with Add*Command.
// Parsing only records what to run; the body runs after parsing succeeded,
// so a failure there is reported as ToolError, not as a usage error.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "blackbox/event.h"

namespace blackbox::tools {

struct GlobalOptions {
  std::string journal{kDefaultJournalRoot};  // --journal, or $BLACKBOX_JOURNAL
  bool no_pager = false;                     // --no-pager (pager.h)
};

// Returns the exit status; throws ToolError on failure.
using CommandBody = std::function<int()>;

void AddReplayCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddCrashesCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddStateCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddExportCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddImportCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddCompactCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddVerifyCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddStatsCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddMetricsCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);
void AddServeCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body);

}  // namespace blackbox::tools
