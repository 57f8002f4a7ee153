// --alert-exec: runs a program when something happens that a person must
// know about (the child crashed, hung, broke a limit; the restart budget is
// spent; the child has recovered).
//
// Guarantees:
//   - Never blocks the loop or a restart: Raise() only queues; a thread of
//     its own waits for the app's crash record, runs the programs (without a
//     shell, each in a process group of its own) and waits for them, killing
//     the group after --alert-timeout.
//   - At most one alert per kind per --alert-interval; the ones held back are
//     counted and reported with the next (BLACKBOX_SUPPRESSED).
//   - Each run is journaled: a Callback event of kind Alert, named
//     "alert-exec KIND PROGRAM", with its exit status and duration.
//   - Close() delivers what is queued (the gave-up alert of a watchdog that
//     is exiting) before it returns.
//   - The application's own forecasts (its health monitor's `rss` and
//     `disk` warnings, journaled in its stream) raise the alert `forecast`
//     as the watchdog's do: the alert thread looks at the app's stream every
//     AlertOptions::app_poll_seconds for Forecast warnings journaled since
//     the watchdog started (AppForecastWatch).
//   - With --alertmanager URLs, each delivered alert also fires (and a
//     recovery resolves) the matching Alertmanager alert, before the
//     programs run (alertmanager.h; never held back by the interval for a
//     resolution).
#pragma once

#include <sys/types.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::watchdog {

class AlertmanagerClient;

enum class AlertKind { kCrash, kHang, kMemory, kCpu, kGaveUp, kRecovered, kForecast };
inline constexpr size_t kAlertKinds = 7;
// "crash", "hang", "memory", "cpu", "gave-up", "recovered", "forecast".
std::string_view AlertKindName(AlertKind kind);

// What the loop knows when it raises an alert.
struct Alert {
  AlertKind kind = AlertKind::kCrash;
  std::string service;
  int child_pid = 0;
  int signal = 0;      // the signal that ended the child, 0 if none
  int exit_code = -1;  // its exit status when it exited by itself
  int restarts = 0;    // restarts of the current window, this one included
  int max_restarts = 0;
  std::string event;          // the triggering event, encoded (EncodeEvent)
  double stable_seconds = 0;  // kRecovered: how long the child has run
  std::string detail;         // kForecast: the forecast's message
  std::string resource;       // kForecast: "rss", "disk"
  // The stream `event` was journaled in (BLACKBOX_EVENT's "stream"); empty:
  // the watchdog's.
  std::string event_stream;
};

// At most one alert per kind per interval. Pure: the caller passes the clock.
class AlertLimiter {
 public:
  explicit AlertLimiter(int64_t interval_ns) : interval_ns_(interval_ns) {}
  // Whether an alert of `kind` may go out at `now_ns`; when it may, returns
  // the number held back since the last one of that kind (and resets it).
  std::optional<uint64_t> Admit(AlertKind kind, int64_t now_ns);

 private:
  int64_t interval_ns_;
  std::array<std::optional<int64_t>, kAlertKinds> last_{};
  std::array<uint64_t, kAlertKinds> suppressed_{};
};

// The one-line summary ("trader pid 4053 died of SIGSEGV in f(int); restart
// 2 of 5"). `frame` may be empty.
std::string AlertSummary(const Alert& alert, std::string_view frame);

// Follows the app's stream, read-only, for the forecast warnings its own
// health monitor journals. Not thread-safe: the alert thread's.
class AppForecastWatch {
 public:
  explicit AppForecastWatch(std::string journal) : journal_(std::move(journal)) {}
  // Warnings journaled since the last call, each as an alert of `service`.
  // The first call only notes where the stream ends: forecasts of earlier
  // runs are not news. A stream that is missing or cannot be read gives
  // none (and a stream created later is read from its start).
  std::vector<Alert> Poll(std::string_view service);

 private:
  std::string journal_;
  bool started_ = false;
  uint64_t after_ = 0;  // the last seq looked at
  // What the stream's directory looked like at the last look: opening the
  // database (about 0.26 ms of CPU for a small stream) is skipped while it is
  // unchanged, i.e. while the app appends nothing. Checking costs a stat of
  // the directory (its mtime moves when RocksDB creates or deletes a file)
  // and one of each write-ahead log. A log's size stays put across appends
  // while they fill the space preallocated for it (owner_only_fs.cpp), so its
  // mtime is compared too; mtimes move in clock ticks of a few ms, so a look
  // with an mtime in the last second is not trusted to mean "unchanged".
  struct StreamLook {
    struct Log {
      std::string path;
      int64_t size = -1;
      int64_t mtime_ns = 0;
      bool operator==(const Log&) const = default;
    };
    bool valid = false;
    bool settled = false;  // every mtime over a second old at the look
    uint64_t dir_ino = 0;
    int64_t dir_mtime_ns = 0;
    std::vector<Log> logs;
    bool operator==(const StreamLook&) const = default;
  };
  // Lists the write-ahead logs anew, or sizes again those of `before`.
  static StreamLook Look(const std::string& dir, const StreamLook* before);
  StreamLook seen_;
};

struct AlertOptions {
  std::vector<std::string> programs;  // resolved paths
  double timeout_seconds = 10;
  double interval_seconds = 60;
  std::string journal;  // BLACKBOX_JOURNAL, and where the app's crash record is looked for
  // How long to wait for the app's own crash record (its first frame).
  double frame_wait_seconds = 2;
  std::vector<std::string> alertmanagers;  // checked URLs (CheckAlertmanagerUrl)
  std::string instance;                    // the host name, for their instance label
  std::string service;                     // the name the app's forecast alerts carry
  // How often to look for the app's own forecasts (0: never).
  double app_poll_seconds = 5;
};

class AlertRunner {
 public:
  // `journal_result` journals one run (called on the alert thread).
  AlertRunner(AlertOptions options, std::function<void(fb::CallbackT)> journal_result);
  ~AlertRunner();  // Close()
  AlertRunner(const AlertRunner&) = delete;
  AlertRunner& operator=(const AlertRunner&) = delete;

  // Queues an alert. Never waits for I/O or a process.
  void Raise(Alert alert);
  // Delivers what is queued, then stops the thread. Idempotent.
  void Close();
  // Whether `pid` is an alert program running now (the supervisor must
  // neither kill nor reap it as a straggler).
  bool Owns(pid_t pid) const;
  std::vector<pid_t> Running() const;

 private:
  void Run();
  // Delivers `alert` unless the limiter holds it back.
  void Admit(Alert alert);
  void Deliver(const Alert& alert, uint64_t suppressed);
  std::string WaitForFrame(const Alert& alert);
  void RunProgram(const std::string& program, const Alert& alert,
                  const std::vector<std::string>& env);

  const AlertOptions options_;
  const std::function<void(fb::CallbackT)> journal_result_;
  AlertLimiter limiter_;                              // the alert thread's only
  AppForecastWatch app_forecasts_;                    // the alert thread's only
  std::unique_ptr<AlertmanagerClient> alertmanager_;  // null without URLs

  mutable std::mutex mu_;
  std::condition_variable has_work_;
  std::deque<Alert> queue_;  // guarded by mu_
  bool closing_ = false;     // guarded by mu_
  std::set<pid_t> running_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace blackbox::watchdog
