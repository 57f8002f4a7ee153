#include "spawn.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "blackbox/event.h"

namespace blackbox::watchdog {
namespace {

Status Errno(std::string_view what) {
  return Status::IOError(fmt::format("{}: {}", what, std::strerror(errno)));
}

// Async-signal-safe decimal formatting into `out` (at least 21 bytes).
void FormatPid(pid_t pid, char* out) {
  char digits[21];
  int n = 0;
  auto v = static_cast<unsigned long>(pid);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (int i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  out[n] = '\0';
}

void WriteAll(int fd, const char* text) {
  size_t len = std::strlen(text);
  while (len > 0) {
    ssize_t n = ::write(fd, text, len);
    if (n <= 0) return;
    text += n;
    len -= static_cast<size_t>(n);
  }
}

}  // namespace

std::optional<std::string> ResolveExecutable(const std::string& name) {
  if (name.empty()) return std::nullopt;
  auto executable = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) {
    if (executable(name)) return name;
    return std::nullopt;
  }
  const char* env = std::getenv("PATH");
  std::string_view path_list = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = path_list.find(':');
    std::string_view dir = path_list.substr(0, colon);
    std::string candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, name);
    if (executable(candidate)) return candidate;
    if (colon == std::string_view::npos) break;
    path_list.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

namespace {

// What the child needs between clone and execve, all prepared by the parent.
struct ChildSetup {
  const char* path;
  char* const* argv;
  char* const* envp;
  char* watchdog_pid;  // "WATCHDOG_PID=" + room for the digits, or null
  pid_t parent;
  int devnull;
  int out;
  int err;
};

// Runs in the child on its own small stack, sharing the parent's memory until
// execve (CLONE_VM | CLONE_VFORK): async-signal-safe calls only, and nothing
// the parent reads afterwards is written (errno aside; the parent does not
// look at it unless clone failed).
int ChildMain(void* arg) {
  const ChildSetup& setup = *static_cast<const ChildSetup*>(arg);
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != setup.parent) ::_exit(1);  // the watchdog died before prctl took effect
  // The child has its own copy of the dispositions (no CLONE_SIGHAND); the
  // parent blocked every signal around clone, so no handler of the parent's
  // can run here before these are reset.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::dup2(setup.devnull, STDIN_FILENO) < 0 || ::dup2(setup.out, STDOUT_FILENO) < 0 ||
      ::dup2(setup.err, STDERR_FILENO) < 0) {
    ::_exit(127);
  }
  // Nothing of the watchdog's beyond stdin/stdout/stderr reaches the child:
  // the /metrics thread accepts connections without O_CLOEXEC (the HTTP
  // library's choice), and one accepted during this spawn must not stay open
  // in the service.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  if (setup.watchdog_pid != nullptr) FormatPid(::getpid(), setup.watchdog_pid + 13);
  ::execve(setup.path, setup.argv, setup.envp);
  WriteAll(STDERR_FILENO, "blackbox-watchdog: cannot execute ");
  WriteAll(STDERR_FILENO, setup.path);
  WriteAll(STDERR_FILENO, "\n");
  ::_exit(127);
}

// Enough for ChildMain and the libc wrappers it calls.
constexpr size_t kChildStackSize = 64 * 1024;

}  // namespace

Result<Child> Spawn(const SpawnPlan& plan) {
  // Everything the child touches is built here, before clone.
  std::vector<char*> argv;
  for (const std::string& arg : plan.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::string watchdog_pid(13 + 21, '\0');
  std::memcpy(watchdog_pid.data(), "WATCHDOG_PID=", 13);
  std::vector<char*> envp;
  for (const std::string& kv : plan.env) envp.push_back(const_cast<char*>(kv.c_str()));
  if (plan.watchdog_pid) envp.push_back(watchdog_pid.data());
  envp.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Errno("pipe");
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Errno("pipe");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return Errno("/dev/null");
  // Bigger pipes: fewer wakeups for a chatty child. Best effort.
  ::fcntl(out_write.get(), F_SETPIPE_SZ, 1 << 20);
  ::fcntl(err_write.get(), F_SETPIPE_SZ, 1 << 20);

  const ChildSetup setup{
      .path = plan.path.c_str(),
      .argv = argv.data(),
      .envp = envp.data(),
      .watchdog_pid = plan.watchdog_pid ? watchdog_pid.data() : nullptr,
      .parent = ::getpid(),
      .devnull = devnull.get(),
      .out = out_write.get(),
      .err = err_write.get(),
  };
  auto stack = std::make_unique_for_overwrite<std::byte[]>(kChildStackSize);
  const int64_t started_mono = MonoNowNs();
  const int64_t started_wall = WallNowNs();
  // Not fork: fork copies the watchdog's page tables (RocksDB, its threads'
  // stacks) and makes every page copy-on-write, which costs milliseconds on
  // the restart's path, in the parent and again in the child's execve. With
  // CLONE_VM | CLONE_VFORK the child borrows the parent's memory and the
  // parent resumes once the child has exec'd (what posix_spawn does; it
  // cannot set PR_SET_PDEATHSIG). CLONE_PIDFD returns the pidfd with the pid.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  const pid_t pid = ::clone(ChildMain, stack.get() + kChildStackSize,
                            CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD,
                            const_cast<ChildSetup*>(&setup), &pidfd);
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    errno = clone_errno;
    return Errno("clone");
  }

  ::setpgid(pid, pid);  // also from here, so the group exists before we signal it
  Child child;
  child.pid = pid;
  child.started_mono_ns = started_mono;
  child.started_wall_ns = started_wall;
  child.pidfd.reset(pidfd);
  ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
  child.out = std::move(out_read);
  child.err = std::move(err_read);
  return child;
}

std::optional<int> Reap(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid) return status;
  return std::nullopt;
}

Result<GroupGuard> GroupGuard::Start() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Errno("pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Errno("fork");
  if (pid == 0) {
    // The guard. Forked while the watchdog is still single-threaded.
    ::prctl(PR_SET_NAME, "bb-wd-guard");
    ::signal(SIGINT, SIG_IGN);  // a terminal's ^C is for the watchdog to handle
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGQUIT, SIG_IGN);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    const int keep = read_end.get();
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != keep) ::close(fd);
    }
    pid_t pgid = 0;
    while (true) {
      pid_t next = 0;
      ssize_t n = ::read(keep, &next, sizeof next);
      if (n == sizeof next) {
        pgid = next;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;  // EOF: the watchdog is gone
    }
    if (pgid > 0) ::kill(-pgid, SIGKILL);
    ::_exit(0);
  }
  return GroupGuard(std::move(write_end), pid);
}

void GroupGuard::Watch(pid_t pgid) {
  if (!pipe_) return;
  ssize_t n;
  do {
    n = ::write(pipe_.get(), &pgid, sizeof pgid);
  } while (n < 0 && errno == EINTR);
}

}  // namespace blackbox::watchdog
