// The state directory: single-instance lock and pid file, saved configuration,
// notify socket; and --stop, which works from any shell (--status is in
// status.h).
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

// Refuses a state directory that is a symlink, not a directory, or writable
// by group or others; with `must_own`, also one the running user does not own.
// Starting needs `must_own` (the directory's files are run and overwritten);
// --status and --stop only read it, and root may stop a service user's
// watchdog.
Status CheckStateDir(const std::string& dir, bool must_own);

// Creates `dir` (0700) when missing, then CheckStateDir(dir, true).
Status EnsureStateDir(const std::string& dir);

// Field 22 of /proc/PID/stat (clock ticks after boot), or nullopt.
std::optional<uint64_t> ProcessStartTime(pid_t pid);

// What watchdog.pid says: "PID STARTTIME JOURNAL\n".
struct PidRecord {
  pid_t pid = 0;
  uint64_t start_time = 0;  // 0: not recorded
  // The journal root the watchdog writes (absolute); empty when not
  // recorded. Written before the child starts, where the saved
  // configuration is written only after its first spawn, so a control
  // command that sees the child running also finds the journal.
  std::string journal;
};

// An exclusive flock on <state-dir>/watchdog.pid, held for the watchdog's
// life. A pid file left by a killed watchdog is not locked and is taken over.
class InstanceLock {
 public:
  // Fails with kBusy, naming the holder's pid, when another watchdog runs.
  static Result<InstanceLock> Acquire(const std::string& state_dir);
  // Replaces the file's content with `pid`, its start time and `journal`.
  void WritePid(pid_t pid, std::string_view journal);

 private:
  explicit InstanceLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// The record of the watchdog holding the lock of `state_dir`, or nullopt when
// none does. `owner`, when given, receives the pid file's owner.
std::optional<PidRecord> RunningWatchdog(const std::string& state_dir, uid_t* owner = nullptr);

// --stop: SIGTERM to the watchdog, then waits for it to exit. Returns 0 when
// it stopped (or none was running), 1 when it did not exit in time or the pid
// in the file is not the process that holds the lock (a reused pid).
int StopWatchdog(const std::string& state_dir, const Options& options);

// --restart: SIGUSR1 to the watchdog, which stops its child gracefully and
// starts it again at once (reason manual, not counted against the restart
// budget); waits until the journal shows the new child. Returns 0 then, 3
// when no watchdog runs, 1 when it did not restart in time.
inline constexpr int kExitNotRunning = 3;
int RestartWatchdog(const std::string& state_dir, const Options& options);

}  // namespace blackbox::watchdog
