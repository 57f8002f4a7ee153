#include <gtest/gtest.h>

#include <filesystem>

#include "blackbox/journal.h"
#include "blackbox/state_io.h"
#include "event_builders.h"
#include "temp_dir.h"

namespace blackbox {
namespace {

using namespace testing;
namespace fs = std::filesystem;

class LoadStateTest : public ::testing::Test {
 protected:
  std::unique_ptr<Journal> OpenStream(std::string_view stream) {
    auto j = Journal::Open(root_, stream);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return std::move(j.value());
  }
  // Appends and folds into `expected`, the reference full fold.
  template <class PayloadT>
  void Append(Journal& j, int64_t t, PayloadT payload) {
    TestEvent e = Make(j.stream(), t, 7, std::move(payload));
    auto seq = j.Append(Bytes(e.bytes), Durability::kBuffered);
    ASSERT_TRUE(seq.ok()) << seq.status().ToString();
    Fold(expected_, *e.event(), j.stream(), seq.value());
  }

  TempDir tmp_;
  std::string root_ = tmp_ / "journal";  // made by the first Journal::Open
  SystemState expected_;
};

TEST_F(LoadStateTest, EmptyRootFoldsToTheDefaultState) {
  fs::create_directories(root_);
  fs::permissions(root_, fs::perms::owner_all);
  auto s = LoadState(root_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value(), SystemState{});
}

TEST_F(LoadStateTest, MissingRootIsAnError) { EXPECT_FALSE(LoadState(root_ + "/nope").ok()); }

TEST_F(LoadStateTest, SnapshotPlusTailEqualsAFullFoldAcrossStreams) {
  auto app = OpenStream(kAppStream);
  auto dog = OpenStream(kWatchdogStream);
  Append(*dog, 1, Lifecycle(fb::Phase::Starting));
  Append(*app, 2, Lifecycle(fb::Phase::Starting));
  Append(*app, 3, Gauge("active_positions", 1));
  Append(*app, 4, Error("c", "t", "m"));
  ASSERT_TRUE(app->PutSnapshot(app->last_seq(), Bytes(EncodeSnapshot(expected_))).ok());
  Append(*dog, 5, Restart(fb::RestartReason::Hang, 1));
  Append(*app, 6, Gauge("active_positions", 2));
  Append(*app, 7, Lifecycle(fb::Phase::Running));

  auto s = LoadState(root_);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s.value(), expected_);
}

TEST_F(LoadStateTest, TheSnapshotIsUsedNotRefolded) {
  // A snapshot that disagrees with the events it claims to cover proves that
  // LoadState started from it instead of folding from the beginning.
  auto app = OpenStream(kAppStream);
  Append(*app, 1, Gauge("active_positions", 1));
  SystemState marked = expected_;
  marked.restart_count = 42;
  ASSERT_TRUE(app->PutSnapshot(app->last_seq(), Bytes(EncodeSnapshot(marked))).ok());
  Append(*app, 2, Gauge("active_positions", 2));
  auto s = LoadState(root_);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->restart_count, 42);
  EXPECT_EQ(s->gauge("active_positions"), 2);
}

TEST_F(LoadStateTest, UntilUsesOnlyOlderSnapshotsAndEvents) {
  auto app = OpenStream(kAppStream);
  Append(*app, 10, Gauge("g", 1));
  Append(*app, 20, Gauge("g", 2));
  SystemState at20 = expected_;
  Append(*app, 30, Gauge("g", 3));
  ASSERT_TRUE(app->PutSnapshot(app->last_seq(), Bytes(EncodeSnapshot(expected_))).ok());
  Append(*app, 40, Gauge("g", 4));

  LoadStateOptions options;
  options.until_ns = 25;
  auto s = LoadState(root_, options);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.value(), at20);
}

TEST_F(LoadStateTest, StreamSelectionIgnoresSnapshotsThatCoverOtherStreams) {
  auto app = OpenStream(kAppStream);
  auto dog = OpenStream(kWatchdogStream);
  Append(*app, 1, Gauge("g", 1));
  Append(*dog, 2, Lifecycle(fb::Phase::Starting));
  ASSERT_TRUE(app->PutSnapshot(app->last_seq(), Bytes(EncodeSnapshot(expected_))).ok());

  LoadStateOptions options;
  options.streams = {std::string(kWatchdogStream)};
  auto s = LoadState(root_, options);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->gauges.empty());
  EXPECT_EQ(s->watchdog.watchdog_pid, 7);
  EXPECT_EQ(s->event_count, 1u);
}

}  // namespace
}  // namespace blackbox
