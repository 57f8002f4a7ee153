// blackbox state: the folded state now, or at any earlier moment (time travel).
#include "blackbox/state.h"

#include <fmt/format.h>

#include <memory>

#include "command.h"
#include "human_format.h"
#include "journal_access.h"
#include "output_file.h"
#include "pager.h"
#include "state_load.h"
#include "time_spec.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

struct StateOptions {
  std::string at;
  bool json = false;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string When(int64_t ns) { return ns == 0 ? "-" : FormatLocalMs(ns); }

// Colour (when `colour`): the phases as PhaseColour says, errors and crashes red.
void PrintHuman(const SystemState& s, bool colour) {
  auto phase = [colour](fb::Phase p) {
    return Paint(Lower(fb::EnumNamePhase(p)), PhaseColour(p), colour);
  };
  fmt::print("as of          {}\n", When(s.timestamp_ns));
  fmt::print("status         {}\n", phase(s.status));
  fmt::print("pid            {}\n", s.pid);
  fmt::print("uptime         {:.1f} s (run started {})\n", s.uptime_seconds(),
             When(s.run_started_ns));
  // A health sample always counts at least one thread: none means the run
  // was never sampled (a watchdog-only journal, or a run younger than its
  // first interval), and zeros would read as measured.
  if (s.threads == 0 && s.memory_usage_mb == 0 && s.cpu_usage == 0) {
    fmt::print("health         not sampled\n");
  } else {
    fmt::print("memory         {:.1f} MB (system {:.1f}%)\n", s.memory_usage_mb, s.memory_percent);
    fmt::print("cpu            {:.1f}%\n", s.cpu_usage);
    fmt::print("disk           {:.1f}%\n", s.disk_percent);
    fmt::print("threads, fds   {}, {}\n", s.threads, s.open_fds);
  }
  for (const auto& [resource, f] : s.forecasts) {
    fmt::print("forecast       {}\n", Paint(f.message, kRed, colour));
  }
  if (s.last_error) {
    fmt::print("last error     {} {}\n", When(s.last_error->time_ns),
               Paint(fmt::format("{}: {}: {}", s.last_error->context, s.last_error->exception_type,
                                 s.last_error->message),
                     kRed, colour));
  } else {
    fmt::print("last error     none\n");
  }
  fmt::print("restarts       {} of {}\n", s.restart_count, s.max_restarts);
  fmt::print("recovery       {} of {} attempts\n", s.recovery_attempts, s.max_recovery_attempts);
  std::string gauges;
  for (const auto& [name, value] : s.gauges) gauges += fmt::format(" {}={}", name, value);
  fmt::print("gauges        {}\n", gauges.empty() ? " none" : gauges);
  fmt::print("events         {} ({} errors, {} crashes, {} health warnings)\n", s.event_count,
             s.error_count, s.crash_count, s.health_warnings);
  if (s.last_crash) {
    const CrashInfo& c = *s.last_crash;
    std::string how = c.signal != 0 ? SignalName(c.signal)
                                    : (c.exit_code >= 0 ? fmt::format("exit {}", c.exit_code) : "");
    fmt::print("last crash     {} {} pid {} {}{}\n", When(c.time_ns), c.stream, c.crashed_pid,
               Paint(how, kRed, colour), c.first_frame.empty() ? "" : " in " + c.first_frame);
  }
  const WatchdogInfo& w = s.watchdog;
  if (w.watchdog_pid != 0) {
    fmt::print("watchdog       pid {}, child {} {}, {} restarts in window, {} in total\n",
               w.watchdog_pid, w.child_pid, phase(w.phase), w.restart_count, w.total_restarts);
    if (w.has_last_exit) {
      // The last restart's reason belongs to this exit only when a restart
      // followed it: the Restart event is written when the new child starts.
      std::string after;
      if (w.phase == fb::Phase::Stopped) {
        after = "the run was stopped";
      } else if (w.phase == fb::Phase::Failed) {
        after = "restarts spent: the watchdog gave up";
      } else if (w.phase == fb::Phase::Backoff) {
        after = "waiting to restart";
      } else if (w.total_restarts > 0) {
        after = fmt::format("restarted: {}", RestartReasonName(w.last_restart_reason));
      }
      fmt::print("last exit      {}{}\n",
                 w.last_exit_signal != 0 ? SignalName(w.last_exit_signal)
                                         : fmt::format("exit {}", w.last_exit_code),
                 after.empty() ? "" : " (" + after + ")");
    }
    if (w.forecast_seconds > 0) {
      fmt::print("forecast       {}\n", Paint(w.forecast_message, kRed, colour));
    }
    // STATUS= is the child's own text and outlives it in the fold: say that
    // it is the last thing the child reported, not what it is doing now.
    if (!w.status_text.empty()) {
      fmt::print("child said     \"{}\" (its last STATUS=", w.status_text);
      if (w.phase == fb::Phase::Running) {
        fmt::print(")\n");
      } else {
        fmt::print(", sent while it ran; the child is {} now)\n",
                   Lower(fb::EnumNamePhase(w.phase)));
      }
    }
  }
  std::string covered;
  for (const auto& [stream, seq] : s.covered) covered += fmt::format(" {}:{}", stream, seq);
  fmt::print("folded up to  {}\n", covered.empty() ? " nothing" : covered);
}

int ShowState(const GlobalOptions& global, const StateOptions& o) {
  uint64_t damaged = 0;
  SystemState state = LoadStateAt(global.journal, o.at, "--at", &damaged);
  StartPager(global.no_pager);
  UseLargeStdoutBuffer();
  if (o.json) {
    fmt::print("{}\n", SystemStateJson(state, 2));
  } else {
    PrintHuman(state, WantColour(STDOUT_FILENO));
  }
  FinishStdout();
  // The state was folded from what could be read; damaged records were not.
  return damaged > 0 ? kExitTrouble : 0;
}

}  // namespace

void AddStateCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<StateOptions>();
  CLI::App* cmd = app.add_subcommand("state", "Show the folded state, now or at a past moment");
  cmd->add_option("--at", o->at,
                  "Time travel: the state as it was at this time or sequence number "
                  "(2026-01-15T10:30:00Z, 05:14, yesterday, -1h, 120, watchdog:40)");
  cmd->add_flag("--json", o->json,
                "The seed's system_state.json object (same keys), plus gauges and extras");
  cmd->footer(
      "Examples:\n"
      "  blackbox state\n"
      "  blackbox state --at \"2026-01-15 10:30:00\"\n"
      "  blackbox state --at yesterday\n"
      "  blackbox state --at app:120 --json");
  cmd->callback([&body, &global, o] { body = [&global, o] { return ShowState(global, *o); }; });
}

}  // namespace blackbox::tools
