// The watchdog's configuration: one plain struct, its defaults (the seed's
// run_watchdog.py values), and the three places a value can come from, in
// rising precedence: the configuration saved in the state directory by the
// previous start, a --config TOML file, the command line.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::watchdog {

enum class RestartMode { kOnFailure, kAlways };
// Who may speak on the notify socket (systemd's NotifyAccess=): kMain only
// the child's main process, kAll any process of its process group.
enum class NotifyAccess { kAll, kMain };

struct Options {
  // The service's argv. argv[0] is looked up in PATH; no shell is involved.
  std::vector<std::string> command;
  // The watchdog's name (instance_name.h): its default state directory is
  // <root>/NAME. Empty: the base name of the program.
  std::string name;
  // Restarts allowed inside restart_window; one more ends the watchdog.
  int max_restarts = 10;
  // Seconds between an exit and the next start (doubling with backoff).
  double restart_delay = 30;
  // Seconds between samples of the child's process tree (RSS, CPU).
  double health_check_interval = 30;
  double max_memory_mb = 1024;
  double max_cpu_percent = 90;  // of one core, summed over the process tree
  // Journal root; the watchdog writes the stream <journal>/watchdog.
  std::string journal{kDefaultJournalRoot};
  // Seconds without a WATCHDOG=1 heartbeat before the child counts as hung. 0 = off.
  double watchdog_timeout = 0;
  // Seconds between SIGTERM (or SIGABRT for a hang) and SIGKILL of the group.
  double stop_timeout = 10;
  RestartMode restart = RestartMode::kOnFailure;
  // Seconds; restarts older than this no longer count. 0 = the whole run.
  double restart_window = 0;
  bool backoff = false;
  double backoff_max = 300;  // cap of the doubled delay, seconds
  // Consecutive samples over a limit before the child is stopped.
  int limit_cycles = 3;
  // Warn (a Forecast event) when the child's memory trend reaches
  // --max-memory within this many seconds; 0 turns forecasts off.
  double forecast_horizon = 600;
  // The child's output goes here (size-rotated) instead of the watchdog's own.
  std::string log_file;
  double log_max_mb = 10;  // rotate when the log file grows past this
  // MiB of the watchdog stream's ring of buffered events (JournalOptions::
  // ring_bytes), 0 or a power of two; 0 = off.
  int journal_ring_mb = 0;
  // POSIX extended regular expressions matched against every output line.
  std::vector<std::string> error_patterns = {"ERROR|CRITICAL|FATAL"};
  NotifyAccess notify_access = NotifyAccess::kAll;
  // --type notify: the child is starting until it says READY=1 (systemd's
  // Type=notify); simple: running once started. A heartbeat timeout implies
  // notify.
  bool notify_type = false;
  // HOST:PORT of the /metrics server (port 0: a free one); empty = off.
  std::string metrics_listen;
  // Programs run (without a shell) when a person must know (alerts.h).
  std::vector<std::string> alert_exec;
  double alert_timeout = 10;   // seconds an alert program may run before it is killed
  double alert_interval = 60;  // seconds: at most one alert per kind per interval
  // Alertmanager peers (http://HOST:PORT[/prefix]) that get every alert.
  std::vector<std::string> alertmanager;
};

// Defaults, with `journal` taken from $BLACKBOX_JOURNAL when set.
Options DefaultOptions();

// Keys of the TOML file, in the order they are saved and journaled.
const std::vector<std::string_view>& OptionKeys();

// The command-line spelling of a key ("restart_delay" -> "--restart-delay").
std::string FlagName(std::string_view key);

// Sets the scalar option `key` (a TOML key) from its text. Returns an error
// message (without the option's name) or nullopt. List keys (command,
// error_patterns, alert_exec, alertmanager) take one element per call and append.
std::optional<std::string> SetOption(Options& options, std::string_view key,
                                     std::string_view value);

// Parses fractional seconds ("0.05", "30"); nullopt unless finite and >= 0.
std::optional<double> ParseSeconds(std::string_view text);

// Every key with its value as text (lists joined as TOML arrays), for the
// journal's Config event and the saved file.
std::vector<std::pair<std::string, std::string>> OptionEntries(const Options& options);

// Reads a TOML file of option keys over `options`. Keys absent from the file
// keep their values. Returns an error message naming the key or the parse
// error's position, or nullopt. `app_script` (the seed's key) is accepted as a
// one-element command; `max_memory`/`max_cpu` as the seed's *_mb/*_percent.
//
// `trust` says whose file is loaded: the saved configuration only when the
// running user owns it, a --config file also when root owns it; neither when
// group or others can write it, nor through a symlink for the saved one.
enum class FileTrust { kAny, kOwnerOnly, kOwnerOrRoot };
std::optional<std::string> LoadOptionsFile(const std::string& path, Options& options,
                                           FileTrust trust = FileTrust::kAny);

// Writes `options` as TOML to `path` atomically, mode 0600, through a fresh
// temporary file (mkstemp) beside it. Returns an error
// message or nullopt.
std::optional<std::string> SaveOptionsFile(const std::string& path, const Options& options);

}  // namespace blackbox::watchdog
