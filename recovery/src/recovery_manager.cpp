// The recovery manager's policy: what a handled error does (journal it,
// run the recovery callbacks, give up after max_recovery_attempts), and the
// order of a shutdown; and the public API, which forwards to it. The other
// jobs of the manager each have a file (recovery_manager_impl.h lists them).
#include <cxxabi.h>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <typeinfo>

#include "crash_capture.h"
#include "recovery_manager_impl.h"

namespace blackbox {
namespace {

// A program throws few distinct types, and demangling parses the name and
// allocates each time: each thread keeps the names it demangled last.
std::string Demangle(const char* name) {
  struct Demangled {
    std::string mangled;
    std::string name;
  };
  constexpr size_t kKept = 8;
  thread_local std::vector<Demangled> kept;  // the most recent last
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
    if (it->mangled == name) return it->name;
  }
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  std::string demangled = status == 0 && out ? std::string(out.get()) : std::string(name);
  if (kept.size() == kKept) kept.erase(kept.begin());
  kept.push_back({name, demangled});
  return demangled;
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

// Frees what a builder kept of an event larger than most (an error with many
// frames), so that one such error does not hold memory for good.
template <size_t N>
void ReleaseLargeBuffers(std::array<flatbuffers::FlatBufferBuilder, N>& builders) {
  constexpr size_t kKeptBytes = 4096;
  for (flatbuffers::FlatBufferBuilder& fbb : builders) {
    if (fbb.GetSize() > kKeptBytes) fbb.Reset();
  }
}

}  // namespace

void RecoveryManager::Impl::ReportException(std::string_view context, const std::exception_ptr& e) {
  ExceptionDescription d = Describe(e);
  ReportError(context,
              {.exception_type = std::move(d.type), .message = std::move(d.message), .frames = {}});
}

void RecoveryManager::Impl::ReportStdException(std::string_view context, const std::type_info& type,
                                               const char* what) {
  ReportError(context, {.exception_type = Demangle(type.name()), .message = what, .frames = {}});
}

void RecoveryManager::Impl::ReportError(std::string_view context, ErrorReport report) {
  // Journaled by AttemptRecovery in one write with the recovering phase.
  AttemptRecovery(HandledError{context, report});
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
bool RecoveryManager::Impl::AttemptRecovery(std::optional<HandledError> error) {
  std::unique_lock recovery(recovery_mu_);
  std::vector<NamedCallback> callbacks;
  int attempt;
  {
    std::lock_guard lock(mu_);
    callbacks = recovery_callbacks_;
    attempt = state_.recovery_attempts;
  }
  const bool none = callbacks.empty();
  // Built in lead_ (guarded by recovery_mu_), which keeps its buffers: no
  // allocation once warm.
  std::array<std::span<const uint8_t>, 3> lead;
  size_t n = 0;
  if (error) {
    lead[n] = ErrorEvent(lead_[n], *error, attempt);
    ++n;
  }
  lead[n] = LifecycleEvent(lead_[n], fb::Phase::Recovering, "");
  ++n;
  if (none) {
    lead[n] = LifecycleEvent(lead_[n], fb::Phase::Running, "recovered");
    ++n;
  }
  const uint64_t seq =
      CommitAll({lead.data(), n}, none ? Durability::kDurable : Durability::kBuffered);
  ReleaseLargeBuffers(lead_);
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

void RecoveryManager::Impl::StopThreads() {
  StopHealth();
  {
    std::lock_guard lock(threads_mu_);
    stopping_threads_ = true;
  }
  threads_cv_.notify_all();
  if (ping_thread_.joinable()) ping_thread_.join();
  StopSnapshots();
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
    HealthCheck(sampler, nullptr);
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

// --- RecoveryManager ---------------------------------------------------------

RecoveryManager::RecoveryManager(RecoveryOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
RecoveryManager::~RecoveryManager() = default;

void RecoveryManager::report_exception(std::string_view context, std::exception_ptr e) {
  impl_->ReportException(context, e);
}
void RecoveryManager::report_std_exception(std::string_view context, const std::type_info& type,
                                           const char* what) {
  impl_->ReportStdException(context, type, what);
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
