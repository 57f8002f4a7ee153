#include <gtest/gtest.h>

#include "blackbox/journal.h"
#include "test_util.h"

namespace blackbox {
namespace {

using testing::GaugeEvent;
using testing::TempDir;

TEST(Reader, SeesWhatTheWriterCommittedWithoutTakingItsLock) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE((*j)->Append(GaugeEvent("g", i), Durability::kBuffered).ok());

  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->last_seq(), 3u);

  // The writer keeps writing while the reader is open; Refresh shows it.
  ASSERT_TRUE((*j)->Append(GaugeEvent("g", 3), Durability::kDurable).ok());
  EXPECT_EQ((*r)->last_seq(), 3u);
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ((*r)->last_seq(), 4u);
}

TEST(Reader, ScanHonoursSeqAndTimeBounds) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE((*j)->Append(GaugeEvent("g", i, /*time_ns=*/i * 1000), Durability::kBuffered).ok());
  }
  auto collect = [&](ScanOptions so) {
    std::vector<uint64_t> seqs;
    (*j)->Scan(so, [&](const Record& r) {
      seqs.push_back(r.seq);
      return true;
    });
    return seqs;
  };
  ScanOptions so;
  so.from_seq = 8;
  EXPECT_EQ(collect(so), (std::vector<uint64_t>{8, 9, 10}));
  so = {};
  so.from_seq = 2;
  so.until_seq = 4;
  EXPECT_EQ(collect(so), (std::vector<uint64_t>{2, 3, 4}));
  so = {};
  so.since_ns = 4000;
  so.until_ns = 6000;
  EXPECT_EQ(collect(so), (std::vector<uint64_t>{4, 5, 6}));
  // A callback returning false stops the scan.
  std::vector<uint64_t> first_two;
  (*j)->Scan({}, [&](const Record& r) {
    first_two.push_back(r.seq);
    return first_two.size() < 2;
  });
  EXPECT_EQ(first_two, (std::vector<uint64_t>{1, 2}));
}

TEST(Reader, OpeningAMissingStreamFailsCleanly) {
  TempDir dir;
  auto r = Reader::Open(dir.path(), "nothing-here");
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.status().message().empty());
}

TEST(MergedReader, WalksStreamsInTimeThenStreamThenSeqOrder) {
  TempDir dir;
  {
    auto app = Journal::Open(dir.path(), "app");
    auto wd = Journal::Open(dir.path(), "watchdog");
    ASSERT_TRUE(app.ok() && wd.ok());
    // app: t=10, 30, 30, 50   watchdog: t=20, 30, 60
    for (int64_t t : {10, 30, 30, 50}) {
      ASSERT_TRUE(
          (*app)->Append(GaugeEvent("a", static_cast<double>(t), t), Durability::kBuffered).ok());
    }
    for (int64_t t : {20, 30, 60}) {
      ASSERT_TRUE(
          (*wd)->Append(GaugeEvent("w", static_cast<double>(t), t), Durability::kBuffered).ok());
    }
  }
  auto streams = ListStreams(dir.path());
  ASSERT_TRUE(streams.ok());
  EXPECT_EQ(*streams, (std::vector<std::string>{"app", "watchdog"}));

  auto m = MergedReader::Open(dir.path());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::vector<std::string> order;
  ASSERT_TRUE((*m)->Scan({},
                         [&](const Record& r) {
                           order.push_back(std::string(r.stream) + ":" + std::to_string(r.seq) +
                                           "@" + std::to_string(r.event->time_ns()));
                           return true;
                         })
                  .ok());
  EXPECT_EQ(order, (std::vector<std::string>{"app:1@10", "watchdog:1@20", "app:2@30", "app:3@30",
                                             "watchdog:2@30", "app:4@50", "watchdog:3@60"}));

  // Per-stream lower bounds and a time window.
  MergedReader::Options o;
  o.after = {{"app", 3}};
  o.until_ns = 50;
  order.clear();
  (*m)->Scan(o, [&](const Record& r) {
    order.push_back(std::string(r.stream) + ":" + std::to_string(r.seq));
    return true;
  });
  EXPECT_EQ(order, (std::vector<std::string>{"watchdog:1", "watchdog:2", "app:4"}));
}

}  // namespace
}  // namespace blackbox
