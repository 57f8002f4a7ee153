// blackbox: read, check and maintain a blackbox journal.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "command.h"
#include "pager.h"
#include "tool_error.h"

int main(int argc, char** argv) {
  using namespace blackbox::tools;
  GlobalOptions global;
  CommandBody body;

  CLI::App app{
      "blackbox: the flight recorder's journal, for the person who opens it after an "
      "incident."};
  app.name("blackbox");
  // Subcommands hand options they do not know to the top level, so that
  // `blackbox replay --journal DIR` and `blackbox --journal DIR replay` both work.
  app.set_version_flag("--version", "blackbox " BLACKBOX_VERSION);
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--journal", global.journal,
                 "Journal root directory (default: $BLACKBOX_JOURNAL, else blackbox-journal)")
      ->envname("BLACKBOX_JOURNAL")
      ->capture_default_str();
  app.add_flag("--no-pager", global.no_pager,
               "Never pipe output through a pager (see Pager below)");
  app.footer(
      "Examples:\n"
      "  blackbox crashes\n"
      "  blackbox replay --since -10m --type error --type crash\n"
      "  blackbox state --at 2026-01-15T10:30:00Z\n"
      "  blackbox replay --since today -p err -r\n"
      "  blackbox --no-pager crashes --since yesterday\n"
      "Run `blackbox COMMAND --help` for the options of a command.\n"
      "Pager: on a terminal, replay (not with --follow), crashes and state page their\n"
      "output through $BLACKBOX_PAGER, else $PAGER, else `less -FRSXM`; an empty value,\n"
      "`cat` or --no-pager turns it off. Colour on a terminal unless NO_COLOR is set.\n"
      "Exit status: 0 ok; 1 the journal cannot be read, or damage (damaged or lost\n"
      "records, a gap, a stream that cannot be opened) was skipped (replay, state: the\n"
      "rest was shown) or found (verify); 2 bad arguments.");

  AddReplayCommand(app, global, body);
  AddCrashesCommand(app, global, body);
  AddStateCommand(app, global, body);
  AddExportCommand(app, global, body);
  AddImportCommand(app, global, body);
  AddCompactCommand(app, global, body);
  AddVerifyCommand(app, global, body);
  AddStatsCommand(app, global, body);
  AddMetricsCommand(app, global, body);
  AddServeCommand(app, global, body);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    // A word that names no command is left over as an extra argument; CLI11
    // would only say that a subcommand is required.
    if (app.get_subcommands().empty() && !app.remaining().empty()) {
      std::vector<std::string> names;
      for (const CLI::App* cmd : app.get_subcommands({})) names.push_back(cmd->get_name());
      fmt::print(stderr, "blackbox: unknown command '{}' (commands: {})\n", app.remaining()[0],
                 fmt::join(names, ", "));
      return kExitUsage;
    }
    fmt::print(stderr, "blackbox: {} (see blackbox --help)\n", e.what());
    return kExitUsage;
  }

  try {
    int status = body();
    ClosePager();
    return status;
  } catch (const ToolError& e) {
    ClosePager();  // the error is read after what the pager showed
    std::fflush(stdout);
    fmt::print(stderr, "blackbox: {}\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    ClosePager();
    std::fflush(stdout);
    fmt::print(stderr, "blackbox: unexpected error: {}\n", e.what());
    return kExitTrouble;
  }
}
