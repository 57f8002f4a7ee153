// Opening the journal and folding it, journaling what the previous run left
// behind (its crash spill, an end that was not clean) and the effective
// configuration, then ready; and the destructor, the normal end.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "blackbox/state_io.h"
#include "crash_capture.h"
#include "recovery_manager_impl.h"

namespace blackbox {
namespace {

std::string ResolveJournalDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* env = std::getenv("BLACKBOX_JOURNAL"); env != nullptr && *env != '\0') return env;
  return std::string(kDefaultJournalRoot);
}

std::vector<std::string> OwnCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> argv;
  std::string arg;
  while (std::getline(in, arg, '\0')) argv.push_back(arg);
  return argv;
}

}  // namespace

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
  journal_options.ring_bytes = options_.journal_ring_bytes;
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

  const bool spill_ingested = IngestPreviousRun();
  RecordConfig();
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

bool RecoveryManager::Impl::IngestPreviousRun() {
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
  return spill_ingested;
}

void RecoveryManager::Impl::RecordConfig() {
  fb::ConfigT config;
  config.component = "recovery";
  // Sorted by key: ConfigEntry is a keyed table.
  std::vector<std::pair<std::string, std::string>> entries = {
      {"build_id", MainProgramBuildId()},
      {"forecast_horizon_s", std::to_string(options_.forecast_horizon.count())},
      {"health_check_interval_ms", std::to_string(options_.health_check_interval.count())},
      {"journal_dir", root_},
      {"journal_ring_bytes", std::to_string(options_.journal_ring_bytes)},
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
  UninstallSignals();
  if (owns_crash_capture_) UninstallCrashCapture();
}

}  // namespace blackbox
