// The supervisor: one thread, one epoll loop that keeps one service alive and
// journals what it sees.
//
// Sources of the loop, all non-blocking:
//   signalfd   SIGTERM/SIGINT/SIGHUP/SIGQUIT -> graceful stop; SIGUSR1 ->
//              restart the child (--restart); SIGCHLD -> reap descendants
//              re-parented to the watchdog (a subreaper)
//   pidfd      the child's exit, the moment it happens
//   timerfds   health sampling (periodic), restart delay, stop timeout,
//              heartbeat deadline
//   notify     datagrams of systemd's notify protocol
//   pipes      the child's stdout and stderr
// Every source is served in bounded slices (one pipe read, a few datagrams per
// wakeup), so a child flooding one of them cannot delay the others.
//
// Every decision is taken on the loop's thread. The other threads are the
// journal writer (journal_writer.h): the loop encodes an event and queues it,
// so no fsync ever sits between a crash and the restart; and the output
// writers (output.h), so that no reader of the watchdog's output does.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "alerts.h"
#include "blackbox/forecast.h"
#include "blackbox/journal.h"
#include "exit_verdict.h"
#include "journal_writer.h"
#include "limit_tracker.h"
#include "metrics_server.h"
#include "notify_socket.h"
#include "options.h"
#include "output.h"
#include "process_tree.h"
#include "readiness.h"
#include "restart_policy.h"
#include "spawn.h"
#include "unique_fd.h"

namespace blackbox::watchdog {

// Exit statuses of the watchdog process.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // restart budget spent, or a fatal error
inline constexpr int kExitUsage = 2;   // bad command line or configuration
inline constexpr int kExitAlreadyRunning = 3;

struct SupervisorParts {
  Options options;
  SpawnPlan plan;
  std::vector<std::unique_ptr<Pattern>> patterns;
  std::unique_ptr<Journal> journal;  // written only through the supervisor's JournalWriter
  NotifySocket notify;
  GroupGuard guard;
  OutputSink sink;
  // Called once, when the first child has been spawned (the watchdog's
  // configuration is saved only by a start that got that far).
  std::function<void()> on_first_spawn;
  // --metrics-listen: bound, started by Run() beside the loop (may be null).
  std::unique_ptr<metrics::MetricsServer> metrics;
  // --alert-exec, resolved to paths (empty: no alerts).
  std::vector<std::string> alert_programs;
  std::vector<std::string> alertmanagers;  // checked URLs
  // What the journal found damaged at open (Journal::TakeWarnings): each is
  // journaled as a warning right after the watchdog's start.
  std::vector<std::string> journal_warnings;
};

class Supervisor {
 public:
  explicit Supervisor(SupervisorParts parts);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs until the service ends for good. REQUIRES: the stop signals are
  // blocked in every thread (see BlockStopSignals). Returns the exit status.
  int Run();

 private:
  using Cause = StopCause;
  enum Tag : uint32_t {
    kSignal,
    kChildExit,
    kStdout,
    kStderr,
    kNotify,
    kHealth,
    kRestartTimer,
    kKillTimer,
    kHeartbeatTimer,
    kStableTimer,
    kStatusTimer
  };

  bool Setup(std::string* error);
  void StartChild();
  void RecordSpawn();
  // The restart timer fired: starts the child and journals the Restart event
  // decided at its death (pending_restart_) with the new child's pid.
  void RestartAfterDelay();
  void OnChildExit();
  void OnSignal();
  void OnOutput(bool is_stderr);
  void OnNotify();
  void OnHealth();
  void OnKillTimer();
  void OnHeartbeatMissed(bool triggered);
  void RequestStop();
  // --restart: a graceful stop of the child, then a start at once that the
  // restart budget does not count (reason manual). `sender` is journaled.
  void RequestRestart(pid_t sender);
  // SIGKILLs every descendant of the watchdog outside the current child's
  // tree (and the guard), then reaps what has ended.
  void KillStragglers();
  // Reaps the watchdog's ended children other than the child and the guard.
  void ReapStragglers();
  void GracefulStop(Cause cause, const std::string& why);
  void DrainAndClose(bool is_stderr, UniqueFd& fd, int64_t now_ns);
  // Journals the output the sink dropped since the last report; unless `now`,
  // at most once per second.
  void ReportDroppedOutput(bool now);
  // Whether a notify datagram from `sender` may act (--notify-access).
  bool SenderAllowed(pid_t sender) const;
  // Journals the running count of refused datagrams when it changed.
  void ReportNotifyDropped();
  void Finish(int status);

  // `encoded`, when given, receives a copy of the event's bytes (an alert's trigger).
  void Record(fb::Severity severity, fb::PayloadUnion payload, Durability durability,
              int64_t time_ns = 0, std::string* encoded = nullptr);
  // Queues an alert about the child that just ended (no-op without --alert-exec).
  void RaiseAlert(AlertKind kind, pid_t pid, int signal, int exit_code, int restarts,
                  std::string event, std::string detail = "");
  // The child has run the stable period since an alert: kRecovered.
  void OnStable();
  void RecordLifecycle(fb::Phase phase, const std::string& reason, int child_pid,
                       Durability durability, int exit_code = -1, int signal = 0,
                       bool core_dumped = false, int64_t time_ns = 0,
                       std::string* encoded = nullptr);

  void Watch(int fd, Tag tag);
  void Unwatch(int fd);
  static void Arm(const UniqueFd& timer, double seconds, bool periodic = false);

  SupervisorParts parts_;
  JournalWriter writer_;  // after parts_: drained before the journal closes
  RestartPolicy policy_;
  UniqueFd epoll_;
  UniqueFd signals_;
  UniqueFd health_timer_;
  UniqueFd restart_timer_;
  UniqueFd kill_timer_;
  UniqueFd heartbeat_timer_;
  UniqueFd stable_timer_;  // armed at a spawn after an alert
  std::unique_ptr<AlertRunner> alerts_;
  bool alert_outstanding_ = false;  // an alert went out; "recovered" not yet
  UniqueFd status_timer_;           // journals a STATUS= held back by the rate limit

  std::optional<Child> child_;
  std::optional<fb::RestartT> pending_restart_;  // decided, waiting for its delay
  LineScanner out_scanner_;
  LineScanner err_scanner_;
  Cause cause_ = Cause::kNone;  // why the current child is being stopped
  bool stopping_ = false;       // SIGTERM/SIGABRT sent to the current child
  LimitTracker limits_;         // samples over --max-memory / --max-cpu in a row
  Forecaster forecaster_;       // the child's memory against --max-memory
  Readiness readiness_;         // the notify protocol's view of the current child
  // Journals the coalesced status, if one waits (the status timer fired).
  void FlushStatus();
  bool done_ = false;
  int exit_status_ = kExitOk;

  std::optional<TreeSample> last_sample_;
  int64_t last_sample_ns_ = 0;
  int64_t last_drop_report_ns_ = 0;
  bool told_output_dropped_ = false;
  uint64_t notify_dropped_ = 0;  // datagrams refused by SenderAllowed
  uint64_t notify_dropped_reported_ = 0;
};

// Blocks the signals the loop reads through its signalfd, and ignores SIGPIPE.
// Call before starting any thread, so that every thread inherits the mask.
void BlockStopSignals();

}  // namespace blackbox::watchdog
