// The state directory: single-instance lock and pid file, saved configuration,
// notify socket; and the two commands that work from any shell, --status and
// --stop.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "blackbox/status.h"
#include "options.h"
#include "unique_fd.h"

namespace blackbox::watchdog {

inline constexpr const char* kPidFileName = "watchdog.pid";
inline constexpr const char* kConfigFileName = "watchdog.toml";
inline constexpr const char* kNotifySocketName = "notify.sock";

// Creates `dir` (0700) when missing.
Status EnsureStateDir(const std::string& dir);

// An exclusive flock on <state-dir>/watchdog.pid, held for the watchdog's
// life. A pid file left by a killed watchdog is not locked and is taken over.
class InstanceLock {
 public:
  // Fails with kBusy, naming the holder's pid, when another watchdog runs.
  static Result<InstanceLock> Acquire(const std::string& state_dir);
  // Replaces the file's content with `pid`.
  void WritePid(pid_t pid);

 private:
  explicit InstanceLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// The pid of the watchdog holding the lock of `state_dir`, or nullopt when
// none does.
std::optional<pid_t> RunningWatchdog(const std::string& state_dir);

// --status: prints the folded watchdog stream plus live /proc figures.
// Returns 0 when a watchdog runs, 3 when none does, 1 when nothing is known.
int PrintStatus(const std::string& state_dir, const Options& options, bool json);

// --stop: SIGTERM to the watchdog, then waits for it to exit. Returns 0 when
// it stopped (or none was running), 1 when it did not exit in time.
int StopWatchdog(const std::string& state_dir, const Options& options);

}  // namespace blackbox::watchdog
