// What an exit of the child means: the pure part of Supervisor::OnChildExit.
// No processes, no clock, no I/O: the supervisor decodes the wait status,
// asks JudgeExit, and then does what the verdict says (restart through the
// RestartPolicy, journal, alert). Unit-tested in
// tests/watchdog/exit_verdict_test.cpp.
#pragma once

#include <optional>
#include <string>

#include "alerts.h"
#include "blackbox/event.h"
#include "options.h"

namespace blackbox::watchdog {

// Why the watchdog was stopping the child when it exited (kNone: it was not).
enum class StopCause { kNone, kHang, kMemory, kCpu, kUserStop, kManual };

// How the child ended, from its wait status.
struct ExitInfo {
  int code = -1;  // exit status when the child exited by itself
  int signal = 0;
  bool core_dumped = false;

  static ExitInfo FromWaitStatus(int status);
  bool clean() const { return code == 0; }
  // "killed by SIGSEGV (core dumped)", "exited with status 3".
  std::string Describe() const;
};

struct ExitVerdict {
  // Empty: the run is over (a stop on request, or a clean exit without
  // --restart always). Otherwise the reason of the restart that follows,
  // subject to the restart budget.
  std::optional<fb::RestartReason> restart;
  // Counted against the restart budget; a restart on request is not.
  bool counted = true;
  // Journal a Crash of origin Watchdog: a death the watchdog did not order,
  // or a hang's SIGABRT (the app's own capture records where it hung).
  // Stops for memory or CPU are the watchdog's doing: lifecycle only.
  bool crash_record = false;
  // Raise an alert of `alert_kind`: every death but a clean exit and a
  // restart on request.
  bool alert = false;
  AlertKind alert_kind = AlertKind::kCrash;
};

ExitVerdict JudgeExit(StopCause cause, const ExitInfo& exit, RestartMode mode);

}  // namespace blackbox::watchdog
