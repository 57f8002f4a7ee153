// A watchdog's name and where its state directory is found by default.
//
// Every watchdog has a name (--name, else the base name of the program it
// runs). Without --state-dir its state directory is <root>/NAME, with a
// root that every shell of the same user computes alike, as systemd's
// runtime directories:
//
//   running user   root
//   anyone         $BLACKBOX_STATE_ROOT when set to an absolute path
//   root (uid 0)   /run/blackbox
//   other users    $XDG_RUNTIME_DIR/blackbox (set by the login session)
//                  /tmp/blackbox-UID when XDG_RUNTIME_DIR is unset or not
//                  an absolute path (a cron job, `su` without a login)
//
// The root is created 0700 (only its last component: the parent must exist) and must pass the state
// directory's trust checks (the running user's own, not a symlink, not writable by group or
// others): in /tmp anyone could have created /tmp/blackbox-UID first, and such a directory is
// refused, never used.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blackbox/status.h"

namespace blackbox::watchdog {

// An error message when `name` cannot name a watchdog (it becomes a directory
// name): 1 to 64 characters of [A-Za-z0-9._@-], not starting with '.'.
std::optional<std::string> CheckName(std::string_view name);

// The default name for a command: the base name of `program` with every
// character CheckName refuses replaced by '_' ("" when nothing is left).
std::string DefaultName(std::string_view program);

// The root of the default state directories for the running user (see above).
std::string StateRoot();

// StateRoot(), created (0700) when missing, after the trust checks.
Result<std::string> EnsureStateRoot();

// The names under StateRoot() that hold a watchdog's pid file, sorted.
// Empty when the root does not exist.
std::vector<std::string> ListNames(const std::string& root);

}  // namespace blackbox::watchdog
