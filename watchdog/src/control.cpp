#include "control.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "blackbox/state.h"
#include "process_tree.h"

namespace blackbox::watchdog {
namespace {

std::string PidPath(const std::string& dir) { return fmt::format("{}/{}", dir, kPidFileName); }

std::optional<pid_t> ReadPid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nullopt;
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(buf, buf + n, pid);
  if (ec != std::errc() || pid <= 0) return std::nullopt;
  return pid;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Status EnsureStateDir(const std::string& dir) {
  std::error_code ec;
  // Private: the notify socket in it accepts heartbeats from whoever can reach it.
  if (std::filesystem::create_directories(dir, ec)) ::chmod(dir.c_str(), 0700);
  if (ec) return Status::IOError(fmt::format("{}: {}", dir, ec.message()));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::IOError(fmt::format("{}: not a directory", dir));
  }
  return Status::Ok();
}

Result<InstanceLock> InstanceLock::Acquire(const std::string& state_dir) {
  const std::string path = PidPath(state_dir);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) return Status::IOError(fmt::format("{}: {}", path, std::strerror(errno)));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return Status::IOError(fmt::format("flock {}: {}", path, std::strerror(errno)));
    }
    std::optional<pid_t> holder = ReadPid(fd.get());
    return Status::Busy(fmt::format("another watchdog{} is running on state directory {}",
                                    holder ? fmt::format(" (pid {})", *holder) : "", state_dir));
  }
  return InstanceLock(std::move(fd));
}

void InstanceLock::WritePid(pid_t pid) {
  const std::string text = fmt::format("{}\n", pid);
  if (::ftruncate(fd_.get(), 0) == 0) {
    [[maybe_unused]] ssize_t n = ::pwrite(fd_.get(), text.data(), text.size(), 0);
  }
}

std::optional<pid_t> RunningWatchdog(const std::string& state_dir) {
  UniqueFd fd(::open(PidPath(state_dir).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return std::nullopt;  // nobody holds it
  return ReadPid(fd.get());
}

int PrintStatus(const std::string& state_dir, const Options& options, bool json) {
  const std::optional<pid_t> running = RunningWatchdog(state_dir);
  LoadStateOptions load;
  load.streams = {std::string(kWatchdogStream)};
  std::optional<SystemState> state;
  std::string journal_error;
  if (std::filesystem::exists(fmt::format("{}/{}", options.journal, kWatchdogStream))) {
    Result<SystemState> loaded = LoadState(options.journal, load);
    if (loaded.ok()) {
      state = std::move(loaded.value());
    } else {
      journal_error = loaded.status().ToString();
    }
  } else {
    journal_error = fmt::format("no watchdog stream in journal {}", options.journal);
  }
  if (!state && !running) {
    fmt::print(stderr, "blackbox-watchdog: nothing known about state directory {}: {}\n", state_dir,
               journal_error);
    return 1;
  }
  const WatchdogInfo w = state ? state->watchdog : WatchdogInfo{};
  const int64_t now = WallNowNs();

  // The journal says what the watchdog last wrote; the lock says whether it
  // still lives. A watchdog that was SIGKILLed never wrote "stopped".
  std::string journal_state = Lower(PhaseName(w.phase));
  std::string state_name = journal_state;
  const bool live_phase = w.phase == fb::Phase::Initializing || w.phase == fb::Phase::Starting ||
                          w.phase == fb::Phase::Running || w.phase == fb::Phase::Backoff ||
                          w.phase == fb::Phase::Stopping;
  if (!running && live_phase) state_name = "stopped";
  const bool child_alive = running && w.child_pid > 0 && ::kill(w.child_pid, 0) == 0 &&
                           (w.phase == fb::Phase::Starting || w.phase == fb::Phase::Running ||
                            w.phase == fb::Phase::Stopping);
  std::optional<TreeSample> live;
  if (child_alive) live = SampleProcessTree(w.child_pid);
  const uint64_t rss = live ? live->rss_bytes : w.child_rss_bytes;

  nlohmann::json out;
  out["state_dir"] = state_dir;
  out["journal"] = options.journal;
  out["watchdog_pid"] = running ? *running : w.watchdog_pid;
  out["watchdog_running"] = running.has_value();
  out["child_pid"] = child_alive ? w.child_pid : 0;
  out["state"] = state_name;
  out["journal_state"] = journal_state;
  out["uptime_seconds"] =
      running && w.started_ns > 0 ? static_cast<double>(now - w.started_ns) / 1e9 : 0.0;
  out["child_uptime_seconds"] = child_alive && w.child_started_ns > 0
                                    ? static_cast<double>(now - w.child_started_ns) / 1e9
                                    : 0.0;
  out["restart_count"] = w.restart_count;
  out["total_restarts"] = w.total_restarts;
  if (w.has_last_exit) {
    out["last_exit"] = {{"exit_code", w.last_exit_code},
                        {"signal", w.last_exit_signal},
                        {"reason", std::string(RestartReasonName(w.last_restart_reason))}};
  } else {
    out["last_exit"] = nullptr;
  }
  out["child_rss_bytes"] = rss;
  out["child_rss_mb"] = static_cast<double>(rss) / (1024.0 * 1024.0);
  out["child_cpu_percent"] = w.child_cpu_percent;
  out["status_text"] = w.status_text;
  if (json) {
    fmt::print("{}\n", out.dump());
    return running ? 0 : 3;
  }
  fmt::print("watchdog    {} ({})\n", out["watchdog_pid"].get<int>(),
             running ? fmt::format("running for {:.1f} s", out["uptime_seconds"].get<double>())
                     : std::string("not running"));
  fmt::print("state       {}{}\n", state_name,
             state_name != journal_state ? fmt::format(" (journal says {})", journal_state) : "");
  if (child_alive) {
    fmt::print("child       {} (up {:.1f} s)\n", w.child_pid,
               out["child_uptime_seconds"].get<double>());
    fmt::print("resources   {:.1f} MB RSS, {:.1f}% CPU (last sample)\n",
               out["child_rss_mb"].get<double>(), w.child_cpu_percent);
  } else {
    fmt::print("child       none\n");
  }
  fmt::print("restarts    {} in the current window, {} in total\n", w.restart_count,
             w.total_restarts);
  if (w.has_last_exit) {
    fmt::print("last exit   {} (restart reason: {})\n",
               w.last_exit_signal != 0 ? fmt::format("signal {}", w.last_exit_signal)
                                       : fmt::format("status {}", w.last_exit_code),
               RestartReasonName(w.last_restart_reason));
  }
  if (!w.status_text.empty()) fmt::print("status      {}\n", w.status_text);
  fmt::print("journal     {}\n", options.journal);
  return running ? 0 : 3;
}

int StopWatchdog(const std::string& state_dir, const Options& options) {
  const std::optional<pid_t> pid = RunningWatchdog(state_dir);
  if (!pid) {
    fmt::print("blackbox-watchdog: no watchdog is running on state directory {}\n", state_dir);
    return 0;
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0)));
  if (!pidfd) {
    fmt::print(stderr, "blackbox-watchdog: watchdog pid {}: {}\n", *pid, std::strerror(errno));
    return 1;
  }
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGTERM, nullptr, 0) != 0) {
    fmt::print(stderr, "blackbox-watchdog: signalling pid {}: {}\n", *pid, std::strerror(errno));
    return 1;
  }
  // The watchdog waits up to stop_timeout for its child, then SIGKILLs it.
  const double wait_s = options.stop_timeout + 10;
  pollfd p{pidfd.get(), POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(wait_s * 1000));
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    fmt::print(stderr, "blackbox-watchdog: watchdog pid {} did not exit within {} s\n", *pid,
               wait_s);
    return 1;
  }
  std::string detail;
  LoadStateOptions load;
  load.streams = {std::string(kWatchdogStream)};
  if (Result<SystemState> state = LoadState(options.journal, load);
      state.ok() && state.value().watchdog.has_last_exit) {
    const WatchdogInfo& w = state.value().watchdog;
    detail = w.last_exit_signal != 0
                 ? fmt::format("; child ended by signal {}", w.last_exit_signal)
                 : fmt::format("; child exited with status {}", w.last_exit_code);
  }
  fmt::print("blackbox-watchdog: stopped watchdog pid {}{}\n", *pid, detail);
  return 0;
}

}  // namespace blackbox::watchdog
