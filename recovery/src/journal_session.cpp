// Journaling and folding every event of the manager, snapshots and the state
// file (the invariants are at the top of recovery_manager_impl.h).
#include <fmt/format.h>

#include <system_error>

#include "blackbox/state_io.h"
#include "crash_capture.h"
#include "recovery_manager_impl.h"

namespace blackbox {
namespace {

// A string field as the object API writes it (EncodeEvent): absent when empty.
flatbuffers::Offset<flatbuffers::String> Text(flatbuffers::FlatBufferBuilder& fbb,
                                              std::string_view s) {
  return s.empty() ? flatbuffers::Offset<flatbuffers::String>()
                   : fbb.CreateString(s.data(), s.size());
}

}  // namespace

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
  if (snapshot_due) QueueSnapshot();
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

std::span<const uint8_t> RecoveryManager::Impl::ErrorEvent(flatbuffers::FlatBufferBuilder& fbb,
                                                           const HandledError& error,
                                                           int recovery_attempt) {
  fbb.Clear();
  const ErrorReport& r = error.report;
  const auto context = Text(fbb, error.context);
  const auto type = Text(fbb, r.exception_type);
  const auto message = Text(fbb, r.message);
  const auto frames = r.frames.empty() ? 0 : fbb.CreateVectorOfStrings(r.frames);
  const auto payload = fb::CreateError(fbb, context, type, message, frames, recovery_attempt);
  FinishEvent(fbb, options_.stream, fb::Severity::Error, fb::Payload::Error, payload.Union());
  return Bytes(fbb);
}

std::span<const uint8_t> RecoveryManager::Impl::LifecycleEvent(flatbuffers::FlatBufferBuilder& fbb,
                                                               fb::Phase phase,
                                                               std::string_view reason) {
  fbb.Clear();
  const auto payload = fb::CreateLifecycle(fbb, phase, Text(fbb, reason));
  const fb::Severity severity = phase == fb::Phase::Error || phase == fb::Phase::Failed
                                    ? fb::Severity::Error
                                    : fb::Severity::Info;
  FinishEvent(fbb, options_.stream, severity, fb::Payload::Lifecycle, payload.Union());
  return Bytes(fbb);
}

void RecoveryManager::Impl::SendStatus(fb::Phase phase, const std::string& reason) {
  if (!notify_.enabled()) return;
  std::string_view name = SeedStatusName(phase);
  notify_.Send(reason.empty() ? fmt::format("STATUS={}", name)
                              : fmt::format("STATUS={}: {}", name, reason));
}

uint64_t RecoveryManager::Impl::Phase(fb::Phase phase, const std::string& reason,
                                      Durability durability) {
  flatbuffers::FlatBufferBuilder fbb(256);
  const uint64_t seq = Commit(LifecycleEvent(fbb, phase, reason), durability);
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

std::optional<std::pair<uint64_t, std::string>> RecoveryManager::Impl::TakeSnapshot() {
  if (!journal_) return std::nullopt;
  std::lock_guard lock(mu_);
  if (in_flight_ != 0) return std::nullopt;  // retried after the next event
  auto it = state_.covered.find(options_.stream);
  if (it == state_.covered.end() || it->second == 0) return std::nullopt;
  const uint64_t seq = it->second;
  // Covered beyond what the stream holds (events lost to damage, and none
  // of this run written yet): nothing to store until one is.
  if (seq > journal_->last_seq()) return std::nullopt;
  since_snapshot_ = 0;
  return std::make_pair(seq, EncodeSnapshot(state_));
}

void RecoveryManager::Impl::PutSnapshot(uint64_t seq, const std::string& bytes) {
  if (Status st = journal_->PutSnapshot(seq, Bytes(bytes)); !st.ok()) NoteFailure(st);
}

void RecoveryManager::Impl::StoreSnapshot() {
  if (auto snapshot = TakeSnapshot()) PutSnapshot(snapshot->first, snapshot->second);
}

void RecoveryManager::Impl::QueueSnapshot() {
  auto snapshot = TakeSnapshot();
  if (!snapshot) return;
  std::unique_lock lock(snapshot_mu_);
  if (!snapshots_stopped_ && !snapshot_thread_.joinable()) {
    try {
      snapshot_thread_ = std::thread([this] { SnapshotLoop(); });
    } catch (const std::system_error&) {
      snapshots_stopped_ = true;  // no thread to be had: stored on the caller's path
    }
  }
  if (snapshots_stopped_) {
    lock.unlock();
    PutSnapshot(snapshot->first, snapshot->second);
    return;
  }
  // Snapshots are keyed by the seq they cover; an older one not yet stored
  // is not needed any more.
  snapshot_pending_ = std::move(snapshot);
  lock.unlock();
  snapshot_cv_.notify_one();
}

void RecoveryManager::Impl::SnapshotLoop() {
  EnsureAltStackForThisThread();
  std::unique_lock lock(snapshot_mu_);
  while (true) {
    snapshot_cv_.wait(lock, [this] { return snapshot_pending_ || snapshots_stopped_; });
    if (!snapshot_pending_) return;  // stopped, nothing left to store
    const auto [seq, bytes] = std::move(*snapshot_pending_);
    snapshot_pending_.reset();
    lock.unlock();
    PutSnapshot(seq, bytes);
    lock.lock();
  }
}

void RecoveryManager::Impl::StopSnapshots() {
  {
    std::lock_guard lock(snapshot_mu_);
    snapshots_stopped_ = true;
  }
  snapshot_cv_.notify_all();
  // What was queued is stored first: the journal is released after this.
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
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

void RecoveryManager::Impl::SetGauge(std::string_view name, double value) {
  // The hot path: no object API, one reused builder per thread.
  thread_local flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Clear();
  auto n = fbb.CreateString(name.data(), name.size());
  auto gauge = fb::CreateGauge(fbb, n, value);
  FinishEvent(fbb, options_.stream, fb::Severity::Info, fb::Payload::Gauge, gauge.Union());
  Commit(Bytes(fbb), Durability::kBuffered);
}

}  // namespace blackbox
