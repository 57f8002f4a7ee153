#include "fault_support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace blackbox::faults {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// argv and environment as the char* arrays execve wants; built before fork
// because the child may only make async-signal-safe calls.
struct ExecPlan {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;

  ExecPlan(const std::vector<std::string>& a, const std::vector<std::string>& extra_env) : args(a) {
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    for (const std::string& kv : extra_env) {
      const std::string key = kv.substr(0, kv.find('=') + 1);
      std::erase_if(env, [&](const std::string& old) { return old.starts_with(key); });
      env.push_back(kv);
    }
    for (std::string& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (std::string& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

// Forks and execs; the child's stdin/stdout/stderr become the given fds.
pid_t Spawn(const ExecPlan& plan, int in, int out, int err, std::optional<mode_t> mask) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  if (mask) umask(*mask);
  dup2(in, STDIN_FILENO);
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  // Everything else is closed so that no pipe of another test leaks in.
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  _exit(127);
}

void FillResult(int status, ProcessResult& r) {
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv, const RunOptions& options) {
  ExecPlan plan(argv, options.extra_env);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = Spawn(plan, null_in, out[1], err[1], options.umask);
  close(null_in);
  close(out[1]);
  close(err[1]);
  ProcessResult r;
  const auto deadline = Clock::now() + options.timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  FillResult(status, r);
  return r;
}

Child::Child(const std::vector<std::string>& argv, const std::string& stderr_path,
             const RunOptions& options) {
  ExecPlan plan(argv, options.extra_env);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (err < 0) throw std::runtime_error("cannot open " + stderr_path);
  pid_ = Spawn(plan, in[0], out[1], err, options.umask);
  close(in[0]);
  close(out[1]);
  close(err);
  in_ = in[1];
  out_ = out[0];
  // A child that died must not kill us with SIGPIPE when we write to it.
  signal(SIGPIPE, SIG_IGN);
}

Child::~Child() {
  if (pid_ > 0) Kill();
  if (in_ >= 0) close(in_);
  if (out_ >= 0) close(out_);
}

std::optional<std::string> Child::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (eof_) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return std::nullopt;
    char buf[65536];
    ssize_t got = read(out_, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof_ = true;
      continue;
    }
    buffer_.append(buf, static_cast<size_t>(got));
  }
}

bool Child::WriteLine(const std::string& line) {
  std::string text = line + "\n";
  return write(in_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

int Child::Kill() {
  int status = 0;
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  return status;
}

std::optional<int> Child::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (pid_ > 0) {
    int status = 0;
    pid_t got = waitpid(pid_, &status, WNOHANG);
    if (got == pid_) {
      pid_ = -1;
      return status;
    }
    if (Clock::now() > deadline) return std::nullopt;
    usleep(5000);
  }
  return std::nullopt;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

int CountLines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TmpfsMount::TmpfsMount(const std::string& dir, size_t bytes) : dir_(dir) {
  if (geteuid() != 0) {
    reason_ = "needs root to mount a tmpfs";
    return;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string data = "size=" + std::to_string(bytes) + ",mode=0700";
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, data.c_str()) != 0) {
    reason_ = std::string("mount -t tmpfs failed: ") + std::strerror(errno);
    return;
  }
  mounted_ = true;
}

TmpfsMount::~TmpfsMount() {
  if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
}

}  // namespace blackbox::faults
