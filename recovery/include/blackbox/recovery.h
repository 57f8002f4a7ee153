// The recovery manager: what an application links to record its errors,
// crashes, health and lifecycle in the journal, and to recover from them.
//
//   auto& rm = blackbox::get_recovery_manager();
//   rm.register_recovery_callback("broker", [&] { broker.reconnect(); });
//   rm.register_cleanup_callback("positions", [&] { positions.close_all(); });
//   rm.start_health_monitoring();
//   rm.exception_handler("order_execution", [&] { place_order(o); });
//
// Every method is thread-safe. Nothing here throws into the application
// except exception_handler, which rethrows the application's own exception.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

#include "blackbox/state.h"

namespace blackbox {

struct RecoveryOptions {
  // Journal root. "" -> $BLACKBOX_JOURNAL, else "blackbox-journal".
  std::string journal_dir;
  // This process's stream under the root (one writer per stream).
  std::string stream = "app";
  // The seed's system_state.json, rewritten atomically after each health
  // check and at shutdown. "" -> never written.
  std::string state_file = "system_state.json";
  int max_restarts = 5;
  std::chrono::milliseconds restart_delay = std::chrono::seconds(30);
  std::chrono::milliseconds health_check_interval = std::chrono::seconds(60);
  int max_recovery_attempts = 3;
  // SIGINT/SIGTERM -> graceful_shutdown() on an ordinary thread, then exit 0.
  bool handle_signals = true;
  // SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT and std::terminate are recorded
  // in a spill file (<root>/<stream>.crash) and journaled by the next start.
  bool capture_crashes = true;
  // The seed's health warning thresholds: a sample past any of them is
  // journaled with Warning severity.
  double memory_warning_percent = 80;  // system memory in use
  double cpu_warning_percent = 90;     // this process, percent of one core
  double disk_warning_percent = 90;    // the journal's filesystem
  // Forecasts (blackbox/forecast.h), made from the health samples: when this
  // process's RSS, rising, is projected to reach the memory the system could
  // still give it (its RSS + MemAvailable), or the journal's filesystem to
  // fill up, within this horizon, one Forecast warning is journaled (again
  // at most once per horizon while it holds; a clear when the trend stops).
  // 0 disables. The fit needs 20 samples, over a window of 60: at the
  // default interval the first forecast can come 20 minutes after the start.
  std::chrono::seconds forecast_horizon = std::chrono::minutes(10);
  // The memory the RSS is forecast against instead, in bytes; 0: RSS +
  // MemAvailable at each sample.
  uint64_t forecast_memory_limit_bytes = 0;
  // A snapshot of the folded state is stored after this many events, so that
  // startup folds about this many events at most, whatever the journal's
  // length (and those appended while the newest was being stored). A thread
  // of the manager's stores it: the call that made it due does not wait for
  // its synced write.
  uint64_t snapshot_every = 10000;
  // Bytes of the stream's ring of buffered events (JournalOptions::ring_bytes:
  // <root>/<stream>/RING, a power of two, at least 512); 0 = off. With it,
  // set_gauge, health samples and the other buffered events cost tens of
  // nanoseconds instead of a RocksDB write, with the same promise (they
  // survive kill -9 of the process); durable events still return once
  // fsync'd. A full ring drops buffered events and journals how many.
  size_t journal_ring_bytes = 0;
};

// The seed's get_system_info() dictionary, as a struct.
struct SystemInfo {
  int pid = 0;
  double memory_usage_mb = 0;  // RSS
  double cpu_percent = 0;      // this process, percent of one core, since the previous call
  double memory_percent = 0;   // system memory in use
  double disk_percent = 0;     // the journal's filesystem
  int threads = 0;
  int open_fds = 0;
  double uptime_seconds = 0;  // since this run started
  std::string status;         // the seed's status name ("running", …)
  int restart_count = 0;
  int recovery_attempts = 0;
  std::string last_error;  // message of the last error, "" when none
};

// An error the application describes itself, for exceptions of another
// runtime (the Python module's exceptions): type name, message and frames,
// innermost first ("orders.py:42 in place_order").
struct ErrorReport {
  std::string exception_type;
  std::string message;
  std::vector<std::string> frames;
};

// Exit status of a process that gave up after max_recovery_attempts
// consecutive failed recoveries, or after max_restarts restarts.
inline constexpr int kRecoveryExhaustedExitCode = 70;  // EX_SOFTWARE

class RecoveryManager {
 public:
  // Opens the journal, folds it (newest snapshot + tail), ingests a crash
  // spill left by the previous run, records an unclean previous run as a
  // Restart (reason Unclean), journals this run's start and sends READY=1.
  // Never fails: when the journal cannot be opened, the manager works from
  // memory, says so once on stderr and counts every event it could not write.
  // Signal and crash handlers are process-wide: only the first live manager
  // installs them.
  explicit RecoveryManager(RecoveryOptions options = {});
  // Stops the manager's threads. Without a prior graceful_shutdown(), records
  // a clean stop (the process is exiting normally) but runs no callbacks.
  ~RecoveryManager();
  RecoveryManager(const RecoveryManager&) = delete;
  RecoveryManager& operator=(const RecoveryManager&) = delete;

  // Runs fn. On an exception: journals it, runs the recovery callbacks
  // (attempt_recovery), then rethrows the same exception. The error and every
  // record of the recovery are durable when it rethrows; they cost one fsync.
  template <class F>
  decltype(auto) exception_handler(std::string_view context, F&& fn) {
    try {
      return std::forward<F>(fn)();
    } catch (const std::exception& e) {
      // Described where it is caught: report_exception would rethrow it once
      // more to learn its type and message.
      report_std_exception(context, typeid(e), e.what());
      throw;
    } catch (...) {
      report_exception(context, std::current_exception());
      throw;
    }
  }
  // The same from a catch block, without the rethrow.
  void report_exception(std::string_view context, std::exception_ptr e);
  // The same for an error described by the application (ErrorReport): an
  // Error event with its type, message and frames, then attempt_recovery().
  void report_error(std::string_view context, ErrorReport error);
  // A fatal error the process records itself just before it ends (an
  // uncaught exception of an embedded interpreter): a Crash event (origin
  // Terminate, signal 0) with its type, message and frames, durable when
  // this returns. The run then counts as not ended cleanly: the destructor
  // records no clean stop, so the next start counts an unclean restart, as
  // after a native crash. Runs no callbacks.
  void report_fatal_error(ErrorReport error);

  // Callbacks run in registration order. A callback fails by throwing.
  void register_recovery_callback(std::string name, std::function<void()> fn);
  void register_cleanup_callback(std::string name, std::function<void()> fn);

  // Runs every recovery callback now and journals each result (ok, error
  // text, duration). Returns true when all of them succeeded (or there are
  // none). After max_recovery_attempts consecutive failed recoveries the
  // process gives up: graceful shutdown with final status "failed", then
  // std::_Exit(kRecoveryExhaustedExitCode) so that a watchdog restarts it
  // (no atexit handlers or static destructors: other threads still run).
  bool attempt_recovery();

  // Samples RSS, CPU %, system memory %, disk % of the journal's filesystem,
  // threads and fds every health_check_interval (first sample after one
  // interval; CPU % is measured over that interval), journals each sample and
  // rewrites state_file. Idempotent.
  void start_health_monitoring();
  void stop_health_monitoring();

  // Records a gauge (active_connections, active_positions, …). Buffered
  // append: survives a crash of the process, costs no fsync.
  void set_gauge(std::string_view name, double value);

  // Liveness for the notify protocol. Once the application has called
  // heartbeat(), WATCHDOG=1 is sent only while heartbeats keep coming (within
  // WATCHDOG_USEC), so a hung main loop is seen as hung. Before the first
  // call the manager pings on its own.
  void heartbeat();

  // When set, SIGINT/SIGTERM call fn(signo) on the manager's signal thread
  // instead of shutting down; the application then stops its loop and calls
  // graceful_shutdown() itself.
  void on_shutdown_request(std::function<void(int)> fn);

  // The folded state (seed fields, gauges, counters): the journal as it was
  // at startup (every stream, LoadState), then this process's own events
  // since. Events other processes journal after startup (the watchdog's)
  // are not in it; LoadState on the journal root has them.
  SystemState state() const;
  SystemInfo get_system_info() const;

  // Sends STOPPING=1, runs the cleanup callbacks (each result journaled),
  // journals "stopped" durably, stores a snapshot and writes state_file.
  // Runs once; concurrent and later calls wait for the first and return.
  void graceful_shutdown();

  // Re-executes this program with the same arguments after restart_delay,
  // once cleanup ran. Past max_restarts it exits with
  // kRecoveryExhaustedExitCode instead.
  [[noreturn]] void restart_application();

  // Gives the calling thread an alternate signal stack, so that a stack
  // overflow on it is captured like any other crash. Without it a fatal
  // signal on the thread is still captured, but an overflow is not (the
  // handler has no stack to run on): the watchdog then records only the
  // death. The manager's own threads and the thread that created the
  // manager have one already; call this first thing in each thread the
  // application starts. Idempotent; the stack is freed when the thread ends.
  static void prepare_thread();

  // Events that could not be journaled so far (journal unavailable or
  // failing). They are still folded into state().
  uint64_t journal_failures() const;
  const std::string& journal_root() const;

  class Impl;

 private:
  // report_exception for a std::exception of dynamic type `type`.
  void report_std_exception(std::string_view context, const std::type_info& type, const char* what);

  std::unique_ptr<Impl> impl_;
};

// The process-wide manager with default options, created on first use.
RecoveryManager& get_recovery_manager();
// Creates the process-wide manager with `options`. When it exists already,
// returns it unchanged (the first configuration wins).
RecoveryManager& initialize_recovery_manager(RecoveryOptions options);

}  // namespace blackbox
