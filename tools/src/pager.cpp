#include "pager.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tool_error.h"

extern char** environ;

namespace blackbox::tools {
namespace {

pid_t g_pager = -1;         // the running pager, -1 without one
bool g_stdout_tty = false;  // stdout was a terminal before the pager took it

// What makes a pager command need a shell (git's list).
constexpr std::string_view kShellMetacharacters = "|&;<>()$`\\\"'*?[#~=%\n";

bool OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (true) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    if (dir.empty()) dir = ".";
    if (access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) return false;
    dirs.remove_prefix(colon + 1);
  }
}

std::vector<std::string> SplitBlanks(std::string_view s) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) words.emplace_back(s.substr(start, i - start));
  }
  return words;
}

// The pager's argv, or empty for none.
std::vector<std::string> PagerCommand() {
  const char* value = std::getenv("BLACKBOX_PAGER");
  if (value == nullptr) value = std::getenv("PAGER");
  if (value == nullptr) {
    if (!OnPath("less")) return {};
    return {"less", "-FRSXM"};
  }
  std::string_view text(value);
  std::vector<std::string> words = SplitBlanks(text);
  if (words.empty() || (words.size() == 1 && words[0] == "cat")) return {};
  if (text.find_first_of(kShellMetacharacters) != std::string_view::npos) {
    return {"/bin/sh", "-c", std::string(text)};
  }
  return words;
}

void WaitForPager() {
  if (g_pager <= 0) return;
  while (waitpid(g_pager, nullptr, 0) < 0 && errno == EINTR) {
  }
  g_pager = -1;
}

// Interrupted (Ctrl-C reaches the pager too): let the pager finish with the
// terminal first, then die of the signal as we would have.
void OnFatalSignal(int sig) {
  int saved = errno;
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) dup2(devnull, STDOUT_FILENO);  // the pager sees the end
  if (g_pager > 0) {
    while (waitpid(g_pager, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  signal(sig, SIG_DFL);
  raise(sig);
  errno = saved;
}

constexpr int kFatalSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

}  // namespace

bool StdoutIsTerminal() { return g_pager > 0 ? g_stdout_tty : isatty(STDOUT_FILENO) == 1; }

void StartPager(bool disabled) {
  if (disabled || g_pager > 0 || isatty(STDOUT_FILENO) != 1) return;
  std::vector<std::string> command = PagerCommand();
  if (command.empty()) return;

  // Everything the child needs is prepared here: after fork it only
  // redirects and execs (other threads may hold locks malloc needs).
  std::vector<std::string> env_text;
  bool has_less = false, has_charset = false;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    has_less |= kv.starts_with("LESS=");
    has_charset |= kv.starts_with("LESSCHARSET=");
    env_text.emplace_back(kv);
  }
  if (!has_less) env_text.emplace_back("LESS=FRSXM");
  if (!has_charset) env_text.emplace_back("LESSCHARSET=utf-8");
  std::vector<char*> envp, argv;
  for (auto& kv : env_text) envp.push_back(kv.data());
  envp.push_back(nullptr);
  for (auto& word : command) argv.push_back(word.data());
  argv.push_back(nullptr);

  int data[2], status[2];
  if (pipe2(data, O_CLOEXEC) != 0) return;
  if (pipe2(status, O_CLOEXEC) != 0) {
    close(data[0]);
    close(data[1]);
    return;
  }
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(data[0], STDIN_FILENO);  // dup2 clears O_CLOEXEC on the copy
    execvpe(argv[0], argv.data(), envp.data());
    int err = errno;
    ssize_t ignored = write(status[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(data[0]);
  close(status[1]);
  if (pid < 0) {
    close(data[1]);
    close(status[0]);
    return;
  }
  int exec_errno = 0;
  ssize_t n;
  while ((n = read(status[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  close(status[0]);
  if (n > 0) {  // exec failed: say so, and write to the terminal instead
    close(data[1]);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    fmt::print(stderr, "blackbox: cannot run the pager '{}': {} (showing the output without it)\n",
               command[0], std::strerror(exec_errno));
    return;
  }
  g_stdout_tty = true;
  dup2(data[1], STDOUT_FILENO);
  close(data[1]);
  g_pager = pid;
  signal(SIGPIPE, SIG_IGN);
  for (int sig : kFatalSignals) signal(sig, OnFatalSignal);
}

bool StdoutGone() {
  if (g_pager <= 0) return false;
  pollfd p{STDOUT_FILENO, POLLOUT, 0};
  return std::ferror(stdout) != 0 || (poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0);
}

void FinishStdout() {
  if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return;
  if (StdoutGone()) return;  // the pager quit: what it did not read is not wanted
  Trouble("cannot write to stdout");
}

void ClosePager() {
  if (g_pager <= 0) return;
  std::fflush(stdout);
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, STDOUT_FILENO);  // closes our end of the pipe: the pager sees the end
    close(devnull);
  } else {
    close(STDOUT_FILENO);
  }
  std::clearerr(stdout);
  WaitForPager();
  for (int sig : kFatalSignals) signal(sig, SIG_DFL);
}

}  // namespace blackbox::tools
