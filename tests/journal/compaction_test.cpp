#include <gtest/gtest.h>

#include "blackbox/journal.h"
#include "test_util.h"

namespace blackbox {
namespace {

using testing::GaugeEvent;
using testing::TempDir;

std::vector<uint64_t> Seqs(const Journal& j) {
  std::vector<uint64_t> seqs;
  j.Scan({}, [&](const Record& r) {
    seqs.push_back(r.seq);
    return true;
  });
  return seqs;
}

// Appends `n` events of ~1 KB so that compaction has something to reclaim.
void Fill(Journal& j, int n, int64_t time_ns = 0) {
  std::string pad(1000, 'x');
  for (int i = 0; i < n; ++i) {
    fb::EventT e = GaugeEvent(pad + std::to_string(i), i, time_ns);
    ASSERT_TRUE(j.Append(std::move(e), Durability::kBuffered).ok());
  }
}

TEST(Compaction, WithoutASnapshotNothingIsDeleted) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  Fill(**j, 100);
  auto stats = (*j)->Compact(Retention{});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->deleted_through, 0u);
  EXPECT_EQ(stats->events_after, 100u);
  EXPECT_EQ(Seqs(**j).size(), 100u);
}

TEST(Compaction, KeepsTheLastNEventsAndShrinksTheDirectory) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  Fill(**j, 20000);
  ASSERT_TRUE((*j)->PutSnapshot(19800, Bytes(std::string_view("state@19800"))).ok());
  Retention keep;
  keep.keep_events = 500;
  auto stats = (*j)->Compact(keep);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->events_before, 20000u);
  EXPECT_EQ(stats->deleted_through, 19500u);
  EXPECT_EQ(stats->events_after, 500u);
  EXPECT_LT(stats->bytes_after * 4, stats->bytes_before)
      << stats->bytes_before << " -> " << stats->bytes_after;
  auto seqs = Seqs(**j);
  ASSERT_EQ(seqs.size(), 500u);
  EXPECT_EQ(seqs.front(), 19501u);
  EXPECT_EQ(seqs.back(), 20000u);
  EXPECT_EQ((*j)->first_seq(), 19501u);
}

TEST(Compaction, NeverDeletesPastTheSnapshotNorTheNewestEvent) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  Fill(**j, 100);
  ASSERT_TRUE((*j)->PutSnapshot(40, Bytes(std::string_view("s40"))).ok());
  auto stats = (*j)->Compact(Retention{});
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(Seqs(**j).front(), 41u);

  ASSERT_TRUE((*j)->PutSnapshot(100, Bytes(std::string_view("s100"))).ok());
  ASSERT_TRUE((*j)->Compact(Retention{}).ok());
  // The newest event stays: it carries the sequence high-water mark.
  EXPECT_EQ(Seqs(**j), (std::vector<uint64_t>{100}));
  auto latest = (*j)->LatestSnapshot();
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->seq, 100u);
}

TEST(Compaction, NumberingContinuesAfterReopenOfACompactedStream) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    Fill(**j, 10);
    ASSERT_TRUE((*j)->PutSnapshot(10, Bytes(std::string_view("s"))).ok());
    ASSERT_TRUE((*j)->Compact(Retention{}).ok());
  }
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  auto seq = (*j)->Append(GaugeEvent("g", 1), Durability::kDurable);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 11u);
}

TEST(Compaction, KeepDaysKeepsEventsInsideTheWindow) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  const int64_t day = 86'400'000'000'000;
  const int64_t now = WallNowNs();
  Fill(**j, 30, now - 10 * day);  // seqs 1..30: ten days old
  Fill(**j, 20, now - 2 * day);   // seqs 31..50: two days old
  Fill(**j, 5, now);              // seqs 51..55: now
  ASSERT_TRUE((*j)->PutSnapshot(55, Bytes(std::string_view("s"))).ok());
  Retention keep;
  keep.keep_ns = 3 * day;
  auto stats = (*j)->Compact(keep);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->deleted_through, 30u);
  EXPECT_EQ(Seqs(**j).front(), 31u);
  EXPECT_EQ(Seqs(**j).size(), 25u);
}

}  // namespace
}  // namespace blackbox
