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

// The pid file holds "PID STARTTIME\n"; a file written before the start time
// was recorded holds "PID\n" and reads with start_time 0.
std::optional<PidRecord> ReadPid(int fd) {
  char buf[64] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nullopt;
  PidRecord record;
  const char* end = buf + n;
  auto [p, ec] = std::from_chars(buf, end, record.pid);
  if (ec != std::errc() || record.pid <= 0) return std::nullopt;
  if (p < end && *p == ' ') {
    auto [q, ec2] = std::from_chars(p + 1, end, record.start_time);
    if (ec2 != std::errc()) record.start_time = 0;
  }
  return record;
}

std::string Describe(const struct stat& st) {
  return fmt::format("owned by uid {}, mode {:04o}", st.st_uid, st.st_mode & 07777);
}

}  // namespace

std::optional<uint64_t> ProcessStartTime(pid_t pid) {
  // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and
  // parentheses, so fields are counted from the last ')'. Field 22 is the
  // start time in clock ticks since boot: it differs for a reused pid.
  std::string text;
  {
    UniqueFd fd(::open(fmt::format("/proc/{}/stat", pid).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    char buf[1024];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  }
  size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // After ')' comes field 3 (state); field 22 is 19 fields further.
  size_t pos = close + 1;
  for (int field = 3; field <= 22; ++field) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
    size_t start = pos;
    while (pos < text.size() && text[pos] != ' ') ++pos;
    if (start == pos) return std::nullopt;
    if (field == 22) {
      uint64_t value = 0;
      auto [p, ec] = std::from_chars(text.data() + start, text.data() + pos, value);
      if (ec != std::errc()) return std::nullopt;
      return value;
    }
  }
  return std::nullopt;
}

Status CheckStateDir(const std::string& dir, bool must_own) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return Status::IOError(fmt::format("{}: {}", dir, std::strerror(errno)));
  }
  if (S_ISLNK(st.st_mode)) {
    return Status::InvalidArgument(
        fmt::format("{} is a symbolic link; give the directory itself", dir));
  }
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(fmt::format("{}: not a directory", dir));
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::InvalidArgument(fmt::format(
        "{} is writable by other users ({}); run: chmod 700 {}", dir, Describe(st), dir));
  }
  if (must_own && st.st_uid != ::geteuid()) {
    return Status::InvalidArgument(fmt::format(
        "{} is not owned by the running user (uid {}; it is {})", dir, ::geteuid(), Describe(st)));
  }
  return Status::Ok();
}

namespace {

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
  return CheckStateDir(dir, /*must_own=*/true);
}

Result<InstanceLock> InstanceLock::Acquire(const std::string& state_dir) {
  const std::string path = PidPath(state_dir);
  // O_NOFOLLOW: a symlink left at the pid file must not have its target
  // truncated. 0600: whoever can open the file can flock it and so block the
  // next start.
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    if (errno == ELOOP) {
      return Status::InvalidArgument(fmt::format("{} is a symbolic link; remove it", path));
    }
    return Status::IOError(fmt::format("{}: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    return Status::InvalidArgument(
        fmt::format("{} is not a regular file of the running user; remove it", path));
  }
  ::fchmod(fd.get(), 0600);  // a pid file of an earlier version was 0644
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return Status::IOError(fmt::format("flock {}: {}", path, std::strerror(errno)));
    }
    std::optional<PidRecord> holder = ReadPid(fd.get());
    return Status::Busy(fmt::format("another watchdog{} is running on state directory {}",
                                    holder ? fmt::format(" (pid {})", holder->pid) : "",
                                    state_dir));
  }
  return InstanceLock(std::move(fd));
}

void InstanceLock::WritePid(pid_t pid) {
  const std::string text = fmt::format("{} {}\n", pid, ProcessStartTime(pid).value_or(0));
  if (::ftruncate(fd_.get(), 0) == 0) {
    [[maybe_unused]] ssize_t n = ::pwrite(fd_.get(), text.data(), text.size(), 0);
  }
}

std::optional<PidRecord> RunningWatchdog(const std::string& state_dir, uid_t* owner) {
  UniqueFd fd(::open(PidPath(state_dir).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return std::nullopt;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return std::nullopt;  // nobody holds it
  if (owner != nullptr) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return std::nullopt;
    *owner = st.st_uid;
  }
  return ReadPid(fd.get());
}

int PrintStatus(const std::string& state_dir, const Options& options, bool json) {
  std::optional<pid_t> running;
  if (std::optional<PidRecord> record = RunningWatchdog(state_dir)) running = record->pid;
  LoadStateOptions load;
  load.streams = {std::string(kWatchdogStream)};
  std::optional<SystemState> state;
  std::string journal_error;
  std::error_code ec;
  if (std::filesystem::exists(fmt::format("{}/{}", options.journal, kWatchdogStream), ec)) {
    Result<SystemState> loaded = LoadState(options.journal, load);
    if (loaded.ok()) {
      state = std::move(loaded.value());
    } else {
      journal_error = loaded.status().ToString();
    }
  } else if (ec) {
    journal_error = fmt::format("journal {}: {}", options.journal, ec.message());
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
  // Where a running watchdog serves /metrics (null when off or not running).
  if (running && !w.metrics_address.empty()) {
    out["metrics_address"] = w.metrics_address;
  } else {
    out["metrics_address"] = nullptr;
  }
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
  // The last restart's reason only when there was one: a child that was
  // stopped on request, or never restarted, has no restart reason.
  fmt::print(
      "restarts    {} in the current window, {} in total{}\n", w.restart_count, w.total_restarts,
      w.total_restarts > 0 ? fmt::format(" (last for {})", RestartReasonName(w.last_restart_reason))
                           : "");
  if (w.has_last_exit) {
    const char* abbrev = w.last_exit_signal != 0 ? ::sigabbrev_np(w.last_exit_signal) : nullptr;
    fmt::print("last exit   {}\n",
               w.last_exit_signal == 0 ? fmt::format("exited with status {}", w.last_exit_code)
               : abbrev != nullptr     ? fmt::format("killed by SIG{}", abbrev)
                                       : fmt::format("killed by signal {}", w.last_exit_signal));
  }
  if (!w.status_text.empty()) fmt::print("status      {}\n", w.status_text);
  if (running && !w.metrics_address.empty()) {
    fmt::print("metrics     http://{}/metrics\n", w.metrics_address);
  }
  fmt::print("journal     {}\n", options.journal);
  return running ? 0 : 3;
}

int StopWatchdog(const std::string& state_dir, const Options& options) {
  uid_t owner = 0;
  const std::optional<PidRecord> record = RunningWatchdog(state_dir, &owner);
  if (!record) {
    fmt::print("blackbox-watchdog: no watchdog is running on state directory {}\n", state_dir);
    return 0;
  }
  const std::optional<pid_t> pid = record->pid;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0)));
  if (!pidfd) {
    fmt::print(stderr, "blackbox-watchdog: watchdog pid {}: {}\n", *pid, std::strerror(errno));
    return 1;
  }
  // The pidfd pins the process: checked now, the pid cannot be reused before
  // the signal. The lock is held, but the number in the file is only trusted
  // when the process it names started when the file says and belongs to the
  // file's owner.
  struct stat proc {};
  const std::optional<uint64_t> started = ProcessStartTime(*pid);
  if (record->start_time == 0 || !started || *started != record->start_time ||
      ::stat(fmt::format("/proc/{}", *pid).c_str(), &proc) != 0 || proc.st_uid != owner) {
    fmt::print(stderr,
               "blackbox-watchdog: pid {} in {} is not the watchdog that holds its lock{}; not "
               "signalling it\n",
               *pid, PidPath(state_dir),
               record->start_time == 0 ? " (the file records no start time)" : "");
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
