#include "alerts.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "alertmanager.h"
#include "blackbox/journal.h"
#include "event_json.h"

extern char** environ;

namespace blackbox::watchdog {
namespace {

std::string SignalText(int sig) {
  const char* abbrev = sig > 0 ? ::sigabbrev_np(sig) : nullptr;
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

bool IsAlertVariable(std::string_view kv) { return kv.starts_with("BLACKBOX_"); }

// vfork + execve: no copy of the watchdog's page tables, and only the calling
// thread waits until the exec. Between the two, async-signal-safe calls only.
// (<spawn.h> is shadowed by the watchdog's own spawn.h on the include path.)
[[gnu::noinline]] pid_t StartProgram(char* const* argv, char* const* envp, int devnull,
                                     const sigset_t* mask) {
  const pid_t pid = ::vfork();
  if (pid == 0) {
    ::setpgid(0, 0);  // a group of its own, killed as one on timeout
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    ::sigprocmask(SIG_SETMASK, mask, nullptr);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);  // the watchdog's own descriptors stay its own
    ::execve(argv[0], argv, envp);
    ::_exit(127);
  }
  return pid;
}

}  // namespace

std::string_view AlertKindName(AlertKind kind) {
  switch (kind) {
    case AlertKind::kCrash:
      return "crash";
    case AlertKind::kHang:
      return "hang";
    case AlertKind::kMemory:
      return "memory";
    case AlertKind::kCpu:
      return "cpu";
    case AlertKind::kGaveUp:
      return "gave-up";
    case AlertKind::kRecovered:
      return "recovered";
    case AlertKind::kForecast:
      return "forecast";
  }
  return "unknown";
}

std::optional<uint64_t> AlertLimiter::Admit(AlertKind kind, int64_t now_ns) {
  const size_t i = static_cast<size_t>(kind);
  if (last_[i] && now_ns - *last_[i] < interval_ns_) {
    ++suppressed_[i];
    return std::nullopt;
  }
  last_[i] = now_ns;
  const uint64_t held = suppressed_[i];
  suppressed_[i] = 0;
  return held;
}

std::string AlertSummary(const Alert& a, std::string_view frame) {
  const std::string who = fmt::format("{} pid {}", a.service, a.child_pid);
  const std::string how = a.signal != 0 ? fmt::format("died of {}", SignalText(a.signal))
                                        : fmt::format("exited with status {}", a.exit_code);
  const std::string where = frame.empty() ? "" : fmt::format(" in {}", frame);
  switch (a.kind) {
    case AlertKind::kCrash:
      return fmt::format("{} {}{}; restart {} of {}", who, how, where, a.restarts, a.max_restarts);
    case AlertKind::kHang:
      return fmt::format("{} hung (no heartbeat) and was stopped; restart {} of {}", who,
                         a.restarts, a.max_restarts);
    case AlertKind::kMemory:
      return fmt::format("{} went over its memory limit and was stopped; restart {} of {}", who,
                         a.restarts, a.max_restarts);
    case AlertKind::kCpu:
      return fmt::format("{} went over its CPU limit and was stopped; restart {} of {}", who,
                         a.restarts, a.max_restarts);
    case AlertKind::kGaveUp:
      return fmt::format("{} {}{}; {} restarts spent, the watchdog gives up", who, how, where,
                         a.max_restarts);
    case AlertKind::kRecovered:
      return fmt::format("{} has run stably for {:.0f} s", who, a.stable_seconds);
    case AlertKind::kForecast:
      return fmt::format("{}: {}", who, a.detail);
  }
  return who;
}

AlertRunner::AlertRunner(AlertOptions options, std::function<void(fb::CallbackT)> journal_result)
    : options_(std::move(options)),
      journal_result_(std::move(journal_result)),
      limiter_(static_cast<int64_t>(options_.interval_seconds * 1e9)),
      app_forecasts_(options_.journal),
      alertmanager_(options_.alertmanagers.empty()
                        ? nullptr
                        : std::make_unique<AlertmanagerClient>(
                              AlertmanagerOptions{.urls = options_.alertmanagers,
                                                  .instance = options_.instance},
                              journal_result_)),
      thread_([this] { Run(); }) {}

AlertRunner::~AlertRunner() { Close(); }

void AlertRunner::Raise(Alert alert) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    queue_.push_back(std::move(alert));
  }
  has_work_.notify_one();
}

void AlertRunner::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  has_work_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (alertmanager_) alertmanager_->Close();
}

bool AlertRunner::Owns(pid_t pid) const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_.contains(pid);
}

std::vector<pid_t> AlertRunner::Running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {running_.begin(), running_.end()};
}

AppForecastWatch::StreamLook AppForecastWatch::Look(const std::string& dir,
                                                    const StreamLook* before) {
  auto mtime_ns = [](const struct stat& st) {
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  };
  StreamLook look;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return look;
  look.valid = true;
  look.dir_ino = st.st_ino;
  look.dir_mtime_ns = mtime_ns(st);
  if (before != nullptr) {
    look.logs = before->logs;  // the same files, looked at again
  } else {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".log") look.logs.push_back({entry.path().string()});
    }
  }
  int64_t newest = look.dir_mtime_ns;
  for (auto& log : look.logs) {
    struct stat ls {};
    const bool ok = ::stat(log.path.c_str(), &ls) == 0;
    log.size = ok ? static_cast<int64_t>(ls.st_size) : -1;
    log.mtime_ns = ok ? mtime_ns(ls) : 0;
    newest = std::max(newest, log.mtime_ns);
  }
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  look.settled =
      static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec - newest > 1'000'000'000;
  return look;
}

std::vector<Alert> AppForecastWatch::Poll(std::string_view service) {
  std::vector<Alert> alerts;
  if (journal_.empty()) return alerts;
  const std::string dir = fmt::format("{}/{}", journal_, kAppStream);
  if (started_ && seen_.valid && seen_.settled && Look(dir, &seen_) == seen_) {
    return alerts;  // nothing appended
  }
  seen_ = Look(dir, nullptr);
  JournalOptions read_only;
  read_only.create_if_missing = false;
  Result<std::unique_ptr<Reader>> reader = Reader::Open(journal_, kAppStream, read_only);
  if (!reader.ok()) {
    started_ = true;  // missing: whatever it holds once created is news
    return alerts;
  }
  const uint64_t last = reader.value()->last_seq();
  if (!started_ || last < after_) {  // first look, or a stream started anew
    started_ = true;
    after_ = last;
    return alerts;
  }
  ScanOptions scan;
  scan.from_seq = after_ + 1;
  Status st = reader.value()->Scan(scan, [&](const Record& r) {
    after_ = r.seq;
    const fb::Forecast* f = r.event->payload_as_Forecast();
    if (f == nullptr || f->cleared()) return true;
    Alert alert;
    alert.kind = AlertKind::kForecast;
    alert.service = std::string(service);
    alert.child_pid = r.event->pid();
    alert.detail = f->message() != nullptr ? f->message()->str() : "";
    alert.resource = f->resource() != nullptr ? f->resource()->str() : "";
    alert.event.assign(r.bytes.begin(), r.bytes.end());
    alert.event_stream = std::string(kAppStream);
    alerts.push_back(std::move(alert));
    return true;
  });
  (void)st;  // damage: the records after it are looked at next time
  return alerts;
}

void AlertRunner::Run() {
  const auto poll_every = std::chrono::duration<double>(options_.app_poll_seconds);
  auto next_poll = std::chrono::steady_clock::now();
  while (true) {
    std::optional<Alert> alert;
    bool closing = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [&] { return closing_ || !queue_.empty(); };
      if (options_.app_poll_seconds > 0) {
        has_work_.wait_until(lock, next_poll, ready);
      } else {
        has_work_.wait(lock, ready);
      }
      closing = closing_;
      if (!queue_.empty()) {
        alert = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (!alert) {
      if (closing) return;                                         // everything delivered
      if (std::chrono::steady_clock::now() < next_poll) continue;  // woken early
      // The app's own forecasts go out as the loop's alerts do.
      for (Alert& a : app_forecasts_.Poll(options_.service)) Admit(std::move(a));
      next_poll = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(poll_every);
      continue;
    }
    Admit(std::move(*alert));
  }
}

void AlertRunner::Admit(Alert alert) {
  // A recovery always resolves what fires, held back or not.
  if (alert.kind == AlertKind::kRecovered && alertmanager_) alertmanager_->Resolve();
  if (std::optional<uint64_t> suppressed = limiter_.Admit(alert.kind, MonoNowNs())) {
    Deliver(alert, *suppressed);
  }
}

std::string AlertRunner::WaitForFrame(const Alert& alert) {
  // The restarted app ingests its predecessor's crash record (spilled by its
  // signal handler) within milliseconds of its start: a bounded wait for it.
  const bool by_signal =
      alert.signal != 0 && (alert.kind == AlertKind::kCrash || alert.kind == AlertKind::kGaveUp);
  if (!by_signal || options_.journal.empty()) return "";
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.frame_wait_seconds);
  JournalOptions read_only;
  read_only.create_if_missing = false;
  while (true) {
    std::string frame;
    if (auto reader = Reader::Open(options_.journal, kAppStream, read_only); reader.ok()) {
      const uint64_t last = reader.value()->last_seq();
      ScanOptions scan;
      scan.from_seq = last > 256 ? last - 256 : 0;
      Status st = reader.value()->Scan(scan, [&](const Record& r) {
        const fb::Crash* c = r.event->payload_as_Crash();
        if (c != nullptr && c->crashed_pid() == alert.child_pid && c->frames() != nullptr) {
          for (const flatbuffers::String* f : *c->frames()) {
            if (f != nullptr && f->size() > 0 && f->string_view().front() != '?' &&
                f->string_view().front() != '[') {
              // The first named frame, its name only: "f(int) +0xe (bin) at x.cpp:42".
              frame = f->str();
              if (size_t offset = frame.find(" +0x"); offset != std::string::npos) {
                frame.resize(offset);
              }
              break;
            }
          }
        }
        return true;
      });
      (void)st;
    }
    if (!frame.empty() || std::chrono::steady_clock::now() >= deadline) return frame;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void AlertRunner::Deliver(const Alert& alert, uint64_t suppressed) {
  const std::string frame = WaitForFrame(alert);
  if (alertmanager_ && alert.kind != AlertKind::kRecovered) {
    alertmanager_->Fire(alert, AlertSummary(alert, frame), frame);
  }
  std::string event_json;
  if (!alert.event.empty()) {
    // Aligned copy: the verifier reads scalars in place.
    std::vector<uint64_t> aligned((alert.event.size() + 7) / 8);
    std::memcpy(aligned.data(), alert.event.data(), alert.event.size());
    if (const fb::Event* e =
            VerifyEvent({reinterpret_cast<const uint8_t*>(aligned.data()), alert.event.size()})) {
      // Numbered by the writer later: 0 here.
      event_json = tools::EventToJsonLine(
          *e, alert.event_stream.empty() ? kWatchdogStream : alert.event_stream, 0);
    }
  }
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!IsAlertVariable(*e)) env.emplace_back(*e);
  }
  env.push_back(fmt::format("BLACKBOX_ALERT={}", AlertKindName(alert.kind)));
  env.push_back(fmt::format("BLACKBOX_SUMMARY={}", AlertSummary(alert, frame)));
  env.push_back(fmt::format("BLACKBOX_SERVICE={}", alert.service));
  env.push_back(fmt::format("BLACKBOX_CHILD_PID={}", alert.child_pid));
  env.push_back(
      fmt::format("BLACKBOX_SIGNAL={}", alert.signal != 0 ? SignalText(alert.signal) : ""));
  env.push_back(fmt::format("BLACKBOX_EXIT_CODE={}", alert.signal != 0 ? -1 : alert.exit_code));
  env.push_back(fmt::format("BLACKBOX_RESTARTS={}", alert.restarts));
  env.push_back(fmt::format("BLACKBOX_JOURNAL={}", options_.journal));
  env.push_back(fmt::format("BLACKBOX_EVENT={}", event_json));
  env.push_back(fmt::format("BLACKBOX_FRAME={}", frame));
  env.push_back(fmt::format("BLACKBOX_SUPPRESSED={}", suppressed));
  for (const std::string& program : options_.programs) RunProgram(program, alert, env);
}

void AlertRunner::RunProgram(const std::string& program, const Alert& alert,
                             const std::vector<std::string>& env) {
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), nullptr};
  std::vector<char*> envp;
  for (const std::string& kv : env) envp.push_back(const_cast<char*>(kv.c_str()));
  envp.push_back(nullptr);

  // Prepared before the fork (see StartProgram).
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  sigset_t none;
  sigemptyset(&none);

  const auto started = std::chrono::steady_clock::now();
  pid_t pid = 0;
  int rc = 0;
  {
    // Registered before the loop can see it among its descendants.
    std::lock_guard<std::mutex> lock(mu_);
    pid = StartProgram(argv.data(), envp.data(), devnull, &none);
    if (pid < 0) {
      rc = errno;
    } else {
      running_.insert(pid);
    }
  }
  if (devnull >= 0) ::close(devnull);

  fb::CallbackT result;
  result.kind = fb::CallbackKind::Alert;
  result.name = fmt::format("alert-exec {} {}", AlertKindName(alert.kind), program);
  if (rc != 0) {
    result.ok = false;
    result.error = fmt::format("cannot start: {}", std::strerror(rc));
    journal_result_(std::move(result));
    return;
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  bool timed_out = false;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int ready;
    do {
      ready = ::poll(&p, 1, static_cast<int>(options_.timeout_seconds * 1000));
    } while (ready < 0 && errno == EINTR);
    ::close(pidfd);
    if (ready == 0) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(pid);
  }
  result.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  result.ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (timed_out) {
    result.error = fmt::format("still running after {} s: killed", options_.timeout_seconds);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    result.error = fmt::format("exit status {}", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    result.error = fmt::format("killed by {}", SignalText(WTERMSIG(status)));
  }
  journal_result_(std::move(result));
}

}  // namespace blackbox::watchdog
