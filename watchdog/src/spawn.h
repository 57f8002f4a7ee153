// Starting the service: clone + exec without a shell, in a new process group,
// killed with its group when the watchdog dies.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "blackbox/status.h"
#include "unique_fd.h"

namespace blackbox::watchdog {

// The absolute or relative path execve should run for `name`: `name` itself
// when it contains a '/', else the first executable match on $PATH.
std::optional<std::string> ResolveExecutable(const std::string& name);

// Everything the child needs, prepared before the clone: between clone and exec
// the child only makes async-signal-safe calls (the watchdog has threads, and
// the child shares its memory until exec).
struct SpawnPlan {
  std::string path;               // resolved executable
  std::vector<std::string> argv;  // argv[0] as the user wrote it
  std::vector<std::string> env;   // KEY=VALUE; WATCHDOG_PID is added in the child
  bool watchdog_pid = false;      // set WATCHDOG_PID=<child pid>
};

struct Child {
  pid_t pid = 0;  // also its process group id
  UniqueFd pidfd;
  UniqueFd out;  // read ends of the child's stdout and stderr, non-blocking
  UniqueFd err;
  int64_t started_mono_ns = 0;
  int64_t started_wall_ns = 0;
};

// Starts the child with clone(CLONE_VM | CLONE_VFORK) and execve: no copy of
// the watchdog's page tables, so a restart costs about what the exec costs.
// Returns once the child has exec'd (or failed to). The child: leads a new process group, gets
// SIGKILL when the watchdog dies (PR_SET_PDEATHSIG), has stdin on /dev/null, stdout/stderr on
// pipes, default signal dispositions and an empty signal mask. When exec fails
// the child exits with status 127 after one line on its stderr.
Result<Child> Spawn(const SpawnPlan& plan);

// Collects the exit status of `pid` once its pidfd is readable. Returns the
// raw wait status, or nullopt while it is still running.
std::optional<int> Reap(pid_t pid);

// A helper process that outlives a SIGKILLed watchdog just long enough to
// SIGKILL the child's whole process group (PR_SET_PDEATHSIG only reaches the
// direct child; a shell script's own children would otherwise survive).
// It learns the current group through a pipe and acts when the pipe closes.
class GroupGuard {
 public:
  // Forks the guard. Call before opening anything the guard should not hold.
  static Result<GroupGuard> Start();
  // The group to kill if the watchdog dies; 0 for none.
  void Watch(pid_t pgid);
  pid_t pid() const { return pid_; }

 private:
  GroupGuard(UniqueFd pipe, pid_t pid) : pipe_(std::move(pipe)), pid_(pid) {}
  UniqueFd pipe_;
  pid_t pid_ = 0;
};

}  // namespace blackbox::watchdog
