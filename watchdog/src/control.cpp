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
#include <climits>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "blackbox/state_io.h"
#include "process_tree.h"

namespace blackbox::watchdog {
namespace {

std::string PidPath(const std::string& dir) { return fmt::format("{}/{}", dir, kPidFileName); }

// The pid file holds "PID STARTTIME JOURNAL\n" (the journal is the rest of
// the line: a path may hold spaces); a file of an earlier version holds
// "PID STARTTIME\n" or "PID\n" and reads with what it lacks empty or 0.
std::optional<PidRecord> ReadPid(int fd) {
  char buf[PATH_MAX + 64] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nullopt;
  PidRecord record;
  const char* end = buf + n;
  auto [p, ec] = std::from_chars(buf, end, record.pid);
  if (ec != std::errc() || record.pid <= 0) return std::nullopt;
  if (p < end && *p == ' ') {
    auto [q, ec2] = std::from_chars(p + 1, end, record.start_time);
    if (ec2 != std::errc()) {
      record.start_time = 0;
    } else if (q < end && *q == ' ') {
      const std::string_view rest(q + 1, static_cast<size_t>(end - q - 1));
      const size_t newline = rest.find('\n');
      if (newline != std::string_view::npos && newline > 0 && rest.front() == '/') {
        record.journal = std::string(rest.substr(0, newline));
      }
    }
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

void InstanceLock::WritePid(pid_t pid, std::string_view journal) {
  const bool keep_journal =
      !journal.empty() && journal.find('\n') == std::string_view::npos && journal.size() < PATH_MAX;
  const std::string text = fmt::format("{} {}{}{}\n", pid, ProcessStartTime(pid).value_or(0),
                                       keep_journal ? " " : "", keep_journal ? journal : "");
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

namespace {

// Sends `sig` to the watchdog holding the lock of `state_dir`, through a
// pidfd that pins it. Returns the pidfd, or an invalid one (with the reason
// printed, and *status set) when nothing was signalled; *status is 0 when no
// watchdog runs.
UniqueFd SignalWatchdog(const std::string& state_dir, int sig, int* status, pid_t* signalled) {
  uid_t owner = 0;
  const std::optional<PidRecord> record = RunningWatchdog(state_dir, &owner);
  if (!record) {
    fmt::print("blackbox-watchdog: no watchdog is running on state directory {}\n", state_dir);
    *status = 0;
    return UniqueFd();
  }
  *status = 1;
  const pid_t pid = record->pid;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    fmt::print(stderr, "blackbox-watchdog: watchdog pid {}: {}\n", pid, std::strerror(errno));
    return UniqueFd();
  }
  // The pidfd pins the process: checked now, the pid cannot be reused before
  // the signal. The lock is held, but the number in the file is only trusted
  // when the process it names started when the file says and belongs to the
  // file's owner.
  struct stat proc {};
  const std::optional<uint64_t> started = ProcessStartTime(pid);
  if (record->start_time == 0 || !started || *started != record->start_time ||
      ::stat(fmt::format("/proc/{}", pid).c_str(), &proc) != 0 || proc.st_uid != owner) {
    fmt::print(stderr,
               "blackbox-watchdog: pid {} in {} is not the watchdog that holds its lock{}; not "
               "signalling it\n",
               pid, PidPath(state_dir),
               record->start_time == 0 ? " (the file records no start time)" : "");
    return UniqueFd();
  }
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0) != 0) {
    fmt::print(stderr, "blackbox-watchdog: signalling pid {}: {}\n", pid, std::strerror(errno));
    return UniqueFd();
  }
  *signalled = pid;
  return pidfd;
}

std::optional<WatchdogInfo> FoldWatchdogStream(const std::string& journal) {
  LoadStateOptions load;
  load.streams = {std::string(kWatchdogStream)};
  Result<SystemState> state = LoadState(journal, load);
  if (!state.ok()) return std::nullopt;
  return state.value().watchdog;
}

}  // namespace

int RestartWatchdog(const std::string& state_dir, const Options& options) {
  const std::optional<WatchdogInfo> before = FoldWatchdogStream(options.journal);
  int status = 0;
  pid_t pid = 0;
  UniqueFd pidfd = SignalWatchdog(state_dir, SIGUSR1, &status, &pid);
  if (!pidfd) return status == 0 ? kExitNotRunning : status;
  // Done when the journal holds the manual restart and the new child runs
  // (or, for a service that speaks the notify protocol, has started).
  const int total_before = before ? before->total_restarts : 0;
  const double wait_s = options.stop_timeout + 10;
  const int64_t deadline = MonoNowNs() + static_cast<int64_t>(wait_s * 1e9);
  std::optional<WatchdogInfo> now;
  while (MonoNowNs() < deadline) {
    pollfd p{pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      fmt::print(stderr, "blackbox-watchdog: watchdog pid {} exited instead of restarting\n", pid);
      return 1;
    }
    if (std::optional<WatchdogInfo> folded = FoldWatchdogStream(options.journal)) now = folded;
    if (now && now->total_restarts > total_before &&
        now->last_restart_reason == fb::RestartReason::Manual &&
        (now->phase == fb::Phase::Running || now->phase == fb::Phase::Starting)) {
      fmt::print("blackbox-watchdog: restarted the child of watchdog pid {}: pid {} -> {}\n", pid,
                 before ? before->child_pid : 0, now->child_pid);
      return 0;
    }
  }
  // What the journal said last, so that a wrong conclusion can be told from
  // a restart that did not happen.
  const std::string seen =
      now ? fmt::format("{} restart(s) (before: {}), the last {}, child pid {} {}",
                        now->total_restarts, total_before,
                        RestartReasonName(now->last_restart_reason), now->child_pid,
                        PhaseName(now->phase))
          : std::string("no readable watchdog stream");
  fmt::print(stderr,
             "blackbox-watchdog: watchdog pid {} did not restart its child within {} s (the "
             "journal shows {})\n",
             pid, wait_s, seen);
  return 1;
}

int StopWatchdog(const std::string& state_dir, const Options& options) {
  int status = 0;
  pid_t signalled = 0;
  UniqueFd pidfd = SignalWatchdog(state_dir, SIGTERM, &status, &signalled);
  if (!pidfd) return status;
  const std::optional<pid_t> pid = signalled;
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
