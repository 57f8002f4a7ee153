#include "supervisor.h"

#include <fmt/format.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "watchdog_events.h"

namespace blackbox::watchdog {
namespace {

constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
// `blackbox-watchdog --restart`: stop the child gracefully and start it again
// now. The control channel is a signal, as for --stop: the kernel checks who
// may send it (the same user, or root), the pid file's start time pins the
// process (control.cpp), the signalfd names the sender for the journal, and
// no socket or file is added to the state directory. Not SIGHUP: a terminal
// that hangs up sends it, and that stops the watchdog, as it always did.
constexpr int kRestartSignal = SIGUSR1;
// Also read through the signalfd: a descendant re-parented to the watchdog
// (the subreaper) has ended and is reaped.
constexpr int kReapSignal = SIGCHLD;
// One read per readable pipe per wakeup: bounds the time a flood can take.
constexpr size_t kReadSlice = 64 * 1024;
// Datagrams handled per wakeup of the notify socket.
constexpr int kNotifySlice = 64;
// After the child's exit, at most this much of its remaining output is read.
constexpr size_t kFinalDrainLimit = 8 << 20;
// At the end of the run, queued output gets this long to reach a slow reader.
constexpr double kOutputFlushSeconds = 0.5;
// Dropped output is journaled at most once per this interval (and at every
// health sample, child exit and the end of the run).
constexpr int64_t kDropReportIntervalNs = 1'000'000'000;
// STATUS= changes are journaled at most once per this interval, coalesced:
// the latest text at the end of it.

int64_t SecondsToNs(double seconds) { return static_cast<int64_t>(std::llround(seconds * 1e9)); }

UniqueFd MakeTimer() {
  return UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
}

void ConsumeTimer(const UniqueFd& timer) {
  uint64_t expirations;
  [[maybe_unused]] ssize_t n = ::read(timer.get(), &expirations, sizeof expirations);
}

// The service's name in alerts: the watchdog's --name, else the command's
// base name.
std::string ServiceName(const Options& o) {
  if (!o.name.empty()) return o.name;
  if (o.command.empty()) return "service";
  const std::string& program = o.command.front();
  const size_t slash = program.rfind('/');
  return slash == std::string::npos ? program : program.substr(slash + 1);
}

RestartPolicyOptions PolicyOptions(const Options& o) {
  RestartPolicyOptions p;
  p.max_restarts = o.max_restarts;
  p.window_ns = SecondsToNs(o.restart_window);
  p.delay_ns = SecondsToNs(o.restart_delay);
  p.backoff = o.backoff;
  p.backoff_max_ns = SecondsToNs(o.backoff_max);
  return p;
}

}  // namespace

void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kStopSignals) sigaddset(&set, sig);
  sigaddset(&set, kReapSignal);
  sigaddset(&set, kRestartSignal);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

Supervisor::Supervisor(SupervisorParts parts)
    : parts_(std::move(parts)),
      writer_(*parts_.journal),
      policy_(PolicyOptions(parts_.options)),
      out_scanner_(&parts_.patterns),
      err_scanner_(&parts_.patterns),
      limits_({.max_memory_mb = parts_.options.max_memory_mb,
               .max_cpu_percent = parts_.options.max_cpu_percent,
               .cycles = parts_.options.limit_cycles}),
      forecaster_(ForecastOptions{.horizon_ns = SecondsToNs(parts_.options.forecast_horizon),
                                  .limit = parts_.options.max_memory_mb * 1024.0 * 1024.0}),
      readiness_({.watchdog_timeout = parts_.options.watchdog_timeout,
                  .stop_timeout = parts_.options.stop_timeout}) {
  if (!parts_.alert_programs.empty() || !parts_.alertmanagers.empty()) {
    AlertOptions options;
    options.programs = parts_.alert_programs;
    options.alertmanagers = parts_.alertmanagers;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) options.instance = host;
    options.timeout_seconds = parts_.options.alert_timeout;
    options.interval_seconds = parts_.options.alert_interval;
    options.journal = parts_.options.journal;
    options.service = ServiceName(parts_.options);
    // Called on the alert thread: Record only encodes and queues.
    alerts_ = std::make_unique<AlertRunner>(std::move(options), [this](fb::CallbackT result) {
      const fb::Severity severity = result.ok ? fb::Severity::Info : fb::Severity::Warning;
      fb::PayloadUnion payload;
      payload.Set(std::move(result));
      Record(severity, std::move(payload), Durability::kBuffered);
    });
  }
}

Supervisor::~Supervisor() = default;

void Supervisor::Watch(int fd, Tag tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = tag;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
}

void Supervisor::Unwatch(int fd) { ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

void Supervisor::Arm(const UniqueFd& timer, double seconds, bool periodic) {
  itimerspec spec{};
  if (seconds > 0) {
    const int64_t ns = std::max<int64_t>(SecondsToNs(seconds), 1);
    spec.it_value.tv_sec = ns / 1'000'000'000;
    spec.it_value.tv_nsec = ns % 1'000'000'000;
    if (periodic) spec.it_interval = spec.it_value;
  }
  ::timerfd_settime(timer.get(), 0, &spec, nullptr);  // zero disarms
}

void Supervisor::Record(fb::Severity severity, fb::PayloadUnion payload, Durability durability,
                        int64_t time_ns, std::string* encoded) {
  fb::EventT event;
  event.stream = std::string(kWatchdogStream);
  event.severity = severity;
  event.time_ns = time_ns;
  event.payload = std::move(payload);
  // Encoded here (the clocks are read now), written by the writer thread.
  std::string bytes = EncodeEvent(std::move(event));
  if (encoded != nullptr) *encoded = bytes;
  writer_.Submit(std::move(bytes), durability);
}

void Supervisor::RecordLifecycle(fb::Phase phase, const std::string& reason, int child_pid,
                                 Durability durability, int exit_code, int signal, bool core_dumped,
                                 int64_t time_ns, std::string* encoded) {
  const fb::Severity severity =
      phase == fb::Phase::Failed ? fb::Severity::Critical : fb::Severity::Info;
  Record(severity, events::Lifecycle(phase, reason, child_pid, exit_code, signal, core_dumped),
         durability, time_ns, encoded);
}

bool Supervisor::Setup(std::string* error) {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  sigset_t set;
  sigemptyset(&set);
  for (int sig : kStopSignals) sigaddset(&set, sig);
  sigaddset(&set, kReapSignal);
  sigaddset(&set, kRestartSignal);
  signals_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  // Descendants that leave the child's process group (setsid, a daemon's
  // double fork) are re-parented to the watchdog when their parent dies,
  // instead of to init: they stay findable from the watchdog's pid, and are
  // killed with the child (KillStragglers).
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    *error = fmt::format("PR_SET_CHILD_SUBREAPER: {}", std::strerror(errno));
    return false;
  }
  health_timer_ = MakeTimer();
  restart_timer_ = MakeTimer();
  kill_timer_ = MakeTimer();
  heartbeat_timer_ = MakeTimer();
  stable_timer_ = MakeTimer();
  status_timer_ = MakeTimer();
  if (!epoll_ || !signals_ || !health_timer_ || !restart_timer_ || !kill_timer_ ||
      !heartbeat_timer_ || !stable_timer_ || !status_timer_) {
    *error = fmt::format("event loop setup: {}", std::strerror(errno));
    return false;
  }
  Watch(signals_.get(), kSignal);
  Watch(parts_.notify.fd(), kNotify);
  Watch(health_timer_.get(), kHealth);
  Watch(restart_timer_.get(), kRestartTimer);
  Watch(kill_timer_.get(), kKillTimer);
  Watch(heartbeat_timer_.get(), kHeartbeatTimer);
  Watch(stable_timer_.get(), kStableTimer);
  Watch(status_timer_.get(), kStatusTimer);
  Arm(health_timer_, parts_.options.health_check_interval, /*periodic=*/true);
  return true;
}

int Supervisor::Run() {
  std::string error;
  if (!Setup(&error)) {
    fmt::print(stderr, "blackbox-watchdog: {}\n", error);
    return kExitFailed;
  }

  // The effective configuration first, then the watchdog's own start.
  std::vector<std::pair<std::string, std::string>> entries = OptionEntries(parts_.options);
  // The address the metrics server actually bound (port 0 picks one), for
  // --status and whoever configures the scrape.
  if (parts_.metrics) entries.emplace_back("metrics_address", parts_.metrics->address());
  Record(fb::Severity::Info, events::Config(entries), Durability::kBuffered);
  RecordLifecycle(fb::Phase::Starting, "watchdog started", 0, Durability::kBuffered);
  for (std::string& warning : parts_.journal_warnings) {
    Record(fb::Severity::Warning, events::JournalDamage(std::move(warning)), Durability::kDurable);
  }

  // Beside the loop, on its own thread: reads the journal, never the loop's state.
  if (parts_.metrics) parts_.metrics->Start([this] { return writer_.failed(); });

  StartChild();
  if (child_) {
    RecordSpawn();
    if (parts_.on_first_spawn) parts_.on_first_spawn();
  }
  epoll_event events[16];
  while (!done_) {
    int n = ::epoll_wait(epoll_.get(), events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      fmt::print(stderr, "blackbox-watchdog: epoll_wait: {}\n", std::strerror(errno));
      if (child_) ::kill(-child_->pid, SIGKILL);
      writer_.Close();
      return kExitFailed;
    }
    for (int i = 0; i < n && !done_; ++i) {
      switch (static_cast<Tag>(events[i].data.u32)) {
        case kSignal:
          OnSignal();
          break;
        case kChildExit:
          OnChildExit();
          break;
        case kStdout:
          OnOutput(false);
          break;
        case kStderr:
          OnOutput(true);
          break;
        case kNotify:
          OnNotify();
          break;
        case kHealth:
          ConsumeTimer(health_timer_);
          OnHealth();
          break;
        case kRestartTimer:
          ConsumeTimer(restart_timer_);
          if (!child_) RestartAfterDelay();
          break;
        case kKillTimer:
          ConsumeTimer(kill_timer_);
          OnKillTimer();
          break;
        case kHeartbeatTimer:
          ConsumeTimer(heartbeat_timer_);
          OnHeartbeatMissed(false);
          break;
        case kStableTimer:
          ConsumeTimer(stable_timer_);
          OnStable();
          break;
        case kStatusTimer:
          ConsumeTimer(status_timer_);
          FlushStatus();
          break;
      }
    }
  }
  parts_.guard.Watch(0);
  ::unlink(parts_.notify.path().c_str());
  // A reader that does not take the output does not hold up the exit.
  parts_.sink.Close(kOutputFlushSeconds);
  ReportDroppedOutput(true);
  ReportNotifyDropped();
  if (parts_.metrics) parts_.metrics->Stop();  // before writer_, which it reads
  if (alerts_) alerts_->Close();               // a gave-up alert goes out before the exit
  writer_.Close();  // everything journaled is on disk before the process exits
  return exit_status_;
}

void Supervisor::StartChild() {
  Result<Child> spawned = Spawn(parts_.plan);
  if (!spawned.ok()) {
    parts_.sink.Message(fmt::format("blackbox-watchdog: cannot start {}: {}\n", parts_.plan.path,
                                    spawned.status().ToString()));
    RecordLifecycle(fb::Phase::Failed, fmt::format("spawn failed: {}", spawned.status().message()),
                    0, Durability::kDurable);
    Finish(kExitFailed);
    return;
  }
  child_ = std::move(spawned.value());
  parts_.guard.Watch(child_->pid);
  Watch(child_->pidfd.get(), kChildExit);
  Watch(child_->out.get(), kStdout);
  Watch(child_->err.get(), kStderr);
  cause_ = Cause::kNone;
  stopping_ = false;
  readiness_.Start(child_->started_mono_ns);
  last_sample_.reset();
  limits_.Reset();
  forecaster_.Reset();
  if (parts_.options.watchdog_timeout > 0) Arm(heartbeat_timer_, parts_.options.watchdog_timeout);
}

void Supervisor::RecordSpawn() {
  // A service that speaks the notify protocol (--type notify, or a heartbeat
  // timeout) is running once it says READY=1 or beats; any other once it is
  // started.
  const bool running_now = !parts_.options.notify_type && parts_.options.watchdog_timeout <= 0;
  RecordLifecycle(fb::Phase::Starting, "", child_->pid,
                  running_now ? Durability::kBuffered : Durability::kDurable, -1, 0, false,
                  child_->started_wall_ns);
  if (running_now) {
    readiness_.MarkRunning();
    RecordLifecycle(fb::Phase::Running, "", child_->pid, Durability::kDurable);
  }
  // After an alert, a child that stays up this long has recovered.
  if (alert_outstanding_) {
    const Options& o = parts_.options;
    Arm(stable_timer_, o.restart_window > 0 ? o.restart_window : o.alert_interval);
  }
}

void Supervisor::RaiseAlert(AlertKind kind, pid_t pid, int signal, int exit_code, int restarts,
                            std::string event, std::string detail) {
  if (!alerts_) return;
  Alert alert;
  alert.kind = kind;
  alert.service = ServiceName(parts_.options);
  alert.child_pid = pid;
  alert.signal = signal;
  alert.exit_code = exit_code;
  alert.restarts = restarts;
  alert.max_restarts = parts_.options.max_restarts;
  alert.event = std::move(event);
  alert.detail = std::move(detail);
  alerts_->Raise(std::move(alert));
  // A forecast is a warning about a run still going: nothing to recover from.
  if (kind != AlertKind::kForecast) alert_outstanding_ = kind != AlertKind::kGaveUp;
}

void Supervisor::OnStable() {
  if (!child_ || !alert_outstanding_ || !alerts_) return;
  alert_outstanding_ = false;
  Alert alert;
  alert.kind = AlertKind::kRecovered;
  alert.service = ServiceName(parts_.options);
  alert.child_pid = child_->pid;
  alert.restarts = policy_.count();
  alert.max_restarts = parts_.options.max_restarts;
  alert.stable_seconds = static_cast<double>(MonoNowNs() - child_->started_mono_ns) / 1e9;
  alerts_->Raise(std::move(alert));
}

void Supervisor::Finish(int status) {
  exit_status_ = status;
  done_ = true;
}

void Supervisor::DrainAndClose(bool is_stderr, UniqueFd& fd, int64_t now_ns) {
  LineScanner& scanner = is_stderr ? err_scanner_ : out_scanner_;
  auto on_match = [&](const LineMatch& m) {
    Record(fb::Severity::Warning, events::OutputMatch(is_stderr, m), Durability::kBuffered);
  };
  if (fd) {
    char buf[kReadSlice];
    size_t total = 0;
    while (total < kFinalDrainLimit) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EOF, or EAGAIN: a straggler outside the group holds the pipe
      parts_.sink.Write(is_stderr, std::string_view(buf, static_cast<size_t>(n)));
      scanner.Feed(std::string_view(buf, static_cast<size_t>(n)), now_ns, on_match);
      total += static_cast<size_t>(n);
    }
    Unwatch(fd.get());
    fd.reset();
  }
  scanner.Finish(now_ns, on_match);
  if (uint32_t dropped = scanner.TakeSuppressed(); dropped > 0) {
    on_match({"", "", dropped});  // the count must not be lost with the child
  }
  ReportDroppedOutput(true);
}

void Supervisor::ReportDroppedOutput(bool now) {
  const int64_t mono = MonoNowNs();
  if (!now && mono - last_drop_report_ns_ < kDropReportIntervalNs) return;
  last_drop_report_ns_ = mono;
  const OutputSink::Dropped dropped = parts_.sink.TakeDropped();
  for (bool is_stderr : {false, true}) {
    const uint64_t bytes = is_stderr ? dropped.stderr_bytes : dropped.stdout_bytes;
    if (bytes == 0) continue;
    if (!told_output_dropped_) {
      told_output_dropped_ = true;
      // Through the sink: the watchdog's own stderr may be the stalled one.
      parts_.sink.Message(
          fmt::format("blackbox-watchdog: the child's output is not being "
                      "read; what does not fit in {} KiB is dropped and "
                      "counted in the journal\n",
                      OutputSink::kQueueBytes / 1024));
    }
    Record(fb::Severity::Warning, events::OutputDropped(is_stderr, bytes), Durability::kBuffered);
  }
}

void Supervisor::OnOutput(bool is_stderr) {
  if (!child_) return;
  UniqueFd& fd = is_stderr ? child_->err : child_->out;
  if (!fd) return;
  char buf[kReadSlice];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n < 0) return;  // EAGAIN / EINTR: the next wakeup retries
  if (n == 0) {
    DrainAndClose(is_stderr, fd, MonoNowNs());  // the child closed it; it may still run
    return;
  }
  std::string_view data(buf, static_cast<size_t>(n));
  parts_.sink.Write(is_stderr, data);
  ReportDroppedOutput(false);
  (is_stderr ? err_scanner_ : out_scanner_).Feed(data, MonoNowNs(), [&](const LineMatch& m) {
    Record(fb::Severity::Warning, events::OutputMatch(is_stderr, m), Durability::kBuffered);
  });
}

void Supervisor::OnChildExit() {
  if (!child_) return;
  std::optional<int> status = Reap(child_->pid);
  if (!status) return;
  const int64_t exit_mono = MonoNowNs();
  const int64_t exit_wall = WallNowNs();
  const pid_t pid = child_->pid;
  const ExitInfo exit = ExitInfo::FromWaitStatus(*status);
  const Cause cause = cause_;  // StartChild below resets cause_

  // Whatever is left of the group goes with its leader (systemd's
  // KillMode=control-group); then the pipes reach EOF.
  ::kill(-pid, SIGKILL);
  Unwatch(child_->pidfd.get());
  Child old = std::move(*child_);
  child_.reset();
  // Only timers that can be armed are disarmed: each is a syscall on the
  // restart's path.
  if (stopping_) Arm(kill_timer_, 0);
  if (parts_.options.watchdog_timeout > 0 || readiness_.service_stopping()) {
    Arm(heartbeat_timer_, 0);
  }
  if (alert_outstanding_) Arm(stable_timer_, 0);

  const ExitVerdict verdict = JudgeExit(cause, exit, parts_.options.restart);
  const std::optional<fb::RestartReason> reason = verdict.restart;
  std::optional<RestartDecision> decision;
  if (reason && !verdict.counted) {
    // Asked for: at once, and not counted against the restart budget.
    decision = RestartDecision{.allowed = true, .attempt = policy_.count(), .delay_ns = 0};
  } else if (reason) {
    decision = policy_.Decide(exit_mono);
  }
  // Restart first: neither draining the old child's last output nor encoding
  // the events is on the restart's path (and the fsync is on the writer's
  // thread).
  const bool restart_now = decision && decision->allowed && decision->delay_ns == 0;
  if (restart_now) {
    StartChild();  // points the guard at the new group
  } else {
    parts_.guard.Watch(0);
  }
  KillStragglers();  // after the spawn: a /proc walk is not on the restart's path

  DrainAndClose(false, old.out, exit_mono);
  DrainAndClose(true, old.err, exit_mono);

  if (!reason) {
    const std::string why = cause == Cause::kUserStop
                                ? fmt::format("stopped on request; child {}", exit.Describe())
                                : fmt::format("child {}", exit.Describe());
    RecordLifecycle(fb::Phase::Stopped, why, pid, Durability::kDurable, exit.code, exit.signal,
                    exit.core_dumped, exit_wall);
    Finish(kExitOk);
    return;
  }

  std::string trigger;  // the event an alert is about
  std::string* keep_trigger = alerts_ ? &trigger : nullptr;
  if (verdict.crash_record) {
    Record(fb::Severity::Critical, events::ChildCrash(pid, exit, exit_wall), Durability::kBuffered,
           exit_wall, keep_trigger);
  }
  const AlertKind kind = verdict.alert_kind;
  const bool alert = verdict.alert;

  const std::string why = fmt::format("{}: child {}", RestartReasonName(*reason), exit.Describe());
  if (!decision->allowed) {
    const std::string window = parts_.options.restart_window > 0
                                   ? fmt::format("within {} s", parts_.options.restart_window)
                                   : std::string("in this run");
    std::string failed;
    RecordLifecycle(fb::Phase::Failed,
                    fmt::format("{}; {} restarts {} already, giving up", why,
                                parts_.options.max_restarts, window),
                    pid, Durability::kDurable, exit.code, exit.signal, exit.core_dumped, 0,
                    alerts_ ? &failed : nullptr);
    if (alert) {
      RaiseAlert(kind, pid, exit.signal, exit.code, decision->attempt,
                 trigger.empty() ? failed : trigger);
    }
    RaiseAlert(AlertKind::kGaveUp, pid, exit.signal, exit.code, decision->attempt, failed);
    parts_.sink.Message(
        fmt::format("blackbox-watchdog: {}; restart limit ({} {}) reached, giving up\n", why,
                    parts_.options.max_restarts, window));
    Finish(kExitFailed);
    return;
  }

  // Waiting for a delayed restart, the backoff is the durable record of the
  // death; the Restart event itself is written when the new child exists, so
  // that it names the child it started.
  std::string backoff;
  RecordLifecycle(fb::Phase::Backoff, why, pid,
                  restart_now ? Durability::kBuffered : Durability::kDurable, exit.code,
                  exit.signal, exit.core_dumped, exit_wall, alerts_ ? &backoff : nullptr);
  if (alert) {
    // The stable period starts at the next spawn (RecordSpawn).
    RaiseAlert(kind, pid, exit.signal, exit.code, decision->attempt,
               trigger.empty() ? backoff : trigger);
  }
  fb::RestartT restart = events::Restart(decision->attempt, *reason, exit, decision->delay_ns);
  if (restart_now) {
    if (!child_) return;  // the spawn failed and was journaled
    restart.child_pid = child_->pid;
    fb::PayloadUnion payload;
    payload.Set(std::move(restart));
    Record(fb::Severity::Warning, std::move(payload), Durability::kBuffered,
           child_->started_wall_ns);
    RecordSpawn();
    return;
  }
  pending_restart_ = std::move(restart);
  Arm(restart_timer_, static_cast<double>(decision->delay_ns) / 1e9);
}

void Supervisor::RestartAfterDelay() {
  StartChild();
  if (pending_restart_) {
    // A spawn that failed was journaled by StartChild; the restart is still
    // recorded (without a pid), as the attempt the budget counted.
    pending_restart_->child_pid = child_ ? child_->pid : 0;
    fb::PayloadUnion payload;
    payload.Set(std::move(*pending_restart_));
    pending_restart_.reset();
    Record(fb::Severity::Warning, std::move(payload), Durability::kBuffered,
           child_ ? child_->started_wall_ns : 0);
  }
  if (child_) RecordSpawn();
}

void Supervisor::OnSignal() {
  signalfd_siginfo info;
  while (::read(signals_.get(), &info, sizeof info) == sizeof info) {
    if (static_cast<int>(info.ssi_signo) == kReapSignal) {
      ReapStragglers();
    } else if (static_cast<int>(info.ssi_signo) == kRestartSignal) {
      RequestRestart(static_cast<pid_t>(info.ssi_pid));
    } else {
      RequestStop();
    }
  }
}

void Supervisor::KillStragglers() {
  // Every descendant of the watchdog but the guard and the current child's
  // tree: after the child's exit, what is left of the old child's processes,
  // whatever their process group or session. The group itself was killed
  // already; this catches those that left it.
  //
  // One walk that does not enter the spared trees. Subtracting a walk of the
  // current child's tree taken first would kill what it forked in between:
  // a crash loop's new child already at its exit had the tracer of its
  // leak checker killed that way, and hung waiting for it.
  std::vector<pid_t> spared = {parts_.guard.pid()};
  if (child_) spared.push_back(child_->pid);
  // Alert programs (and what they started) are the watchdog's own, not the child's.
  if (alerts_) {
    for (pid_t program : alerts_->Running()) spared.push_back(program);
  }
  for (pid_t pid : Descendants(::getpid(), spared)) {
    ::kill(pid, SIGKILL);
  }
  ReapStragglers();
}

void Supervisor::ReapStragglers() {
  // Only the watchdog's other children, one pid at a time: waitpid(-1) could
  // take the current child's status, which OnChildExit reads after its pidfd.
  for (pid_t pid : ChildProcesses(::getpid())) {
    if (pid == parts_.guard.pid() || (child_ && pid == child_->pid)) continue;
    if (alerts_ && alerts_->Owns(pid)) continue;  // the alert thread waits for it
    while (::waitpid(pid, nullptr, WNOHANG) < 0 && errno == EINTR) {
    }
  }
}

void Supervisor::RequestStop() {
  if (cause_ == Cause::kUserStop) return;
  if (!child_) {
    // In backoff: nothing runs, nothing to wait for.
    Arm(restart_timer_, 0);
    cause_ = Cause::kUserStop;
    RecordLifecycle(fb::Phase::Stopped, "stopped on request during backoff", 0,
                    Durability::kDurable);
    Finish(kExitOk);
    return;
  }
  if (stopping_) {
    // Already on its way down (hang, limit): only the restart is called off.
    cause_ = Cause::kUserStop;
    return;
  }
  GracefulStop(Cause::kUserStop, "stop requested");
}

void Supervisor::RequestRestart(pid_t sender) {
  // A stop on request wins; a child already on its way down (hang, limit)
  // is restarted anyway.
  if (cause_ == Cause::kUserStop || done_) return;
  const std::string who = sender > 0 ? fmt::format(" by pid {}", sender) : "";
  if (!child_) {
    // In backoff: the delay is cut short; the restart keeps the reason and
    // the place in the budget it was given at the death.
    RecordLifecycle(fb::Phase::Backoff, fmt::format("restart requested{}: now", who), 0,
                    Durability::kBuffered);
    Arm(restart_timer_, 0);
    RestartAfterDelay();
    return;
  }
  if (stopping_) return;
  GracefulStop(Cause::kManual, fmt::format("restart requested{}", who));
}

void Supervisor::GracefulStop(Cause cause, const std::string& why) {
  cause_ = cause;
  stopping_ = true;
  RecordLifecycle(fb::Phase::Stopping, why, child_->pid, Durability::kDurable);
  ::kill(-child_->pid, SIGTERM);
  Arm(heartbeat_timer_, 0);
  Arm(kill_timer_, parts_.options.stop_timeout > 0 ? parts_.options.stop_timeout : 1e-9);
}

void Supervisor::OnKillTimer() {
  if (!child_) return;
  const fb::LimitKind kind = cause_ == Cause::kMemory ? fb::LimitKind::Memory
                             : cause_ == Cause::kCpu  ? fb::LimitKind::Cpu
                                                      : fb::LimitKind::Heartbeat;
  if (cause_ == Cause::kUserStop) {
    RecordLifecycle(
        fb::Phase::Stopping,
        fmt::format("still running {} s after SIGTERM: SIGKILL", parts_.options.stop_timeout),
        child_->pid, Durability::kBuffered);
  } else {
    Record(fb::Severity::Error,
           events::StopOverran(kind, MonoNowNs() - readiness_.last_heartbeat_ns(),
                               parts_.options.stop_timeout, child_->pid),
           Durability::kBuffered);
  }
  ::kill(-child_->pid, SIGKILL);
}

void Supervisor::OnHeartbeatMissed(bool triggered) {
  if (!child_ || stopping_) return;
  // Since the last heartbeat, or since STOPPING=1 when the stop overran.
  const Readiness::Silence silence = readiness_.SilenceAt(MonoNowNs(), triggered);
  const bool stop_overran = silence.stop_overran;
  const int64_t since_ns = silence.since_ns;
  Record(fb::Severity::Error,
         events::HeartbeatMissed(
             since_ns, stop_overran ? parts_.options.stop_timeout : parts_.options.watchdog_timeout,
             child_->pid),
         Durability::kDurable);
  cause_ = Cause::kHang;
  stopping_ = true;
  // A child that never said READY=1 nor WATCHDOG=1 may not speak the notify protocol at
  // all: say so, or the kill looks like a hang of the program's own.
  std::string never_ready;
  if (silence.never_spoke) {
    never_ready = fmt::format(
        " (it never sent READY=1: a program that does not speak the notify protocol must run "
        "without --watchdog-timeout)");
    parts_.sink.Message(fmt::format(
        "blackbox-watchdog: warning: the child sent no READY=1 or WATCHDOG=1 within "
        "--watchdog-timeout {} s and is killed as hung; a program that does not speak the "
        "notify protocol must run without --watchdog-timeout\n",
        parts_.options.watchdog_timeout));
  }
  RecordLifecycle(fb::Phase::Stopping,
                  triggered      ? std::string("WATCHDOG=trigger: SIGABRT")
                  : stop_overran ? fmt::format("still running {:.0f} ms after STOPPING=1: SIGABRT",
                                               static_cast<double>(since_ns) / 1e6)
                                 : fmt::format("no heartbeat for {:.0f} ms: SIGABRT{}",
                                               static_cast<double>(since_ns) / 1e6, never_ready),
                  child_->pid, Durability::kBuffered);
  // SIGABRT to the main process only, as systemd does: its crash handler runs.
  ::kill(child_->pid, SIGABRT);
  Arm(heartbeat_timer_, 0);
  Arm(kill_timer_, parts_.options.stop_timeout > 0 ? parts_.options.stop_timeout : 1e-9);
}

void Supervisor::OnNotify() {
  for (int i = 0; i < kNotifySlice; ++i) {
    std::optional<NotifyMessage> message = parts_.notify.Receive();
    if (!message) return;
    if (!child_ || stopping_) continue;
    if (!SenderAllowed(message->sender)) {
      ++notify_dropped_;
      continue;
    }
    Readiness::Actions actions = readiness_.OnMessage(*message, MonoNowNs());
    for (Readiness::Record& r : actions.journal) {
      RecordLifecycle(r.phase, r.reason, child_->pid,
                      r.durable ? Durability::kDurable : Durability::kBuffered);
    }
    if (actions.status_timer) Arm(status_timer_, *actions.status_timer);
    if (actions.heartbeat_timer) Arm(heartbeat_timer_, *actions.heartbeat_timer);
    if (actions.triggered) {
      OnHeartbeatMissed(true);
      return;
    }
  }
}

bool Supervisor::SenderAllowed(pid_t sender) const {
  // The kernel names the sender (SCM_CREDENTIALS); 0 when it cannot (another
  // pid namespace).
  if (sender <= 0) return false;
  if (sender == child_->pid) return true;
  if (parts_.options.notify_access == NotifyAccess::kMain) return false;
  // NotifyAccess=all: any process of the child's group. A sender that has
  // already exited cannot be checked, and its pid may already belong to
  // someone else, so it is refused: a process that notifies and exits at
  // once (systemd-notify) is heard only while it exists, which it does until
  // the loop reads its datagram unless the watchdog is held up. The
  // credentials are checked after the read, so a pid reused inside the
  // group in between is the remaining gap, as with systemd.
  const pid_t group = ::getpgid(sender);
  return group >= 0 && group == child_->pid;
}

void Supervisor::ReportNotifyDropped() {
  if (notify_dropped_ == notify_dropped_reported_) return;
  notify_dropped_reported_ = notify_dropped_;
  Record(fb::Severity::Warning, events::NotifyDropped(notify_dropped_), Durability::kBuffered);
}

void Supervisor::FlushStatus() {
  if (!child_) return;
  if (std::optional<Readiness::Record> r = readiness_.FlushStatus(MonoNowNs())) {
    RecordLifecycle(r->phase, r->reason, child_->pid, Durability::kBuffered);
  }
}

void Supervisor::OnHealth() {
  ReportDroppedOutput(true);
  ReportNotifyDropped();
  if (!child_) return;
  const int64_t now = MonoNowNs();
  if (readiness_.status_pending()) {
    FlushStatus();
    Arm(status_timer_, 0);
  }
  std::optional<TreeSample> sample = SampleProcessTree(child_->pid);
  if (!sample) return;
  const double rss_mb = static_cast<double>(sample->rss_bytes) / (1024.0 * 1024.0);
  std::optional<double> cpu;
  if (last_sample_) cpu = CpuPercent(*last_sample_, *sample, now - last_sample_ns_);
  last_sample_ = sample;
  last_sample_ns_ = now;

  Record(fb::Severity::Info, events::Health(*sample, cpu, child_->pid, limits_.Over(rss_mb, cpu)),
         Durability::kBuffered);

  if (stopping_) return;
  if (std::optional<ForecastEvent> f =
          forecaster_.Observe(now, static_cast<double>(sample->rss_bytes))) {
    std::string encoded;
    Record(f->cleared ? fb::Severity::Info : fb::Severity::Warning,
           events::Forecast(*f, child_->pid), Durability::kBuffered, 0,
           alerts_ && !f->cleared ? &encoded : nullptr);
    if (!f->cleared) {
      RaiseAlert(AlertKind::kForecast, child_->pid, 0, -1, policy_.count(), std::move(encoded),
                 f->message);
    }
  }
  for (const LimitTracker::Breach& b : limits_.OnSample(rss_mb, cpu)) {
    Record(b.stop ? fb::Severity::Error : fb::Severity::Warning,
           events::LimitBreach(b, child_->pid),
           b.stop ? Durability::kDurable : Durability::kBuffered);
    if (!b.stop) continue;
    const bool memory = b.kind == fb::LimitKind::Memory;
    GracefulStop(memory ? Cause::kMemory : Cause::kCpu,
                 memory ? fmt::format("memory {:.1f} MB over {} MB for {} samples", b.value,
                                      b.limit, b.consecutive)
                        : fmt::format("cpu {:.1f}% over {}% for {} samples", b.value, b.limit,
                                      b.consecutive));
    return;
  }
}

}  // namespace blackbox::watchdog
