#include "exit_verdict.h"

#include <fmt/format.h>
#include <sys/wait.h>

namespace blackbox::watchdog {

ExitInfo ExitInfo::FromWaitStatus(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) info.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
    info.core_dumped = WCOREDUMP(status);
  }
  return info;
}

std::string ExitInfo::Describe() const {
  if (signal != 0) {
    return fmt::format("killed by {}{}", SignalName(signal), core_dumped ? " (core dumped)" : "");
  }
  return fmt::format("exited with status {}", code);
}

ExitVerdict JudgeExit(StopCause cause, const ExitInfo& exit, RestartMode mode) {
  ExitVerdict v;
  switch (cause) {
    case StopCause::kMemory:
      v.restart = fb::RestartReason::Memory;
      v.alert_kind = AlertKind::kMemory;
      break;
    case StopCause::kCpu:
      v.restart = fb::RestartReason::Cpu;
      v.alert_kind = AlertKind::kCpu;
      break;
    case StopCause::kHang:
      v.restart = fb::RestartReason::Hang;
      v.alert_kind = AlertKind::kHang;
      break;
    case StopCause::kManual:
      v.restart = fb::RestartReason::Manual;
      v.counted = false;
      break;
    case StopCause::kUserStop:
      break;
    case StopCause::kNone:
      if (exit.signal != 0) {
        v.restart = fb::RestartReason::Crash;
      } else if (!exit.clean()) {
        v.restart = fb::RestartReason::Failure;  // a non-zero exit status
      } else if (mode == RestartMode::kAlways) {
        v.restart = fb::RestartReason::Exit;
      }
      break;
  }
  if (!v.restart) return v;
  v.crash_record = (cause == StopCause::kNone || cause == StopCause::kHang) && !exit.clean();
  v.alert = cause != StopCause::kManual && (cause != StopCause::kNone || !exit.clean());
  return v;
}

}  // namespace blackbox::watchdog
