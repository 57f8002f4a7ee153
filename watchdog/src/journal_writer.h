// The watchdog's journal I/O, on a thread of its own.
//
// The event loop must answer a crash in microseconds; a durable append ends
// in an fsync that takes milliseconds (tens on a busy disk). So the loop only
// encodes an event and hands it over here; one writer thread appends the
// events to the Journal in the order they were submitted. Every decision stays
// on the loop's thread: this class makes none, it only writes.
//
// Guarantees:
//   - Order: events reach the journal in submission order (one writer thread).
//   - Durability: a durable event is fsync'd, in order, shortly after it is
//     submitted. The writer takes everything queued at once and asks for the
//     fsync only on the last durable event of that batch; the WAL is
//     sequential, so that one fsync covers every event before it (group
//     commit: a burst of restarts costs one fsync, not five per restart).
//   - Shutdown: Close() (and the destructor) drain the queue before they
//     return, so an orderly exit loses nothing that was submitted. A watchdog
//     that is SIGKILLed loses what was still queued (usually nothing; at most
//     the last few milliseconds).
//   - Back-pressure: the queue holds at most `capacity` events. When it is
//     full, a buffered event is dropped and counted, and the count is
//     journaled (Gauge "journal_events_dropped", the running total) right
//     before the next event that gets in. A durable event is never dropped: on
//     a full queue Submit waits until the writer has made room. The queue only
//     fills when the disk stalls for thousands of events, and then waiting is
//     what a synchronous append would have done anyway.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "blackbox/journal.h"

namespace blackbox::watchdog {

struct JournalWriterOptions {
  // Queued events before buffered ones are dropped (see above).
  size_t capacity = 4096;
};

class JournalWriter {
 public:
  // Appends one finished Event buffer with the given durability. Called from
  // the writer thread only, one call at a time.
  using AppendFn = std::function<Status(std::span<const uint8_t> event, Durability durability)>;

  // Starts the writer thread. `stream` names the stream of the drop notices.
  JournalWriter(std::string stream, AppendFn append, JournalWriterOptions options = {});
  // Writes into `journal`, which must outlive this writer.
  explicit JournalWriter(Journal& journal, JournalWriterOptions options = {});
  // Close().
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Queues one encoded Event (see EncodeEvent). Never waits for I/O, except
  // for a durable event on a full queue (see above). After Close(), events are
  // dropped and counted.
  void Submit(std::string event, Durability durability);

  // Appends everything queued, then stops the writer thread. Idempotent.
  void Close();

  // Buffered events dropped because the queue was full.
  uint64_t dropped() const;
  // Appends that failed (the journal's error is printed once to stderr).
  uint64_t failed() const;

 private:
  struct Item {
    std::string bytes;  // empty for a drop notice
    Durability durability = Durability::kBuffered;
    uint64_t dropped_total = 0;  // a drop notice: dropped() when it was queued
    int64_t time_ns = 0;
    int64_t mono_ns = 0;
  };

  void QueueDropNoticeLocked();
  void Run();
  void Write(const Item& item, Durability durability);

  const std::string stream_;
  const AppendFn append_;
  const size_t capacity_;

  mutable std::mutex mu_;
  std::condition_variable has_work_;  // the writer waits for items or closing
  std::condition_variable has_room_;  // a durable Submit waits for room
  std::deque<Item> queue_;            // guarded by mu_
  size_t events_queued_ = 0;          // queue_ minus drop notices; guarded by mu_
  int waiting_for_room_ = 0;          // durable Submits waiting for room; guarded by mu_
  bool closing_ = false;              // guarded by mu_
  uint64_t dropped_ = 0;              // guarded by mu_
  uint64_t dropped_unreported_ = 0;   // guarded by mu_
  uint64_t failed_ = 0;               // guarded by mu_

  std::thread thread_;  // last: started when everything above is ready
};

}  // namespace blackbox::watchdog
