// JournalWriter: the thread that takes the watchdog's journal I/O off the
// event loop. Order, drain on close, back-pressure (buffered events dropped
// and counted, durable ones never), one fsync per batch; and the same against
// a real journal.
#include "journal_writer.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "temp_dir.h"

namespace {

using blackbox::Durability;
using blackbox::Status;
using blackbox::watchdog::JournalWriter;
namespace fb = blackbox::fb;

// An event that names itself: a Gauge "e<n>".
std::string Event(int n) {
  fb::GaugeT gauge;
  gauge.name = "e" + std::to_string(n);
  gauge.value = n;
  fb::EventT event;
  event.stream = std::string(blackbox::kWatchdogStream);
  event.payload.Set(std::move(gauge));
  return blackbox::EncodeEvent(std::move(event));
}

// "e<n>" for an event of Event(), "dropped:<total>" for a drop notice.
std::string Describe(std::span<const uint8_t> bytes) {
  const fb::Event* event = blackbox::VerifyEvent(bytes);
  if (event == nullptr || event->payload_type() != fb::Payload::Gauge) return "?";
  const fb::Gauge* gauge = event->payload_as_Gauge();
  const std::string name = gauge->name() != nullptr ? gauge->name()->str() : "";
  if (name == "journal_events_dropped") {
    return "dropped:" + std::to_string(static_cast<int>(gauge->value()));
  }
  return name;
}

// A sink that records what it is given and can be held shut, so that the
// writer thread stalls inside an append as it would on a slow disk.
class Sink {
 public:
  JournalWriter::AppendFn Fn() {
    return [this](std::span<const uint8_t> bytes, Durability durability) {
      std::unique_lock lock(mu_);
      ++entered_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
      appended_.emplace_back(Describe(bytes), durability);
      return Status::Ok();
    };
  }
  void Hold() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void Release() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void WaitEntered(int n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return entered_ >= n; });
  }
  std::vector<std::string> Names() {
    std::lock_guard lock(mu_);
    std::vector<std::string> names;
    for (auto& [name, durability] : appended_) names.push_back(name);
    return names;
  }
  std::vector<Durability> Durabilities() {
    std::lock_guard lock(mu_);
    std::vector<Durability> out;
    for (auto& [name, durability] : appended_) out.push_back(durability);
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int entered_ = 0;
  std::vector<std::pair<std::string, Durability>> appended_;
};

TEST(JournalWriter, AppendsEverythingInSubmissionOrderBeforeCloseReturns) {
  Sink sink;
  JournalWriter writer("watchdog", sink.Fn());
  std::vector<std::string> expected;
  for (int i = 0; i < 1000; ++i) {
    writer.Submit(Event(i), i % 7 == 0 ? Durability::kDurable : Durability::kBuffered);
    expected.push_back("e" + std::to_string(i));
  }
  writer.Close();
  EXPECT_EQ(sink.Names(), expected);
  EXPECT_EQ(writer.dropped(), 0u);
  EXPECT_EQ(writer.failed(), 0u);
}

TEST(JournalWriter, FullQueueDropsBufferedEventsButNeverADurableOne) {
  Sink sink;
  JournalWriter writer("watchdog", sink.Fn(), {.capacity = 4});
  sink.Hold();
  writer.Submit(Event(0), Durability::kBuffered);
  sink.WaitEntered(1);  // the writer is stuck appending e0; the queue is empty
  for (int i = 1; i <= 4; ++i) writer.Submit(Event(i), Durability::kBuffered);  // full
  for (int i = 5; i <= 7; ++i) writer.Submit(Event(i), Durability::kBuffered);  // dropped
  EXPECT_EQ(writer.dropped(), 3u);

  // A durable event on the full queue waits for room instead of being dropped.
  std::atomic<bool> submitted = false;
  std::thread loop([&] {
    writer.Submit(Event(8), Durability::kDurable);
    submitted = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(submitted) << "a durable Submit returned while the queue was full";
  sink.Release();
  loop.join();
  EXPECT_TRUE(submitted);
  writer.Close();

  // The drop notice sits where the gap is, with the count.
  EXPECT_EQ(sink.Names(),
            (std::vector<std::string>{"e0", "e1", "e2", "e3", "e4", "dropped:3", "e8"}));
  EXPECT_EQ(sink.Durabilities().back(), Durability::kDurable);
  EXPECT_EQ(writer.dropped(), 3u);
}

TEST(JournalWriter, DropsNotFollowedByAnyEventAreReportedAtClose) {
  Sink sink;
  JournalWriter writer("watchdog", sink.Fn(), {.capacity = 1});
  sink.Hold();
  writer.Submit(Event(0), Durability::kBuffered);
  sink.WaitEntered(1);
  writer.Submit(Event(1), Durability::kBuffered);
  writer.Submit(Event(2), Durability::kBuffered);  // dropped
  sink.Release();
  writer.Close();
  EXPECT_EQ(sink.Names(), (std::vector<std::string>{"e0", "e1", "dropped:1"}));
}

TEST(JournalWriter, DurableEventsOfABatchShareOneSyncOnTheLastOfThem) {
  Sink sink;
  JournalWriter writer("watchdog", sink.Fn());
  sink.Hold();
  writer.Submit(Event(0), Durability::kBuffered);
  sink.WaitEntered(1);
  // Queued behind e0, so taken as one batch.
  writer.Submit(Event(1), Durability::kDurable);
  writer.Submit(Event(2), Durability::kBuffered);
  writer.Submit(Event(3), Durability::kDurable);
  writer.Submit(Event(4), Durability::kBuffered);
  sink.Release();
  writer.Close();
  ASSERT_EQ(sink.Names(), (std::vector<std::string>{"e0", "e1", "e2", "e3", "e4"}));
  // The WAL is sequential: the fsync of e3 makes e1 durable too.
  EXPECT_EQ(
      sink.Durabilities(),
      (std::vector<Durability>{Durability::kBuffered, Durability::kBuffered, Durability::kBuffered,
                               Durability::kDurable, Durability::kBuffered}));
}

TEST(JournalWriter, EveryEventReachesARealJournalInSubmissionOrder) {
  const blackbox::testing::TempDir dir;
  const std::string& root = dir.path();
  {
    auto journal = blackbox::Journal::Open(root, blackbox::kWatchdogStream);
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
    {
      JournalWriter writer(*journal.value());
      for (int i = 0; i < 2000; ++i) {
        writer.Submit(Event(i), i % 50 == 0 ? Durability::kDurable : Durability::kBuffered);
      }
    }  // the destructor drains
    EXPECT_EQ(journal.value()->last_seq(), 2000u);
  }
  auto reader = blackbox::Reader::Open(root, blackbox::kWatchdogStream);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  int next = 0;
  Status st = reader.value()->Scan({}, [&](const blackbox::Record& r) {
    EXPECT_EQ(r.seq, static_cast<uint64_t>(next + 1));
    EXPECT_EQ(Describe(blackbox::Bytes(r.bytes)), "e" + std::to_string(next));
    ++next;
    return true;
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(next, 2000);
}

}  // namespace
