// The recovery manager's state, shared by the files of its jobs. The policy
// (what a handled error does, recovery and giving up, the order of shutdown)
// is in recovery_manager.cpp; each other job has a file of its own:
//   journal_session.cpp  journaling and folding every event, snapshots, the
//                        state file
//   startup.cpp          opening the journal, the previous run's crash spill
//                        and unclean end, the config event; the destructor
//   health_thread.cpp    the health monitoring thread, get_system_info()
//   notify_thread.cpp    WATCHDOG=1 pings while the application beats
//   stop_signals.cpp     SIGINT/SIGTERM -> graceful shutdown, on a thread
//   reexec.cpp           restart_application()
//
// Invariants:
//  - Every event this process journals is folded into state_ right after its
//    append (with seq 0 when the append failed), so state() is the fold of
//    the journal plus whatever could not be written.
//  - A snapshot is taken only when no append is between Append and Fold
//    (in_flight_ == 0), so the snapshot covers exactly the seqs it claims.
//    One that falls due on an appender's path is stored by a thread of its
//    own (QueueSnapshot): its write waits for the ring to drain and for an
//    fsync, which that call does not.
#pragma once

#include <signal.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "blackbox/journal.h"
#include "blackbox/recovery.h"
#include "blackbox/state.h"
#include "health_forecast.h"
#include "health_sampler.h"
#include "notify_client.h"

namespace blackbox {

struct NamedCallback {
  std::string name;
  std::function<void()> fn;
};

class RecoveryManager::Impl {
 public:
  explicit Impl(RecoveryOptions options);
  ~Impl();

  void ReportException(std::string_view context, const std::exception_ptr& e);
  void ReportStdException(std::string_view context, const std::type_info& type, const char* what);
  void ReportError(std::string_view context, ErrorReport report);
  void ReportFatalError(ErrorReport report);
  void AddCallback(fb::CallbackKind kind, std::string name, std::function<void()> fn);
  // An error to journal: where it was caught, and what the application or
  // the exception says about it.
  struct HandledError {
    std::string_view context;
    const ErrorReport& report;
  };
  // Runs the recovery callbacks; `error`, when given, is journaled first.
  bool AttemptRecovery(std::optional<HandledError> error = std::nullopt);
  void StartHealth();
  void StopHealth();
  void SetGauge(std::string_view name, double value);
  void Heartbeat() { last_heartbeat_mono_.store(MonoNowNs()); }
  void OnShutdownRequest(std::function<void(int)> fn) {
    std::lock_guard lock(mu_);
    shutdown_request_ = std::move(fn);
  }
  SystemState State() const {
    std::lock_guard lock(mu_);
    return state_;
  }
  SystemInfo Info() const;
  void GracefulShutdown() { Shutdown(fb::Phase::Stopped, "graceful shutdown"); }
  [[noreturn]] void RestartApplication();
  uint64_t failures() const { return failures_.load(); }
  const std::string& root() const { return root_; }

 private:
  // An event of this stream carrying `payload`, encoded.
  template <class T>
  std::string Encode(T payload, fb::Severity severity) {
    fb::EventT e;
    e.stream = options_.stream;
    e.severity = severity;
    e.payload.Set(std::move(payload));
    return EncodeEvent(std::move(e));
  }
  // Journals `payload` and folds it. Returns its seq (0 when not written).
  template <class T>
  uint64_t Record(T payload, fb::Severity severity, Durability durability) {
    std::string bytes = Encode(std::move(payload), severity);
    return Commit(Bytes(bytes), durability);
  }
  uint64_t Commit(std::span<const uint8_t> event, Durability durability) {
    return CommitAll({&event, 1}, durability);
  }
  // Journals `events` in one write (Journal::AppendAll) and folds each.
  // Returns the first one's seq (0 when they were not written).
  uint64_t CommitAll(std::span<const std::span<const uint8_t>> events, Durability durability);
  // An Error or a Lifecycle event of this stream, built in `fbb` (cleared
  // first). The bytes are fbb's, valid until its next use.
  std::span<const uint8_t> ErrorEvent(flatbuffers::FlatBufferBuilder& fbb,
                                      const HandledError& error, int recovery_attempt);
  std::span<const uint8_t> LifecycleEvent(flatbuffers::FlatBufferBuilder& fbb, fb::Phase phase,
                                          std::string_view reason);
  // The STATUS= message that goes with a Lifecycle event.
  void SendStatus(fb::Phase phase, const std::string& reason);
  // Journals a Lifecycle event and sends STATUS=. Returns its seq (0 when not written).
  uint64_t Phase(fb::Phase phase, const std::string& reason,
                 Durability durability = Durability::kDurable);
  // The last record of a series whose others were buffered (see
  // AttemptRecovery): durable; when that fails, SyncAfterFailure.
  void FinalPhase(fb::Phase phase, const std::string& reason);
  void SyncAfterFailure();
  void NoteFailure(const Status& status);
  // The folded state as a snapshot and the seq it covers; nullopt when none
  // can be stored now (an append in flight, nothing of this stream yet).
  std::optional<std::pair<uint64_t, std::string>> TakeSnapshot();
  // Takes a snapshot and stores it before returning (startup, the end).
  void StoreSnapshot();
  // Takes a snapshot and leaves it to the snapshot thread (started on first
  // use); stored here when that thread cannot be started or has stopped.
  void QueueSnapshot();
  void PutSnapshot(uint64_t seq, const std::string& bytes);
  void SnapshotLoop();
  void StopSnapshots();
  void WriteStateFile();
  void Shutdown(fb::Phase final_phase, const std::string& reason);
  [[noreturn]] void GiveUp(const std::string& reason);
  void Startup();
  // Journals what the previous run left (its crash spill, an unclean end);
  // false when a crash of the spill could not be journaled (the spill is
  // then kept for the next start).
  bool IngestPreviousRun();
  void RecordConfig();  // the effective options, as a Config event
  void HealthLoop();
  // One health sample, journaled; `forecasts` (may be null) are fed with it.
  void HealthCheck(HealthSampler& sampler, HealthForecasts* forecasts);
  void PingLoop();
  void SignalLoop();
  void InstallSignals();
  void UninstallSignals();
  void StopThreads();

  const RecoveryOptions options_;
  const std::string root_;
  const std::string spill_path_;
  std::unique_ptr<Journal> journal_;
  NotifyClient notify_;

  mutable std::mutex mu_;  // guards everything below up to the next blank line
  SystemState state_;
  int in_flight_ = 0;
  uint64_t since_snapshot_ = 0;
  std::vector<NamedCallback> recovery_callbacks_;
  std::vector<NamedCallback> cleanup_callbacks_;
  std::function<void(int)> shutdown_request_;

  std::mutex recovery_mu_;  // one recovery at a time; guards lead_
  // The events of a recovery's first write (AttemptRecovery).
  std::array<flatbuffers::FlatBufferBuilder, 3> lead_;
  std::atomic<uint64_t> failures_{0};
  std::atomic<bool> failure_reported_{false};
  std::atomic<int64_t> last_heartbeat_mono_{0};

  std::mutex shutdown_mu_;
  bool shut_down_ = false;
  bool fatal_error_ = false;  // report_fatal_error: the run does not end cleanly

  std::mutex threads_mu_;
  std::condition_variable threads_cv_;
  bool health_running_ = false;
  bool stopping_threads_ = false;
  std::thread health_thread_;
  std::thread ping_thread_;

  std::mutex snapshot_mu_;  // guards the next three
  std::condition_variable snapshot_cv_;
  std::optional<std::pair<uint64_t, std::string>> snapshot_pending_;  // the newest only
  bool snapshots_stopped_ = false;
  std::thread snapshot_thread_;

  mutable std::mutex info_mu_;
  mutable HealthSampler info_sampler_;

  bool owns_signals_ = false;
  bool owns_crash_capture_ = false;
  int signal_pipe_[2] = {-1, -1};
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
  std::thread signal_thread_;
  std::vector<std::string> argv_;
};

}  // namespace blackbox
