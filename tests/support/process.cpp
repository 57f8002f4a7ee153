#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace blackbox::testing {

using Clock = std::chrono::steady_clock;

namespace {

// argv and environment as the char* arrays execve wants; built before fork
// because the child may only make async-signal-safe calls.
struct ExecPlan {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;

  ExecPlan(const std::vector<std::string>& a, const RunOptions& options) : args(a) {
    if (options.env) {
      env = *options.env;
    } else {
      for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    }
    for (const std::string& kv : options.extra_env) {
      const size_t eq = kv.find('=');
      const std::string key = eq == std::string::npos ? kv + "=" : kv.substr(0, eq + 1);
      std::erase_if(env, [&](const std::string& old) { return old.starts_with(key); });
      env.push_back(kv);
    }
    for (std::string& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (std::string& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

void CloseDescriptorsFrom(int first) {
  if (close_range(static_cast<unsigned>(first), ~0U, 0) == 0) return;
  for (int fd = first; fd < 1024; ++fd) close(fd);
}

void FillResult(int status, ProcessResult& r) {
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
}

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

pid_t StartProcess(const std::vector<std::string>& argv, const RunOptions& options, int in, int out,
                   int err) {
  if (argv.empty()) throw std::runtime_error("StartProcess: empty argv");
  ExecPlan plan(argv, options);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed: " + ErrnoText());
  if (pid != 0) return pid;
  if (options.umask) umask(*options.umask);
  dup2(in, STDIN_FILENO);
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  // Everything else is closed so that no pipe of another test leaks in.
  CloseDescriptorsFrom(3);
  execve(plan.argv[0], plan.argv.data(), plan.envp.data());
  _exit(127);
}

ProcessResult RunProcess(const std::vector<std::string>& argv, const RunOptions& options) {
  const std::string in_path = options.stdin_path.empty() ? "/dev/null" : options.stdin_path;
  int in = open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw std::runtime_error("cannot open " + in_path + ": " + ErrnoText());
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in);
    throw std::runtime_error("pipe failed: " + ErrnoText());
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in);
    close(out[0]);
    close(out[1]);
    throw std::runtime_error("pipe failed: " + ErrnoText());
  }
  pid_t pid = -1;
  try {
    pid = StartProcess(argv, options, in, out[1], err[1]);
  } catch (...) {
    for (int fd : {in, out[0], out[1], err[0], err[1]}) close(fd);
    throw;
  }
  close(in);
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
    if (n <= 0) continue;  // timeout (checked above) or EINTR
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
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  FillResult(status, r);
  return r;
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

}  // namespace blackbox::testing
