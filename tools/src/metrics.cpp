// blackbox metrics: the watchdog's /metrics exposition, folded from the
// journal offline; printed, or written atomically for node_exporter's
// textfile collector.
#include <fmt/format.h>

#include <memory>

#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "command.h"
#include "journal_access.h"
#include "metrics_exposition.h"
#include "metrics_follower.h"
#include "output_file.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct MetricsOptions {
  std::string textfile = "-";
};

int ShowMetrics(const GlobalOptions& global, const MetricsOptions& o) {
  Result<std::vector<std::string>> streams = ListStreams(global.journal);
  if (!streams.ok()) Trouble(streams.status().message());
  if (streams.value().empty()) Trouble(NoStreamsMessage(global.journal));
  metrics::JournalFollower follower(global.journal);
  if (Status st = follower.CatchUp(); !st.ok()) Trouble(st.ToString());
  metrics::ExpositionInputs inputs;
  inputs.now_ns = WallNowNs();
  OutputFile out(o.textfile);  // before anything is written: a bad path is exit 2
  out.Write(metrics::Exposition(follower.state(), inputs));
  out.Commit();
  return 0;
}

}  // namespace

void AddMetricsCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<MetricsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "metrics", "The Prometheus exposition of the journal (what the watchdog's /metrics serves)");
  cmd->add_option("--textfile", o->textfile,
                  "Write it to PATH atomically (temporary file, fsync, rename; mode 0600), e.g. "
                  "for node_exporter's textfile collector; - = stdout (default)");
  cmd->footer(
      "Examples:\n"
      "  blackbox metrics\n"
      "  blackbox metrics --textfile /var/lib/node_exporter/textfile/blackbox.prom");
  cmd->callback([&body, &global, o] { body = [&global, o] { return ShowMetrics(global, *o); }; });
}

}  // namespace blackbox::tools
