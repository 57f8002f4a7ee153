// restart_application(): journal the restart, shut down, and execute the
// same program again in this process.
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "crash_capture.h"
#include "recovery_manager_impl.h"

namespace blackbox {

void RecoveryManager::Impl::RestartApplication() {
  int restarts, max_restarts;
  {
    std::lock_guard lock(mu_);
    restarts = state_.restart_count;
    max_restarts = state_.max_restarts;
  }
  if (restarts >= max_restarts) GiveUp(fmt::format("max_restarts ({}) reached", max_restarts));
  fb::RestartT restart;
  restart.attempt = restarts + 1;
  restart.reason = fb::RestartReason::Requested;
  restart.delay_ms = options_.restart_delay.count();
  restart.child_pid = getpid();
  Record(std::move(restart), fb::Severity::Warning, Durability::kDurable);
  Shutdown(fb::Phase::Stopped, "restart requested");
  std::this_thread::sleep_for(options_.restart_delay);

  // The new image opens the journal again: release it (and its lock) first.
  StopThreads();
  if (owns_crash_capture_) UninstallCrashCapture();
  journal_.reset();
  std::fflush(nullptr);
  if (argv_.empty()) GiveUp("cannot read /proc/self/cmdline to restart");
  std::vector<char*> args;
  for (std::string& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  fmt::print(stderr, "blackbox: cannot re-execute {}: {}\n", argv_[0], std::strerror(errno));
  std::_Exit(kRecoveryExhaustedExitCode);
}

}  // namespace blackbox
