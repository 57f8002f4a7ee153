// --status: what the watchdogs of the running user are doing, from the
// journal (the same fold as `blackbox state`) plus live /proc figures.
//
//   --status              one line per watchdog under the state root (like
//                         `supervisorctl status`); --json: a list of objects
//   --status NAME         the full block (like `systemctl status`): command,
//                         state and since when, pids, memory and CPU,
//                         restarts, then the last events of every stream
//   --status --state-dir DIR    the same block for a directory given by path
#pragma once

#include <string>

#include "options.h"

namespace blackbox::watchdog {

// The block for one watchdog (or with `json`, one object). Returns 0 when a
// watchdog runs, 3 when none does, 1 when nothing is known about `state_dir`.
int PrintStatus(const std::string& name, const std::string& state_dir, const Options& options,
                bool json);

// One line (or object) per watchdog under `root`, each read with the
// configuration saved in its state directory. Returns 0 when at least one
// runs, 3 when none does.
int ListStatus(const std::string& root, bool json);

}  // namespace blackbox::watchdog
