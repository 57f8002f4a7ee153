#include "journal_writer.h"

#include <fmt/format.h>
#include <pthread.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::watchdog {

JournalWriter::JournalWriter(std::string stream, AppendFn append, JournalWriterOptions options)
    : stream_(std::move(stream)),
      append_(std::move(append)),
      capacity_(std::max<size_t>(options.capacity, 1)),
      thread_([this] { Run(); }) {}

JournalWriter::JournalWriter(Journal& journal, JournalWriterOptions options)
    : JournalWriter(
          journal.stream(),
          [&journal](std::span<const uint8_t> event, Durability durability) {
            Result<uint64_t> appended = journal.Append(event, durability);
            return appended.ok() ? Status::Ok() : appended.status();
          },
          options) {}

JournalWriter::~JournalWriter() { Close(); }

void JournalWriter::QueueDropNoticeLocked() {
  if (dropped_unreported_ == 0) return;
  dropped_unreported_ = 0;
  Item notice;
  notice.dropped_total = dropped_;
  notice.time_ns = WallNowNs();
  notice.mono_ns = MonoNowNs();
  queue_.push_back(std::move(notice));
}

void JournalWriter::Submit(std::string event, Durability durability) {
  std::unique_lock lock(mu_);
  if (closing_) {
    ++dropped_;
    return;
  }
  if (events_queued_ >= capacity_) {
    if (durability == Durability::kBuffered) {
      ++dropped_;
      ++dropped_unreported_;
      return;
    }
    ++waiting_for_room_;
    has_room_.wait(lock, [&] { return events_queued_ < capacity_; });
    --waiting_for_room_;
  }
  // The notice goes where the gap is: after what was queued before the drops,
  // before this event.
  QueueDropNoticeLocked();
  Item item;
  item.bytes = std::move(event);
  item.durability = durability;
  queue_.push_back(std::move(item));
  ++events_queued_;
  lock.unlock();
  has_work_.notify_one();
}

void JournalWriter::Close() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    QueueDropNoticeLocked();
  }
  has_work_.notify_one();
  if (thread_.joinable()) thread_.join();
}

uint64_t JournalWriter::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint64_t JournalWriter::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

void JournalWriter::Write(const Item& item, Durability durability) {
  Status status;
  if (item.bytes.empty()) {
    fb::GaugeT gauge;
    gauge.name = "journal_events_dropped";
    gauge.value = static_cast<double>(item.dropped_total);
    fb::EventT event;
    event.stream = stream_;
    event.severity = fb::Severity::Warning;
    event.time_ns = item.time_ns;
    event.mono_ns = item.mono_ns;
    event.payload.Set(std::move(gauge));
    const std::string bytes = EncodeEvent(std::move(event));
    status = append_(Bytes(bytes), durability);
  } else {
    status = append_(Bytes(item.bytes), durability);
  }
  if (status.ok()) return;
  // The journal failing must not stop the supervision: count, report once.
  uint64_t failed_before;
  {
    std::lock_guard lock(mu_);
    failed_before = failed_++;
  }
  if (failed_before == 0) {
    fmt::print(stderr, "blackbox-watchdog: journal append failed (supervision continues): {}\n",
               status.ToString());
  }
}

void JournalWriter::Run() {
  ::pthread_setname_np(::pthread_self(), "bb-wd-journal");
  std::deque<Item> batch;
  while (true) {
    {
      std::unique_lock lock(mu_);
      has_work_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;  // closing, and everything is written
      batch.swap(queue_);
      events_queued_ = 0;
      if (waiting_for_room_ > 0) has_room_.notify_all();
    }
    // One fsync for the whole batch, on its last durable event: every event
    // before it is in the same sequential WAL and becomes durable with it.
    size_t last_durable = batch.size();
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].durability == Durability::kDurable) last_durable = i;
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      Write(batch[i], i == last_durable ? Durability::kDurable : Durability::kBuffered);
    }
    batch.clear();
  }
}

}  // namespace blackbox::watchdog
