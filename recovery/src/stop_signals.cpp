// SIGINT and SIGTERM: the handler only writes the signal's number to a pipe;
// a thread reads it and shuts the manager down gracefully (or hands it to
// on_shutdown_request).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "crash_capture.h"
#include "recovery_manager_impl.h"

namespace blackbox {
namespace {

// SIGINT/SIGTERM handler -> signal thread. Only the handler and the thread
// touch it; the handler does nothing but write(2) the signal number.
std::atomic<int> g_signal_pipe_w{-1};
std::atomic<bool> g_signals_owned{false};

void OnStopSignal(int sig) {
  int saved = errno;
  int fd = g_signal_pipe_w.load();
  if (fd >= 0) {
    char c = static_cast<char>(sig);
    [[maybe_unused]] ssize_t n = write(fd, &c, 1);
  }
  errno = saved;
}

}  // namespace

void RecoveryManager::Impl::InstallSignals() {
  if (g_signals_owned.exchange(true)) return;
  if (pipe2(signal_pipe_, O_CLOEXEC) != 0) {
    g_signals_owned.store(false);
    return;
  }
  owns_signals_ = true;
  g_signal_pipe_w.store(signal_pipe_[1]);
  signal_thread_ = std::thread([this] { SignalLoop(); });
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &previous_int_);
  sigaction(SIGTERM, &sa, &previous_term_);
}

void RecoveryManager::Impl::SignalLoop() {
  EnsureAltStackForThisThread();
  while (true) {
    char c = 0;
    ssize_t n = read(signal_pipe_[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == 0) return;
    std::function<void(int)> request;
    {
      std::lock_guard lock(mu_);
      request = shutdown_request_;
    }
    if (request) {
      request(c);
      continue;
    }
    Shutdown(fb::Phase::Stopped, fmt::format("signal {}", sigabbrev_np(c) ? sigabbrev_np(c) : "?"));
    std::fflush(nullptr);
    // Not exit(): static destructors would run under the application's
    // still-running threads.
    std::_Exit(0);
  }
}

void RecoveryManager::Impl::UninstallSignals() {
  if (!owns_signals_) return;
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
  g_signal_pipe_w.store(-1);
  char stop = 0;
  [[maybe_unused]] ssize_t n = write(signal_pipe_[1], &stop, 1);
  if (signal_thread_.joinable()) signal_thread_.join();
  close(signal_pipe_[0]);
  close(signal_pipe_[1]);
  g_signals_owned.store(false);
  owns_signals_ = false;
}

}  // namespace blackbox
