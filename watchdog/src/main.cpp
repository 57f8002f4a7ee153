// blackbox-watchdog: keeps one service alive and journals everything it sees.
//
//   blackbox-watchdog [options] -- COMMAND [ARGS...]
//   blackbox-watchdog --app-script PATH [options]
//   blackbox-watchdog --status [NAME] [--json] [--state-dir DIR]
//   blackbox-watchdog --stop [NAME] [--state-dir DIR]
//   blackbox-watchdog --restart [NAME] [--state-dir DIR]
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "blackbox/journal.h"
#include "control.h"
#include "http_module.h"
#include "instance_name.h"
#include "options.h"
#include "output.h"
#include "spawn.h"
#include "status.h"
#include "supervisor.h"
#include "unique_fd.h"

extern char** environ;

namespace bw = blackbox::watchdog;

namespace {
// <journal>/watchdog.holder: the pid of the watchdog writing the stream,
// read by a second one that finds the stream locked.
std::optional<pid_t> ReadHolder(const std::string& path) {
  bw::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return std::nullopt;
  char buf[32] = {};
  const ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return std::nullopt;
  const long pid = std::strtol(buf, nullptr, 10);
  if (pid <= 0) return std::nullopt;
  return static_cast<pid_t>(pid);
}

void WriteHolder(const std::string& path) {
  bw::UniqueFd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return;  // only a nicer message for a second watchdog depends on it
  const std::string text = fmt::format("{}\n", ::getpid());
  [[maybe_unused]] ssize_t n = ::write(fd.get(), text.data(), text.size());
}

std::string Absolute(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

int Fail(int status, std::string_view message) {
  fmt::print(stderr, "blackbox-watchdog: {}\n", message);
  return status;
}

std::vector<std::string> ChildEnvironment(const bw::Options& o, const std::string& notify_path) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("BLACKBOX_JOURNAL=") || kv.starts_with("NOTIFY_SOCKET=") ||
        kv.starts_with("WATCHDOG_USEC=") || kv.starts_with("WATCHDOG_PID=")) {
      continue;
    }
    env.emplace_back(kv);
  }
  env.push_back("BLACKBOX_JOURNAL=" + o.journal);
  env.push_back("NOTIFY_SOCKET=" + notify_path);
  if (o.watchdog_timeout > 0) {
    env.push_back(
        fmt::format("WATCHDOG_USEC={}", static_cast<long long>(o.watchdog_timeout * 1e6)));
  }
  return env;
}

// The seed's `--app-script main.py`: a path relative to the working
// directory (not looked up in PATH), run directly when executable, and a
// `.py` file that is not executable run with python3, as the original ran its
// script with the Python interpreter. Empty, with `*error` set, when it cannot
// be run: missing, a directory, or not executable.
std::vector<std::string> AppScriptCommand(const std::string& script, std::string* error) {
  const std::string path = Absolute(script);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    *error = fmt::format("{}: {}", script, std::strerror(errno));
    return {};
  }
  if (S_ISDIR(st.st_mode)) {
    *error = fmt::format("{}: is a directory, not a program", script);
    return {};
  }
  if (!S_ISREG(st.st_mode)) {
    *error = fmt::format("{}: is not a regular file", script);
    return {};
  }
  if (::access(path.c_str(), X_OK) == 0) return {path};
  if (path.ends_with(".py")) {
    std::optional<std::string> python = bw::ResolveExecutable("python3");
    if (!python) {
      *error = fmt::format("{}: is not executable and python3 is not in PATH", script);
      return {};
    }
    return {*python, path};
  }
  *error = fmt::format(
      "{}: is not executable (chmod u+x it, or give its interpreter: -- INTERPRETER {})", script,
      script);
  return {};
}

// Where a value that made the start fail came from, when that was the saved
// configuration: a bad value saved once must not look like today's mistake.
struct SavedOrigin {
  std::string path;            // the saved configuration, when it was loaded
  std::set<std::string> keys;  // options whose value came from it
  std::string Note(std::string_view key) const {
    if (!keys.contains(std::string(key))) return "";
    return fmt::format(
        " (the value comes from the saved configuration {}: give the option again "
        "or remove that file)",
        path);
  }
};

int RunWatchdog(bw::Options options, const std::string& state_dir, const SavedOrigin& origin) {
  if (options.command.empty()) {
    return Fail(bw::kExitUsage,
                "no command to run: give -- COMMAND [ARGS...] or --app-script PATH (or start "
                "once with one so that the state directory remembers it)");
  }
  std::optional<std::string> path = bw::ResolveExecutable(options.command.front());
  if (!path) {
    return Fail(bw::kExitUsage, fmt::format("command: '{}' not found or not executable{}",
                                            options.command.front(), origin.Note("command")));
  }
  std::vector<std::unique_ptr<bw::Pattern>> patterns;
  for (const std::string& text : options.error_patterns) {
    std::string error;
    std::unique_ptr<bw::Pattern> pattern = bw::Pattern::Compile(text, &error);
    if (!pattern) {
      return Fail(bw::kExitUsage,
                  fmt::format("--error-pattern: invalid regular expression '{}': {}", text, error));
    }
    patterns.push_back(std::move(pattern));
  }

  std::vector<std::string> alert_programs;
  for (const std::string& program : options.alert_exec) {
    std::optional<std::string> resolved = bw::ResolveExecutable(program);
    if (!resolved) {
      return Fail(bw::kExitUsage, fmt::format("--alert-exec: '{}' not found or not executable{}",
                                              program, origin.Note("alert_exec")));
    }
    alert_programs.push_back(Absolute(*resolved));
  }

  if (blackbox::Status st = bw::EnsureStateDir(state_dir); !st.ok()) {
    return Fail(bw::kExitFailed, fmt::format("--state-dir: {}", st.message()));
  }
  blackbox::Result<bw::InstanceLock> lock = bw::InstanceLock::Acquire(state_dir);
  if (!lock.ok()) {
    const bool busy = lock.status().code() == blackbox::Status::Code::kBusy;
    return Fail(busy ? bw::kExitAlreadyRunning : bw::kExitFailed, lock.status().message());
  }

  // Before any thread exists (the guard's fork, RocksDB's pools).
  bw::BlockStopSignals();
  blackbox::Result<bw::GroupGuard> guard = bw::GroupGuard::Start();
  if (!guard.ok()) return Fail(bw::kExitFailed, guard.status().ToString());
  lock->WritePid(::getpid(), options.journal);

  std::unique_ptr<blackbox::metrics::MetricsServer> metrics;
  if (!options.metrics_listen.empty()) {
    auto bound = blackbox::metrics::MetricsServer::Bind(options.metrics_listen, options.journal);
    if (!bound.ok()) {
      return Fail(bw::kExitUsage, fmt::format("--metrics-listen: {}{}", bound.status().message(),
                                              origin.Note("metrics_listen")));
    }
    metrics = std::move(bound.value());
  }
  if (!options.alertmanager.empty()) {
    std::string error;
    if (bw::LoadHttpModule(&error) == nullptr) {
      return Fail(bw::kExitUsage,
                  fmt::format("--alertmanager: {}{}", error, origin.Note("alertmanager")));
    }
  }

  bw::OutputSink sink;
  if (auto error =
          sink.Open(options.log_file, static_cast<uint64_t>(options.log_max_mb * 1024 * 1024))) {
    return Fail(bw::kExitFailed, fmt::format("--log-file: {}{}", *error, origin.Note("log_file")));
  }
  blackbox::JournalOptions journal_options;
  journal_options.set_aside_damaged = true;
  journal_options.ring_bytes = static_cast<size_t>(options.journal_ring_mb) << 20;
  auto journal =
      blackbox::Journal::Open(options.journal, blackbox::kWatchdogStream, journal_options);
  std::vector<std::string> journal_warnings;
  if (journal.ok()) {
    // Damage found at open (a log cut short, a stream moved aside): said once
    // here, and journaled by the supervisor once it has started.
    journal_warnings = (*journal)->TakeWarnings();
    for (const std::string& w : journal_warnings) {
      fmt::print(stderr, "blackbox-watchdog: warning: {}\n", w);
    }
  }
  const std::string holder =
      fmt::format("{}/{}.holder", options.journal, blackbox::kWatchdogStream);
  if (!journal.ok()) {
    // Another watchdog writes this journal's stream: name it, not the lock.
    if (std::optional<pid_t> pid = ReadHolder(holder); pid && ::kill(*pid, 0) == 0) {
      return Fail(bw::kExitFailed,
                  fmt::format("journal {}: its {} stream is held by process {} (another "
                              "blackbox-watchdog); give this one its own --journal",
                              options.journal, blackbox::kWatchdogStream, *pid));
    }
    // A journal directory refused as untrusted (a symlink, another user's,
    // writable by others) is a configuration error like a bad state directory.
    const bool refused = journal.status().code() == blackbox::Status::Code::kInvalidArgument;
    return Fail(refused ? bw::kExitUsage : bw::kExitFailed,
                fmt::format("journal {}: {}{}", options.journal, journal.status().ToString(),
                            origin.Note("journal")));
  }
  WriteHolder(holder);
  const std::string notify_path = fmt::format("{}/{}", Absolute(state_dir), bw::kNotifySocketName);
  blackbox::Result<bw::NotifySocket> notify = bw::NotifySocket::Bind(notify_path);
  if (!notify.ok()) return Fail(bw::kExitFailed, notify.status().message());

  bw::SupervisorParts parts{
      .options = options,
      .plan = {.path = *path,
               .argv = options.command,
               .env = ChildEnvironment(options, notify_path),
               .watchdog_pid = options.watchdog_timeout > 0},
      .patterns = std::move(patterns),
      .journal = std::move(journal.value()),
      .notify = std::move(notify.value()),
      .guard = std::move(guard.value()),
      .sink = std::move(sink),
      // Only a start that got its child running saves its configuration: a
      // start that failed must not make every later start fail the same way.
      .on_first_spawn =
          [saved = fmt::format("{}/{}", state_dir, bw::kConfigFileName), options] {
            if (auto error = bw::SaveOptionsFile(saved, options)) {
              fmt::print(stderr, "blackbox-watchdog: saving the configuration: {}\n", *error);
            }
          },
      .metrics = std::move(metrics),
      .alert_programs = std::move(alert_programs),
      .alertmanagers = options.alertmanager,
      .journal_warnings = std::move(journal_warnings),
  };
  bw::Supervisor supervisor(std::move(parts));
  return supervisor.Run();
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{
      "Keeps one service alive (restarts it on crash, hang or resource-limit breach) and "
      "journals everything it sees into <journal>/watchdog."};
  app.name("blackbox-watchdog");
  app.set_version_flag("--version", "blackbox-watchdog " BLACKBOX_VERSION);

  std::map<std::string, std::string> values;
  std::map<std::string, CLI::Option*> flags;
  const std::map<std::string_view, std::string_view> help = {
      {"max_restarts", "restarts allowed inside --restart-window (default 10)"},
      {"restart_delay", "seconds before a restart, fractions allowed (default 30)"},
      {"health_check_interval", "seconds between samples of the child's RSS/CPU (default 30)"},
      {"max_memory_mb", "RSS limit of the child's process tree, MB (default 1024)"},
      {"max_cpu_percent", "CPU limit of the child's process tree, % of one core (default 90)"},
      {"journal", "journal root (default $BLACKBOX_JOURNAL or blackbox-journal)"},
      {"watchdog_timeout", "seconds without WATCHDOG=1 before the child is hung; 0 = off"},
      {"stop_timeout", "seconds from SIGTERM (or SIGABRT) to SIGKILL (default 10)"},
      {"restart", "always | on-failure (default on-failure)"},
      {"restart_window", "seconds in which --max-restarts applies; 0 = the whole run"},
      {"backoff_max", "cap of the doubled delay with --backoff, seconds (default 300)"},
      {"limit_cycles", "consecutive samples over a limit before acting (default 3)"},
      {"forecast_horizon",
       "warn when the memory trend reaches --max-memory within SEC seconds; 0 = off (default "
       "600)"},
      {"log_file", "write the child's output here (size-rotated) instead of passing it through"},
      {"log_max_mb", "rotate the log file past this size, MB (default 10)"},
      {"journal_ring_mb",
       "MiB of a ring of buffered events for the watchdog's stream, a power of two; 0 = off "
       "(default 0)"},
      {"notify_access", "main | all: who may use the notify socket (default all: the group)"},
      {"type",
       "simple | notify: with notify the child is starting until it sends READY=1 (default "
       "simple; notify when --watchdog-timeout is set)"},
      {"metrics_listen",
       "serve GET /metrics (Prometheus) on HOST:PORT, port 0 = a free one (default off)"},
      {"alert_timeout", "seconds an --alert-exec program may run before it is killed (default 10)"},
      {"alert_interval", "seconds: at most one alert of each kind per interval (default 60)"},
      {"name", "name of this watchdog (default: the program's base name); see --state-dir"},
  };
  for (std::string_view key : bw::OptionKeys()) {
    if (key == "command" || key == "error_patterns" || key == "backoff" || key == "alert_exec" ||
        key == "alertmanager") {
      continue;
    }
    const std::string k(key);
    flags[k] = app.add_option(bw::FlagName(key), values[k], std::string(help.at(key)));
  }
  // What each option takes, in --help (CLI11 would say TEXT for all).
  const std::map<std::string, std::string> placeholders = {
      {"name", "NAME"},
      {"max_restarts", "N"},
      {"restart_delay", "SEC"},
      {"health_check_interval", "SEC"},
      {"max_memory_mb", "MB"},
      {"max_cpu_percent", "PERCENT"},
      {"journal", "DIR"},
      {"watchdog_timeout", "SEC"},
      {"stop_timeout", "SEC"},
      {"restart_window", "SEC"},
      {"backoff_max", "SEC"},
      {"limit_cycles", "N"},
      {"forecast_horizon", "SEC"},
      {"log_file", "PATH"},
      {"log_max_mb", "MB"},
      {"journal_ring_mb", "MB"},
      {"notify_access", "main|all"},
      {"type", "simple|notify"},
      {"metrics_listen", "HOST:PORT"},
      {"alert_timeout", "SEC"},
      {"alert_interval", "SEC"},
  };
  for (const auto& [key, placeholder] : placeholders) {
    if (auto it = flags.find(key); it != flags.end()) it->second->type_name(placeholder);
  }
  // --restart is two things, told apart by its value: `--restart always` and
  // `--restart on-failure` set the restart mode of a start (systemd's
  // Restart=); `--restart` alone or `--restart NAME` restarts the child of a
  // running watchdog now (systemctl restart). A watchdog named "always" is
  // restarted with `--restart --name always`.
  flags.at("restart")
      ->expected(0, 1)
      ->type_name("[always|on-failure|NAME]")
      ->description(
          "always | on-failure: which exits are restarted (default on-failure). Alone or with a "
          "NAME: stop the child of the running watchdog NAME gracefully and start it again now, "
          "not counted against --max-restarts (reason manual)");
  // One value per --error-pattern, --alert-exec and --alertmanager, collected
  // as they come, the same way for the three.
  std::list<std::string> bound;  // what CLI11 binds; each value goes to `into`
  auto repeatable = [&](const char* flag, std::vector<std::string>& into, const char* type,
                        const std::string& description) {
    return app.add_option(flag, bound.emplace_back(), description)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
        ->type_name(type)
        ->each([&into](const std::string& v) { into.push_back(v); });
  };
  std::vector<std::string> patterns;
  CLI::Option* pattern_flag = repeatable(
      "--error-pattern", patterns, "REGEX",
      "extended regex matched against each output line (repeatable; default ERROR|CRITICAL|FATAL)");
  std::vector<std::string> alertmanagers;
  CLI::Option* alertmanager_flag =
      repeatable("--alertmanager", alertmanagers, "URL",
                 "post every alert to this Alertmanager (http://HOST:PORT), re-posted while it "
                 "fires and resolved on recovery (repeatable: each peer of a cluster)");
  std::vector<std::string> alert_programs;
  CLI::Option* alert_flag =
      repeatable("--alert-exec", alert_programs, "PROGRAM",
                 "run PROGRAM (no shell; details in BLACKBOX_* variables) on crash, hang, memory, "
                 "cpu, gave-up, recovered (repeatable)");
  bool backoff = false;
  CLI::Option* backoff_flag =
      app.add_flag("--backoff", backoff, "double the restart delay for each restart in the window");
  std::string app_script;
  CLI::Option* app_script_flag =
      app.add_option("--app-script", app_script, "the program to supervise (same as -- PATH)")
          ->type_name("PATH");
  std::string config_file;
  app.add_option("--config", config_file, "TOML file with the same keys; options given here win")
      ->type_name("FILE");
  std::string state_dir;
  CLI::Option* state_dir_flag =
      app.add_option("--state-dir", state_dir,
                     "pid file, saved configuration and notify socket (default ROOT/NAME: ROOT is "
                     "/run/blackbox "
                     "for root, else $XDG_RUNTIME_DIR/blackbox, else /tmp/blackbox-UID)")
          ->type_name("DIR");
  std::string status_name, stop_name;
  CLI::Option* status_flag =
      app.add_option("--status", status_name,
                     "without NAME: one line per watchdog of the user; with NAME (or --name, "
                     "--state-dir): its state, child, restarts and last events")
          ->expected(0, 1)
          ->type_name("[NAME]");
  CLI::Option* stop_flag =
      app.add_option("--stop", stop_name,
                     "stop the watchdog NAME (the only one running, without NAME) gracefully and "
                     "wait for it")
          ->expected(0, 1)
          ->type_name("[NAME]");
  bool json = false;
  app.add_flag("--json", json, "with --status: one JSON object (a list without NAME)");
  std::vector<std::string> command;
  CLI::Option* command_opt =
      app.add_option("command", command, "COMMAND [ARGS...] after --")->type_name("ARGS");
  app.footer(
      "Exit status:\n"
      "  0  the child exited cleanly and is not restarted, or --stop/--restart/--status succeeded\n"
      "  1  the restart budget is spent, or a fatal error after start\n"
      "  2  bad command line or configuration\n"
      "  3  another watchdog already runs in this state directory; with --status, --stop or\n"
      "     --restart: no watchdog runs there\n"
      "\n"
      "Examples:\n"
      "  blackbox-watchdog --name trader -- ./trader --port 9000\n"
      "  blackbox-watchdog --max-memory 512 --restart-delay 0.5 --app-script main.py\n"
      "  blackbox-watchdog --watchdog-timeout 10 -- ./daemon   # sends READY=1, WATCHDOG=1\n"
      "  blackbox-watchdog --status            # every watchdog of this user\n"
      "  blackbox-watchdog --status trader\n"
      "  blackbox-watchdog --restart trader\n"
      "  blackbox-watchdog --stop trader");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(bw::kExitUsage, e.what());
  }

  const bool status = status_flag->count() > 0;
  const bool stop = stop_flag->count() > 0;
  const bool restart = flags.at("restart")->count() > 0 && values["restart"] != "always" &&
                       values["restart"] != "on-failure";
  const std::string restart_name = restart ? values["restart"] : "";
  // With a command to start, --restart can only be the mode.
  if (restart && (command_opt->count() > 0 || app_script_flag->count() > 0)) {
    return Fail(bw::kExitUsage,
                fmt::format("--restart: expected always or on-failure, got '{}'", restart_name));
  }
  if (state_dir_flag->count() > 0 && state_dir.empty()) {
    return Fail(bw::kExitUsage, "--state-dir: must not be empty");
  }
  if (int(status) + int(stop) + int(restart) > 1) {
    return Fail(bw::kExitUsage, "--status, --stop and --restart exclude each other");
  }
  // The commands that act on a running watchdog rather than start one.
  const bool control = status || stop || restart;
  const char* control_flag = status ? "--status" : stop ? "--stop" : "--restart";
  if (json && !status) return Fail(bw::kExitUsage, "--json: only with --status");
  if (flags.at("name")->count() > 0) {
    if (auto error = bw::CheckName(values["name"]))
      return Fail(bw::kExitUsage, "--name: " + *error);
  }
  if (app_script_flag->count() > 0 && command_opt->count() > 0) {
    return Fail(bw::kExitUsage, "--app-script: give either --app-script or -- COMMAND, not both");
  }
  std::vector<std::string> given_command;  // from the command line
  if (app_script_flag->count() > 0) {
    if (app_script.empty()) return Fail(bw::kExitUsage, "--app-script: must not be empty");
    std::string error;
    given_command = AppScriptCommand(app_script, &error);
    if (given_command.empty()) return Fail(bw::kExitUsage, "--app-script: " + error);
  } else if (command_opt->count() > 0) {
    given_command = command;
  }

  // The name picks the default state directory, which holds the saved
  // configuration: it comes from what is known before that file is read
  // (the command line, then --config), else from the program's base name.
  std::string name = flags.at("name")->count() > 0 ? values["name"] : "";
  const std::string& command_name = status ? status_name : stop ? stop_name : restart_name;
  if (!command_name.empty()) {
    if (auto error = bw::CheckName(command_name)) {
      return Fail(bw::kExitUsage, fmt::format("{}: {}", control_flag, *error));
    }
    if (!name.empty() && name != command_name) {
      return Fail(bw::kExitUsage, fmt::format("--name {} and {} {} name different watchdogs", name,
                                              control_flag, command_name));
    }
    name = command_name;
  }
  const bool default_state_dir = state_dir_flag->count() == 0;
  // Which watchdog --status/--stop/--restart mean when nothing names one:
  // --status lists them all; the others take the only one that runs.
  if (control && default_state_dir && name.empty() && given_command.empty() &&
      config_file.empty()) {
    const std::string root = bw::StateRoot();
    if (status) return bw::ListStatus(root, json);
    std::vector<std::string> running;
    for (const std::string& n : bw::ListNames(root)) {
      if (bw::RunningWatchdog(fmt::format("{}/{}", root, n))) running.push_back(n);
    }
    if (running.empty()) {
      fmt::print("blackbox-watchdog: no watchdog is running in {}\n", root);
      return stop ? 0 : bw::kExitNotRunning;
    }
    if (running.size() > 1) {
      return Fail(bw::kExitUsage,
                  fmt::format("{}: {} watchdogs run ({}): give the name of one", control_flag,
                              running.size(), fmt::join(running, ", ")));
    }
    name = running.front();
  }
  std::vector<std::string> config_command;
  if (!config_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(config_file, ec)) {
      return Fail(bw::kExitUsage, fmt::format("--config: {}: {}", config_file,
                                              ec ? ec.message() : std::string("no such file")));
    }
    bw::Options peek = bw::DefaultOptions();
    if (auto error = bw::LoadOptionsFile(config_file, peek, bw::FileTrust::kOwnerOrRoot)) {
      return Fail(bw::kExitUsage, fmt::format("--config: {}", *error));
    }
    if (name.empty()) name = peek.name;
    config_command = peek.command;
  }
  auto program_name = [&](const std::vector<std::string>& cmd) -> std::string {
    if (app_script_flag->count() > 0) return bw::DefaultName(app_script);
    return cmd.empty() ? "" : bw::DefaultName(cmd.front());
  };
  if (name.empty()) {
    name = program_name(!given_command.empty() ? given_command : config_command);
  }
  if (default_state_dir) {
    if (name.empty() && control) {
      return Fail(bw::kExitUsage, "--name: which watchdog? give --name NAME or --state-dir DIR");
    }
    if (name.empty()) {
      return Fail(bw::kExitUsage,
                  "no command to run: give -- COMMAND [ARGS...] or --app-script PATH, or --name "
                  "NAME to start again what the watchdog NAME ran last");
    }
    if (!control) {
      blackbox::Result<std::string> root = bw::EnsureStateRoot();
      if (!root.ok()) return Fail(bw::kExitUsage, root.status().message());
      state_dir = fmt::format("{}/{}", root.value(), name);
    } else {
      state_dir = fmt::format("{}/{}", bw::StateRoot(), name);
    }
  }

  // Layers, weakest first: defaults, the saved configuration, --config, the command line.
  // The state directory's files are trusted (run, overwritten) only when it is
  // private to the running user; --status and --stop only read it.
  bw::Options options = bw::DefaultOptions();
  const std::string saved = fmt::format("{}/{}", state_dir, bw::kConfigFileName);
  std::error_code ec;
  const bool state_dir_exists =
      std::filesystem::exists(std::filesystem::symlink_status(state_dir, ec));
  if (state_dir_exists) {
    if (blackbox::Status st = bw::CheckStateDir(state_dir, /*must_own=*/!control); !st.ok()) {
      return Fail(bw::kExitUsage, fmt::format("--state-dir: {}", st.message()));
    }
  }
  bool saved_loaded = false;
  if (state_dir_exists && std::filesystem::exists(std::filesystem::symlink_status(saved, ec))) {
    if (auto error = bw::LoadOptionsFile(saved, options, bw::FileTrust::kOwnerOnly)) {
      fmt::print(stderr, "blackbox-watchdog: ignoring the saved configuration: {}\n", *error);
      options = bw::DefaultOptions();
    } else {
      saved_loaded = true;
    }
  }
  const bw::Options saved_options = options;
  if (!config_file.empty()) {
    if (auto error = bw::LoadOptionsFile(config_file, options, bw::FileTrust::kOwnerOrRoot)) {
      return Fail(bw::kExitUsage, fmt::format("--config: {}", *error));
    }
  }
  for (auto& [key, flag] : flags) {
    if (flag->count() == 0 || (key == "restart" && restart)) continue;
    if (auto error = bw::SetOption(options, key, values[key])) {
      return Fail(bw::kExitUsage, fmt::format("{}: {}", bw::FlagName(key), *error));
    }
  }
  if (backoff_flag->count() > 0) options.backoff = backoff;
  if (pattern_flag->count() > 0) {
    options.error_patterns.clear();
    for (const std::string& p : patterns) {
      if (auto error = bw::SetOption(options, "error_patterns", p)) {
        return Fail(bw::kExitUsage, fmt::format("--error-pattern: {}", *error));
      }
    }
  }
  if (alertmanager_flag->count() > 0) {
    options.alertmanager.clear();
    for (const std::string& u : alertmanagers) {
      if (auto error = bw::SetOption(options, "alertmanager", u)) {
        return Fail(bw::kExitUsage, fmt::format("--alertmanager: {}", *error));
      }
    }
  }
  if (alert_flag->count() > 0) {
    options.alert_exec.clear();
    for (const std::string& p : alert_programs) {
      if (auto error = bw::SetOption(options, "alert_exec", p)) {
        return Fail(bw::kExitUsage, fmt::format("--alert-exec: {}", *error));
      }
    }
  }
  if (!given_command.empty()) options.command = given_command;
  // A watchdog started with --state-dir and no name takes its program's.
  if (options.name.empty() || flags.at("name")->count() > 0 || default_state_dir) {
    options.name = name;
  }
  if (options.name.empty()) options.name = program_name(options.command);
  options.journal = Absolute(options.journal);
  options.log_file = Absolute(options.log_file);

  // A running watchdog's journal is the one it writes, whatever was saved or
  // given: its pid file says which (the saved configuration comes only after
  // the first spawn).
  if (control) {
    if (std::optional<bw::PidRecord> running = bw::RunningWatchdog(state_dir);
        running && !running->journal.empty()) {
      options.journal = running->journal;
    }
  }
  if (status) return bw::PrintStatus(options.name, state_dir, options, json);
  if (stop) return bw::StopWatchdog(state_dir, options);
  if (restart) return bw::RestartWatchdog(state_dir, options);

  SavedOrigin origin;
  if (saved_loaded) {
    origin.path = saved;
    const bw::Options defaults = bw::DefaultOptions();
    const bool command_given = command_opt->count() > 0 || app_script_flag->count() > 0;
    if (!command_given && !options.command.empty() && options.command == saved_options.command) {
      origin.keys.insert("command");
    }
    auto from_saved = [&](const std::string& key, const std::string& value,
                          const std::string& saved_value, const std::string& default_value) {
      if (flags.at(key)->count() == 0 && value == saved_value && value != default_value) {
        origin.keys.insert(key);
      }
    };
    from_saved("log_file", options.log_file, Absolute(saved_options.log_file),
               Absolute(defaults.log_file));
    from_saved("journal", options.journal, Absolute(saved_options.journal),
               Absolute(defaults.journal));
    from_saved("metrics_listen", options.metrics_listen, saved_options.metrics_listen,
               defaults.metrics_listen);
  }
  return RunWatchdog(std::move(options), state_dir, origin);
}

int main(int argc, char** argv) {
  // A last resort: every expected error is reported where it happens.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    return Fail(bw::kExitFailed, e.what());
  }
}
