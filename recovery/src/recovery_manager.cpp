// The recovery manager: journaling, folding, recovery, health, signals,
// crash capture and heartbeats of one application process.
//
// Invariants:
//  - Every event this process journals is folded into state_ right after its
//    append (with seq 0 when the append failed), so state() is the fold of
//    the journal plus whatever could not be written.
//  - A snapshot is stored only when no append is between Append and Fold
//    (in_flight_ == 0), so the snapshot covers exactly the seqs it claims.
#include <cxxabi.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <typeinfo>
#include <vector>

#include "blackbox/recovery.h"
#include "blackbox/state_io.h"
#include "crash_capture.h"
#include "health_sampler.h"
#include "notify_client.h"

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

std::string Demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

struct ExceptionDescription {
  std::string type;
  std::string message;
};

ExceptionDescription Describe(const std::exception_ptr& e) {
  if (!e) return {"", ""};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return {Demangle(typeid(ex).name()), ex.what()};
  } catch (...) {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return {t != nullptr ? Demangle(t->name()) : "unknown", ""};
  }
}

std::string ResolveJournalDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* env = std::getenv("BLACKBOX_JOURNAL"); env != nullptr && *env != '\0') return env;
  return "blackbox-journal";
}

std::vector<std::string> OwnCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> argv;
  std::string arg;
  while (std::getline(in, arg, '\0')) argv.push_back(arg);
  return argv;
}

struct NamedCallback {
  std::string name;
  std::function<void()> fn;
};

// A callback's outcome, journaled as a Callback event.
struct CallbackResult {
  bool ok = true;
  std::string error;
  int64_t duration_us = 0;
};

CallbackResult RunCallback(const std::function<void()>& fn) {
  CallbackResult r;
  int64_t start = MonoNowNs();
  try {
    fn();
  } catch (const std::exception& e) {
    r.ok = false;
    r.error = fmt::format("{}: {}", Demangle(typeid(e).name()), e.what());
  } catch (...) {
    r.ok = false;
    r.error = "unknown exception";
  }
  r.duration_us = (MonoNowNs() - start) / 1000;
  return r;
}

}  // namespace

class RecoveryManager::Impl {
 public:
  explicit Impl(RecoveryOptions options);
  ~Impl();

  void ReportException(std::string_view context, const std::exception_ptr& e);
  void ReportError(std::string_view context, ErrorReport report);
  void ReportFatalError(ErrorReport report);
  void AddCallback(fb::CallbackKind kind, std::string name, std::function<void()> fn);
  // Runs the recovery callbacks; `error`, when given, is journaled first.
  bool AttemptRecovery(std::optional<fb::ErrorT> error = std::nullopt);
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
  // A Lifecycle event, encoded, and the STATUS= message that goes with it.
  std::string LifecycleEvent(fb::Phase phase, const std::string& reason);
  void SendStatus(fb::Phase phase, const std::string& reason);
  // Journals a Lifecycle event and sends STATUS=. Returns its seq (0 when not written).
  uint64_t Phase(fb::Phase phase, const std::string& reason,
                 Durability durability = Durability::kDurable);
  // The last record of a series whose others were buffered (see
  // AttemptRecovery): durable; when that fails, SyncAfterFailure.
  void FinalPhase(fb::Phase phase, const std::string& reason);
  void SyncAfterFailure();
  void NoteFailure(const Status& status);
  void StoreSnapshot();
  void WriteStateFile();
  void Shutdown(fb::Phase final_phase, const std::string& reason);
  [[noreturn]] void GiveUp(const std::string& reason);
  void Startup();
  void HealthLoop();
  void HealthCheck(HealthSampler& sampler);
  void PingLoop();
  void SignalLoop();
  void InstallSignals();
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

  std::mutex recovery_mu_;  // one recovery at a time
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

RecoveryManager::Impl::Impl(RecoveryOptions options)
    : options_(std::move(options)),
      root_(ResolveJournalDir(options_.journal_dir)),
      spill_path_(root_ + "/" + options_.stream + ".crash"),
      info_sampler_(root_) {
  Startup();
}

void RecoveryManager::Impl::Startup() {
  JournalOptions journal_options;
  journal_options.set_aside_damaged = true;
  Result<std::unique_ptr<Journal>> journal = Journal::Open(root_, options_.stream, journal_options);
  // What the journal found damaged at open: said once on stderr now, and
  // journaled once this run has started (below).
  std::vector<std::string> damage;
  if (journal.ok()) {
    journal_ = std::move(journal.value());
    damage = journal_->TakeWarnings();
    Result<SystemState> loaded = LoadState(root_);
    if (loaded.ok()) {
      state_ = std::move(loaded.value());
    } else {
      fmt::print(stderr, "blackbox: cannot fold the journal at {}: {}; starting from empty state\n",
                 root_, loaded.status().ToString());
    }
    // A snapshot past the stream's last event: the events it covers were
    // lost after it was taken. The state keeps what the snapshot folded, and
    // new events are numbered above it (the journal saw to that).
    auto covered = state_.covered.find(options_.stream);
    if (damage.empty() && covered != state_.covered.end() &&
        covered->second > journal_->last_seq()) {
      damage.push_back(fmt::format(
          "the journal stream {} lost events: its newest snapshot covers seq {}, but its last "
          "readable event is seq {}; the state keeps what the snapshot folded",
          journal_->path(), covered->second, journal_->last_seq()));
    }
    for (const std::string& d : damage) fmt::print(stderr, "blackbox: warning: {}\n", d);
  } else {
    NoteFailure(journal.status());
  }

  // What the previous run left behind: a crash spill, and whether it ended.
  // Naming the frames reads the crashed program's files with libdw; should
  // that ever take this process down, the marker left behind makes the next
  // start journal the frames as the handler wrote them instead of crashing
  // again on the same spill.
  std::string naming_marker = spill_path_ + ".naming";
  bool name_frames = access(naming_marker.c_str(), F_OK) != 0;
  struct stat spill {};
  if (name_frames && lstat(spill_path_.c_str(), &spill) == 0 && spill.st_size > 0) {
    int fd = open(naming_marker.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
  }
  std::vector<fb::CrashT> crashes = ReadSpill(spill_path_, name_frames);
  unlink(naming_marker.c_str());
  bool spill_ingested = true;
  for (fb::CrashT& crash : crashes) {
    if (Record(std::move(crash), fb::Severity::Critical, Durability::kDurable) == 0) {
      spill_ingested = false;
    }
  }
  bool ended_cleanly;
  int restarts;
  {
    std::lock_guard lock(mu_);
    ended_cleanly = state_.pid == 0 || state_.status == fb::Phase::Stopped ||
                    state_.status == fb::Phase::Failed;
    restarts = state_.restart_count;
  }
  if (!ended_cleanly || !crashes.empty()) {
    fb::RestartT restart;
    restart.attempt = restarts + 1;
    restart.reason = fb::RestartReason::Unclean;
    restart.child_pid = getpid();
    Record(std::move(restart), fb::Severity::Warning, Durability::kDurable);
  }

  fb::ConfigT config;
  config.component = "recovery";
  // Sorted by key: ConfigEntry is a keyed table.
  std::vector<std::pair<std::string, std::string>> entries = {
      {"build_id", MainProgramBuildId()},
      {"health_check_interval_ms", std::to_string(options_.health_check_interval.count())},
      {"journal_dir", root_},
      {"max_recovery_attempts", std::to_string(options_.max_recovery_attempts)},
      {"max_restarts", std::to_string(options_.max_restarts)},
      {"restart_delay_ms", std::to_string(options_.restart_delay.count())},
      {"state_file", options_.state_file},
  };
  for (auto& [key, value] : entries) {
    if (key == "build_id" && value.empty()) continue;  // linked without one
    auto entry = std::make_unique<fb::ConfigEntryT>();
    entry->key = key;
    entry->value = value;
    config.entries.push_back(std::move(entry));
  }
  Record(std::move(config), fb::Severity::Info, Durability::kBuffered);
  Phase(fb::Phase::Starting, fmt::format("pid {}", getpid()));

  // Crash capture writes its spill file into the journal root: only into a
  // root the journal accepted (it refuses one that others can write).
  if (options_.capture_crashes && journal_ != nullptr) {
    // A spill that could not be journaled is kept (appended to) for the next start.
    std::string spill_error;
    owns_crash_capture_ = InstallCrashCapture(spill_path_, spill_ingested, &spill_error);
    // Capture off without a word would be found out only at the next crash.
    if (!spill_error.empty()) {
      fmt::print(stderr, "blackbox: crash capture is off: cannot open the crash spill {}\n",
                 spill_error);
      fb::ErrorT error;
      error.context = "crash capture";
      error.message =
          fmt::format("crash capture is off: cannot open the crash spill {}", spill_error);
      Record(std::move(error), fb::Severity::Warning, Durability::kDurable);
    }
  }
  for (std::string& d : damage) {
    fb::ErrorT error;
    error.context = "journal";
    error.message = std::move(d);
    Record(std::move(error), fb::Severity::Warning, Durability::kDurable);
  }
  if (options_.handle_signals) InstallSignals();
  argv_ = OwnCommandLine();
  if (notify_.watchdog_interval().count() > 0) ping_thread_ = std::thread([this] { PingLoop(); });

  Phase(fb::Phase::Running, "ready");
  notify_.Send("READY=1");
  WriteStateFile();
}

RecoveryManager::Impl::~Impl() {
  StopThreads();
  bool clean_exit;
  {
    std::lock_guard lock(shutdown_mu_);
    clean_exit = !shut_down_ && !fatal_error_;
    shut_down_ = true;
  }
  if (clean_exit) {
    // Leaving without graceful_shutdown() is still a normal exit, not a crash.
    Phase(fb::Phase::Stopped, "exit");
    StoreSnapshot();
    WriteStateFile();
  }
  if (owns_signals_) {
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
    g_signal_pipe_w.store(-1);
    char stop = 0;
    [[maybe_unused]] ssize_t n = write(signal_pipe_[1], &stop, 1);
    if (signal_thread_.joinable()) signal_thread_.join();
    close(signal_pipe_[0]);
    close(signal_pipe_[1]);
    g_signals_owned.store(false);
  }
  if (owns_crash_capture_) UninstallCrashCapture();
}

uint64_t RecoveryManager::Impl::CommitAll(std::span<const std::span<const uint8_t>> events,
                                          Durability durability) {
  {
    std::lock_guard lock(mu_);
    ++in_flight_;
  }
  uint64_t first = 0;
  if (journal_) {
    Result<uint64_t> appended = events.size() == 1 ? journal_->Append(events[0], durability)
                                                   : journal_->AppendAll(events, durability);
    if (appended.ok()) {
      first = appended.value();
    } else {
      failures_.fetch_add(events.size() - 1);
      NoteFailure(appended.status());
    }
  } else {
    failures_.fetch_add(events.size());
  }
  bool snapshot_due;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < events.size(); ++i) {
      // Our own, just-built buffers: no need to verify them again.
      const fb::Event* parsed = flatbuffers::GetRoot<fb::Event>(events[i].data());
      Fold(state_, *parsed, options_.stream, first == 0 ? 0 : first + i);
      ++since_snapshot_;
    }
    --in_flight_;
    snapshot_due = since_snapshot_ >= options_.snapshot_every && in_flight_ == 0;
  }
  if (snapshot_due) StoreSnapshot();
  return first;
}

void RecoveryManager::Impl::NoteFailure(const Status& status) {
  failures_.fetch_add(1);
  if (!failure_reported_.exchange(true)) {
    fmt::print(stderr,
               "blackbox: cannot write the journal at {}: {} (the application keeps running; "
               "events that cannot be written are counted)\n",
               root_, status.ToString());
  }
}

std::string RecoveryManager::Impl::LifecycleEvent(fb::Phase phase, const std::string& reason) {
  fb::LifecycleT l;
  l.phase = phase;
  l.reason = reason;
  fb::Severity severity = phase == fb::Phase::Error || phase == fb::Phase::Failed
                              ? fb::Severity::Error
                              : fb::Severity::Info;
  return Encode(std::move(l), severity);
}

void RecoveryManager::Impl::SendStatus(fb::Phase phase, const std::string& reason) {
  std::string_view name = SeedStatusName(phase);
  notify_.Send(reason.empty() ? fmt::format("STATUS={}", name)
                              : fmt::format("STATUS={}: {}", name, reason));
}

uint64_t RecoveryManager::Impl::Phase(fb::Phase phase, const std::string& reason,
                                      Durability durability) {
  const std::string bytes = LifecycleEvent(phase, reason);
  const uint64_t seq = Commit(Bytes(bytes), durability);
  SendStatus(phase, reason);
  return seq;
}

// A failed append leaves the journal to be reopened by the next call, and a
// reopen replays the log and flushes what it holds into a synced table file:
// Sync does that now, so that the buffered records before the failed one are
// durable when the caller returns, as far as the disk allows. Its failure
// says nothing new (the failed append was counted and reported).
void RecoveryManager::Impl::FinalPhase(fb::Phase phase, const std::string& reason) {
  if (Phase(phase, reason, Durability::kDurable) == 0) SyncAfterFailure();
}

void RecoveryManager::Impl::SyncAfterFailure() {
  if (journal_) (void)journal_->Sync();
}

void RecoveryManager::Impl::StoreSnapshot() {
  if (!journal_) return;
  std::string bytes;
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    if (in_flight_ != 0) return;  // retried after the next event
    auto it = state_.covered.find(options_.stream);
    if (it == state_.covered.end() || it->second == 0) return;
    seq = it->second;
    // Covered beyond what the stream holds (events lost to damage, and none
    // of this run written yet): nothing to store until one is.
    if (seq > journal_->last_seq()) return;
    bytes = EncodeSnapshot(state_);
    since_snapshot_ = 0;
  }
  if (Status st = journal_->PutSnapshot(seq, Bytes(bytes)); !st.ok()) NoteFailure(st);
}

void RecoveryManager::Impl::WriteStateFile() {
  if (options_.state_file.empty()) return;
  Status st = WriteStateFileAtomically(options_.state_file, State());
  if (!st.ok()) {
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true)) {
      fmt::print(stderr, "blackbox: cannot write {}: {}\n", options_.state_file, st.ToString());
    }
  }
}

void RecoveryManager::Impl::ReportException(std::string_view context, const std::exception_ptr& e) {
  ExceptionDescription d = Describe(e);
  ReportError(context,
              {.exception_type = std::move(d.type), .message = std::move(d.message), .frames = {}});
}

void RecoveryManager::Impl::ReportError(std::string_view context, ErrorReport report) {
  fb::ErrorT error;
  error.context = std::string(context);
  error.exception_type = std::move(report.exception_type);
  error.message = std::move(report.message);
  error.frames = std::move(report.frames);
  // Journaled by AttemptRecovery in one write with the recovering phase.
  AttemptRecovery(std::move(error));
}

void RecoveryManager::Impl::ReportFatalError(ErrorReport report) {
  {
    std::lock_guard lock(shutdown_mu_);
    fatal_error_ = true;
  }
  fb::CrashT crash;
  crash.origin = fb::CrashOrigin::Terminate;
  crash.exception_type = std::move(report.exception_type);
  crash.exception_message = std::move(report.message);
  crash.frames = std::move(report.frames);
  crash.crashed_pid = getpid();
  crash.crash_time_ns = WallNowNs();
  Record(std::move(crash), fb::Severity::Critical, Durability::kDurable);
}

void RecoveryManager::Impl::AddCallback(fb::CallbackKind kind, std::string name,
                                        std::function<void()> fn) {
  std::lock_guard lock(mu_);
  auto& list = kind == fb::CallbackKind::Recovery ? recovery_callbacks_ : cleanup_callbacks_;
  list.push_back({std::move(name), std::move(fn)});
}

// One fsync per recovery, however many records it writes: every record but the
// last is buffered (in the log, so it survives a crash of a callback), and the
// last one is durable. That covers the others: the journal writes all appends
// to one RocksDB log in seq order, and a sync=true write syncs every log file
// not yet synced, older ones included when the log switched in between. A
// buffered append that failed is counted in journal_failures(); its record is
// not made durable by the later sync. When the last append fails, FinalPhase
// syncs once more. A crash in the middle leaves a prefix of the records in
// the log, which folds like any other (the phase stays Recovering until the
// next start counts the unclean end). Shutdown follows the same rule.
// The records before the first callback (the error, the recovering phase)
// are one write; with no callback the phase after joins them, and that one
// durable write is the whole cost, as for a single durable append.
bool RecoveryManager::Impl::AttemptRecovery(std::optional<fb::ErrorT> error) {
  std::unique_lock recovery(recovery_mu_);
  std::vector<NamedCallback> callbacks;
  std::vector<std::string> lead;
  {
    std::lock_guard lock(mu_);
    callbacks = recovery_callbacks_;
    if (error) error->recovery_attempt = state_.recovery_attempts;
  }
  if (error) lead.push_back(Encode(std::move(*error), fb::Severity::Error));
  lead.push_back(LifecycleEvent(fb::Phase::Recovering, ""));
  const bool none = callbacks.empty();
  if (none) lead.push_back(LifecycleEvent(fb::Phase::Running, "recovered"));
  std::vector<std::span<const uint8_t>> spans;
  for (const std::string& bytes : lead) spans.push_back(Bytes(bytes));
  const uint64_t seq = CommitAll(spans, none ? Durability::kDurable : Durability::kBuffered);
  SendStatus(fb::Phase::Recovering, "");
  if (none) {
    SendStatus(fb::Phase::Running, "recovered");
    if (seq == 0) SyncAfterFailure();
    return true;
  }
  bool all_ok = true;
  for (const NamedCallback& cb : callbacks) {
    CallbackResult r = RunCallback(cb.fn);
    fb::CallbackT event;
    event.kind = fb::CallbackKind::Recovery;
    event.name = cb.name;
    event.ok = r.ok;
    event.error = r.error;
    event.duration_us = r.duration_us;
    Record(std::move(event), r.ok ? fb::Severity::Info : fb::Severity::Error,
           Durability::kBuffered);
    all_ok = all_ok && r.ok;
  }
  FinalPhase(all_ok ? fb::Phase::Running : fb::Phase::Error,
             all_ok ? "recovered" : "recovery failed");
  if (all_ok) return true;

  int attempts, max_attempts;
  {
    std::lock_guard lock(mu_);
    attempts = state_.recovery_attempts;
    max_attempts = state_.max_recovery_attempts;
  }
  if (attempts >= max_attempts) {
    recovery.unlock();
    GiveUp(fmt::format("{} consecutive recoveries failed", attempts));
  }
  return false;
}

void RecoveryManager::Impl::GiveUp(const std::string& reason) {
  fmt::print(stderr, "blackbox: {}; shutting down (exit status {})\n", reason,
             kRecoveryExhaustedExitCode);
  Shutdown(fb::Phase::Failed, reason);
  std::fflush(nullptr);
  std::_Exit(kRecoveryExhaustedExitCode);
}

void RecoveryManager::Impl::SetGauge(std::string_view name, double value) {
  // The hot path: no object API, one reused builder per thread.
  thread_local flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Clear();
  auto n = fbb.CreateString(name.data(), name.size());
  auto gauge = fb::CreateGauge(fbb, n, value);
  FinishEvent(fbb, options_.stream, fb::Severity::Info, fb::Payload::Gauge, gauge.Union());
  Commit(Bytes(fbb), Durability::kBuffered);
}

void RecoveryManager::Impl::StartHealth() {
  std::lock_guard lock(threads_mu_);
  if (health_running_) return;
  health_running_ = true;
  health_thread_ = std::thread([this] { HealthLoop(); });
}

void RecoveryManager::Impl::StopHealth() {
  std::thread t;
  {
    std::lock_guard lock(threads_mu_);
    if (!health_running_) return;
    health_running_ = false;
    t = std::move(health_thread_);
  }
  threads_cv_.notify_all();
  if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  if (t.joinable()) t.detach();  // stopped from inside a health check: it ends on its own
}

void RecoveryManager::Impl::HealthLoop() {
  EnsureAltStackForThisThread();
  HealthSampler sampler(root_);  // CPU baseline: the first sample covers one interval
  std::unique_lock lock(threads_mu_);
  while (true) {
    threads_cv_.wait_for(lock, options_.health_check_interval,
                         [this] { return !health_running_ || stopping_threads_; });
    if (!health_running_ || stopping_threads_) return;
    lock.unlock();
    HealthCheck(sampler);
    lock.lock();
  }
}

void RecoveryManager::Impl::HealthCheck(HealthSampler& sampler) {
  HealthSample s = sampler.Sample();
  fb::HealthT h;
  h.rss_bytes = s.rss_bytes;
  h.cpu_percent = s.cpu_percent;
  h.memory_percent = s.memory_percent;
  h.disk_percent = s.disk_percent;
  h.threads = s.threads;
  h.open_fds = s.open_fds;
  h.sampled_pid = getpid();
  h.over_threshold = s.memory_percent > options_.memory_warning_percent ||
                     s.cpu_percent > options_.cpu_warning_percent ||
                     s.disk_percent > options_.disk_warning_percent;
  fb::Severity severity = h.over_threshold ? fb::Severity::Warning : fb::Severity::Info;
  Record(std::move(h), severity, Durability::kBuffered);
  WriteStateFile();
}

void RecoveryManager::Impl::PingLoop() {
  auto full = notify_.watchdog_interval();
  auto half = std::chrono::duration_cast<std::chrono::milliseconds>(full / 2);
  if (half.count() == 0) half = std::chrono::milliseconds(1);
  std::unique_lock lock(threads_mu_);
  while (!threads_cv_.wait_for(lock, half, [this] { return stopping_threads_; })) {
    int64_t last = last_heartbeat_mono_.load();
    // Once the app beats, only its beats keep us alive: a hung loop must look hung.
    bool alive =
        last == 0 ||
        MonoNowNs() - last < std::chrono::duration_cast<std::chrono::nanoseconds>(full).count();
    if (alive) notify_.Send("WATCHDOG=1");
  }
}

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

void RecoveryManager::Impl::StopThreads() {
  StopHealth();
  {
    std::lock_guard lock(threads_mu_);
    stopping_threads_ = true;
  }
  threads_cv_.notify_all();
  if (ping_thread_.joinable()) ping_thread_.join();
}

void RecoveryManager::Impl::Shutdown(fb::Phase final_phase, const std::string& reason) {
  std::lock_guard once(shutdown_mu_);  // later callers wait for the first, then return
  if (shut_down_) return;
  notify_.Send("STOPPING=1");
  StopHealth();
  {
    // A last sample, so that the final state file carries real figures even
    // when monitoring never ran.
    HealthSampler sampler = [this] {
      std::lock_guard lock(info_mu_);
      return info_sampler_;
    }();
    HealthCheck(sampler);
  }
  // Buffered up to the final phase, whose sync covers them (see
  // AttemptRecovery); the snapshot after it is a durable write of its own.
  Phase(fb::Phase::Stopping, reason, Durability::kBuffered);
  std::vector<NamedCallback> callbacks;
  {
    std::lock_guard lock(mu_);
    callbacks = cleanup_callbacks_;
  }
  for (const NamedCallback& cb : callbacks) {
    CallbackResult r = RunCallback(cb.fn);
    fb::CallbackT event;
    event.kind = fb::CallbackKind::Cleanup;
    event.name = cb.name;
    event.ok = r.ok;
    event.error = r.error;
    event.duration_us = r.duration_us;
    Record(std::move(event), r.ok ? fb::Severity::Info : fb::Severity::Error,
           Durability::kBuffered);
  }
  FinalPhase(final_phase, reason);
  StoreSnapshot();
  WriteStateFile();
  shut_down_ = true;
}

void RecoveryManager::Impl::RestartApplication() {
  int restarts, max_restarts;
  {
    std::lock_guard lock(mu_);
    restarts = state_.restart_count;
    max_restarts = state_.max_restarts;
  }
  if (restarts >= max_restarts) GiveUp(fmt::format("max_restarts ({}) reached", max_restarts));
  fb::RestartT restart;
  restart.attempt = restarts + 1;
  restart.reason = fb::RestartReason::Requested;
  restart.delay_ms = options_.restart_delay.count();
  restart.child_pid = getpid();
  Record(std::move(restart), fb::Severity::Warning, Durability::kDurable);
  Shutdown(fb::Phase::Stopped, "restart requested");
  std::this_thread::sleep_for(options_.restart_delay);

  // The new image opens the journal again: release it (and its lock) first.
  StopThreads();
  if (owns_crash_capture_) UninstallCrashCapture();
  journal_.reset();
  std::fflush(nullptr);
  if (argv_.empty()) GiveUp("cannot read /proc/self/cmdline to restart");
  std::vector<char*> args;
  for (std::string& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  fmt::print(stderr, "blackbox: cannot re-execute {}: {}\n", argv_[0], std::strerror(errno));
  std::_Exit(kRecoveryExhaustedExitCode);
}

SystemInfo RecoveryManager::Impl::Info() const {
  HealthSample s;
  {
    std::lock_guard lock(info_mu_);
    s = info_sampler_.Sample();
  }
  SystemInfo info;
  info.pid = getpid();
  info.memory_usage_mb = static_cast<double>(s.rss_bytes) / (1024.0 * 1024.0);
  info.cpu_percent = s.cpu_percent;
  info.memory_percent = s.memory_percent;
  info.disk_percent = s.disk_percent;
  info.threads = s.threads;
  info.open_fds = s.open_fds;
  std::lock_guard lock(mu_);
  if (state_.run_started_ns != 0) {
    info.uptime_seconds = static_cast<double>(WallNowNs() - state_.run_started_ns) / 1e9;
  }
  info.status = std::string(SeedStatusName(state_.status));
  info.restart_count = state_.restart_count;
  info.recovery_attempts = state_.recovery_attempts;
  if (state_.last_error) info.last_error = state_.last_error->message;
  return info;
}

// --- RecoveryManager ---------------------------------------------------------

RecoveryManager::RecoveryManager(RecoveryOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
RecoveryManager::~RecoveryManager() = default;

void RecoveryManager::report_exception(std::string_view context, std::exception_ptr e) {
  impl_->ReportException(context, e);
}
void RecoveryManager::report_error(std::string_view context, ErrorReport error) {
  impl_->ReportError(context, std::move(error));
}
void RecoveryManager::report_fatal_error(ErrorReport error) {
  impl_->ReportFatalError(std::move(error));
}
void RecoveryManager::register_recovery_callback(std::string name, std::function<void()> fn) {
  impl_->AddCallback(fb::CallbackKind::Recovery, std::move(name), std::move(fn));
}
void RecoveryManager::register_cleanup_callback(std::string name, std::function<void()> fn) {
  impl_->AddCallback(fb::CallbackKind::Cleanup, std::move(name), std::move(fn));
}
bool RecoveryManager::attempt_recovery() { return impl_->AttemptRecovery(); }
void RecoveryManager::start_health_monitoring() { impl_->StartHealth(); }
void RecoveryManager::stop_health_monitoring() { impl_->StopHealth(); }
void RecoveryManager::set_gauge(std::string_view name, double value) {
  impl_->SetGauge(name, value);
}
void RecoveryManager::heartbeat() { impl_->Heartbeat(); }
void RecoveryManager::on_shutdown_request(std::function<void(int)> fn) {
  impl_->OnShutdownRequest(std::move(fn));
}
SystemState RecoveryManager::state() const { return impl_->State(); }
SystemInfo RecoveryManager::get_system_info() const { return impl_->Info(); }
void RecoveryManager::graceful_shutdown() { impl_->GracefulShutdown(); }
void RecoveryManager::restart_application() { impl_->RestartApplication(); }
void RecoveryManager::prepare_thread() { EnsureAltStackForThisThread(); }

uint64_t RecoveryManager::journal_failures() const { return impl_->failures(); }
const std::string& RecoveryManager::journal_root() const { return impl_->root(); }

RecoveryManager& initialize_recovery_manager(RecoveryOptions options) {
  // A function-local static whose construction opens the journal: it finishes
  // after RocksDB's own statics are built, so it is destroyed before them.
  static RecoveryManager manager(std::move(options));
  return manager;
}

RecoveryManager& get_recovery_manager() { return initialize_recovery_manager(RecoveryOptions{}); }

}  // namespace blackbox
