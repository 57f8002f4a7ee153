// Ring lanes (JournalOptions::ring_lanes, journal/src/lanes.h): buffered
// appends numbered when the drain moves them, in the order they happened,
// with nothing lost or doubled, by a live writer and after kill -9.
#include "lanes.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/journal.h"
#include "drain_hook.h"
#include "process.h"
#include "ring.h"
#include "ring_hold_writer.h"
#include "test_util.h"

namespace blackbox {
namespace {

using testing::TempDir;

JournalOptions LaneOptions(size_t ring_bytes, size_t lanes) {
  JournalOptions o;
  o.ring_bytes = ring_bytes;
  o.ring_lanes = lanes;
  return o;
}

std::string Gauge(std::string_view name, double value) {
  fb::EventT e = testing::GaugeEvent(name, value);
  e.stream = "app";
  return EncodeEvent(std::move(e));
}

// ring_hold_child (a ring-mode writer taking commands) with `lanes` lanes.
testing::RunOptions WithLanes(size_t lanes) {
  testing::RunOptions run;
  run.extra_env = {fmt::format("BLACKBOX_TEST_RING_LANES={}", lanes)};
  return run;
}

struct Seen {
  uint64_t seq = 0;
  std::string name;  // a Gauge's ("" for anything else)
  double value = 0;
};

// Every record of ROOT/app, checking that seqs run 1, 2, 3, ... and that the
// stream verifies.
std::vector<Seen> ReadAll(const std::string& root) {
  std::vector<Seen> out;
  auto r = Reader::Open(root, "app");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return out;
  std::vector<std::string> problems;
  EXPECT_TRUE((*r)->Verify([&](const BadRecord& b) { problems.push_back(b.reason); }).ok());
  EXPECT_TRUE(problems.empty()) << problems.front();
  (*r)->Scan({}, [&](const Record& rec) {
    Seen s;
    s.seq = rec.seq;
    if (const auto* g = rec.event->payload_as_Gauge()) {
      s.name = g->name()->str();
      s.value = g->value();
    }
    EXPECT_EQ(rec.seq, out.size() + 1) << "a gap or a seq twice";
    out.push_back(std::move(s));
    return true;
  });
  return out;
}

// Threads appending buffered events (and a durable one now and then) through
// `lanes` lanes: each thread's events once each, in its order, every seq
// from 1 once; durable appends get their seqs, buffered ones 0.
void ExpectEveryEventOnceInItsThreadsOrder(size_t lanes, int threads) {
  TempDir dir;
  constexpr int kPer = 5000;
  std::vector<std::vector<uint64_t>> durable_seqs(threads);
  uint64_t dropped = 0;
  {
    auto j = Journal::Open(dir.path(), "app", LaneOptions(1 << 20, lanes));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    EXPECT_TRUE((*j)->TakeWarnings().empty());
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < kPer; ++i) {
          const std::string e = Gauge(fmt::format("t{}", t), i);
          const Durability d = i % 500 == 0 ? Durability::kDurable : Durability::kBuffered;
          Result<uint64_t> seq = (*j)->Append(Bytes(e), d);
          while (!seq.ok() && d == Durability::kBuffered) {  // dropped: again
            std::this_thread::yield();
            seq = (*j)->Append(Bytes(e), d);
          }
          ASSERT_TRUE(seq.ok()) << seq.status().ToString();
          if (d == Durability::kDurable) {
            EXPECT_NE(*seq, 0u);
            durable_seqs[t].push_back(*seq);
          } else {
            EXPECT_EQ(*seq, 0u);
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    dropped = (*j)->dropped_appends();
  }
  const auto seen = ReadAll(dir.path());
  std::map<std::string, double> last;
  std::map<std::string, int> count;
  std::map<std::string, std::vector<uint64_t>> durable_at;
  for (const Seen& s : seen) {
    if (s.name.empty()) continue;  // a record of drops
    if (count[s.name]++ > 0) {
      ASSERT_GT(s.value, last[s.name]) << s.name << " out of order at seq " << s.seq;
    }
    last[s.name] = s.value;
    if (static_cast<int>(s.value) % 500 == 0) durable_at[s.name].push_back(s.seq);
  }
  for (int t = 0; t < threads; ++t) {
    const std::string name = fmt::format("t{}", t);
    EXPECT_EQ(count[name], kPer) << name;
    EXPECT_EQ(durable_at[name], durable_seqs[t]) << name;
  }
  ::testing::Test::RecordProperty("dropped", std::to_string(dropped));
}

TEST(RingLanes, EachThreadsEventsOnceInItsOrderWithALaneEach) {
  ExpectEveryEventOnceInItsThreadsOrder(8, 8);
}

TEST(RingLanes, EachThreadsEventsOnceInItsOrderWithThreadsSharingLanes) {
  ExpectEveryEventOnceInItsThreadsOrder(2, 8);
}

// Two threads taking turns, each appending only after it saw the other's
// last append return: the journal must alternate a0 b0 a1 b1 ... although
// the two are in different lanes and numbered later. `scan_delay_us`: each
// move sleeps that long between reading one lane and the next
// (DelayLaneScansForTesting), so that the other thread's next append lands
// in between: a move that took whatever it found, without comparing stamps
// with the clock it read first, would number it before the one it followed.
void ExpectTurnsInOrder(int rounds, int scan_delay_us) {
  TempDir dir;
  internal::DelayLaneScansForTesting(scan_delay_us);
  {
    auto j = Journal::Open(dir.path(), "app", LaneOptions(1 << 20, 4));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    std::atomic<int> turn{0};  // 2i: a's turn of round i, 2i + 1: b's
    auto player = [&](int me) {
      const std::string name = me == 0 ? "a" : "b";
      for (int i = 0; i < rounds; ++i) {
        while (turn.load(std::memory_order_acquire) != 2 * i + me) std::this_thread::yield();
        Result<uint64_t> seq = (*j)->Append(Bytes(Gauge(name, i)), Durability::kBuffered);
        while (!seq.ok()) seq = (*j)->Append(Bytes(Gauge(name, i)), Durability::kBuffered);
        turn.store(2 * i + me + 1, std::memory_order_release);
      }
    };
    std::thread a(player, 0), b(player, 1);
    a.join();
    b.join();
  }
  internal::DelayLaneScansForTesting(0);
  const auto seen = ReadAll(dir.path());
  std::vector<const Seen*> gauges;
  for (const Seen& s : seen) {
    if (!s.name.empty()) gauges.push_back(&s);
  }
  ASSERT_EQ(gauges.size(), size_t{2} * rounds);
  for (size_t k = 0; k < gauges.size(); ++k) {
    ASSERT_EQ(gauges[k]->name, k % 2 == 0 ? "a" : "b") << "at seq " << gauges[k]->seq;
    ASSERT_EQ(gauges[k]->value, static_cast<double>(k / 2)) << "at seq " << gauges[k]->seq;
  }
}

TEST(RingLanes, AnEventIsNeverNumberedBeforeOneThatHappenedBeforeIt) {
  ExpectTurnsInOrder(20000, 0);
}

TEST(RingLanes, AnEventIsNeverNumberedBeforeOneThatHappenedBeforeItWhileAMoveIsSlow) {
  ExpectTurnsInOrder(3000, 100);
}

// A writer killed with its events still in its lanes (its drain held): the
// next open numbers them in their order, after what RING held.
TEST(RingLanes, AKilledWritersLaneEventsAreIngestedInOrder) {
  TempDir dir;
  {
    testing::RingHoldWriter w(RING_HOLD_CHILD, dir.path(), "app", "held", WithLanes(4));
    // Buffered, into one lane (a quarter of the 64 KiB ring: 64 slots): no
    // seq yet.
    EXPECT_EQ(w.Command("60"), 0u);
    // Alive: its lanes are its own business (appends in flight, events it
    // has not moved); a reader shows none of them.
    auto live = Reader::Open(dir.path(), "app");
    ASSERT_TRUE(live.ok()) << live.status().ToString();
    EXPECT_EQ((*live)->last_seq(), 0u);
    w.Kill();
  }
  // Dead: a reader shows them as the next writer will number them.
  {
    const auto before_start = ReadAll(dir.path());
    ASSERT_EQ(before_start.size(), 60u);
    for (size_t k = 0; k < before_start.size(); ++k) {
      EXPECT_EQ(before_start[k].value, static_cast<double>(k));
    }
  }
  {
    auto j = Journal::Open(dir.path(), "app", LaneOptions(1 << 16, 4));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    const auto warnings = (*j)->TakeWarnings();
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("held 60 event(s) not yet numbered"), std::string::npos)
        << warnings[0];
    EXPECT_EQ((*j)->last_seq(), 60u);
  }
  const auto seen = ReadAll(dir.path());
  ASSERT_EQ(seen.size(), 60u);
  for (size_t k = 0; k < seen.size(); ++k) {
    EXPECT_EQ(seen[k].name, "held");
    EXPECT_EQ(seen[k].value, static_cast<double>(k));
  }
  // Ingested once: the next open finds nothing left.
  auto again = Journal::Open(dir.path(), "app", LaneOptions(1 << 16, 4));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE((*again)->TakeWarnings().empty());
  EXPECT_EQ((*again)->last_seq(), 60u);
}

// A reader in the writer's own process is beside a live writer too: the
// lanes' events are not shown before they are moved.
TEST(RingLanes, AReaderBesideAWriterInItsOwnProcessShowsNoUnmovedLaneEvents) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app", LaneOptions(1 << 16, 2));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  ASSERT_TRUE((*j)->Append(Bytes(Gauge("g", 0)), Durability::kDurable).ok());
  internal::HoldRingDrainForTesting(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a pass in progress ends
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE((*j)->Append(Bytes(Gauge("g", i)), Durability::kBuffered).ok());
  }
  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->last_seq(), 1u);
  internal::HoldRingDrainForTesting(false);
  ASSERT_TRUE((*j)->Sync().ok());
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ((*r)->last_seq(), 11u);
}

// Killed after the drain wrote a batch and before it released the slots
// (SkipRingReleaseForTesting): the lanes still hold events the database has,
// and the next open must not take them for leftovers.
TEST(RingLanes, EventsWrittenButNotReleasedAtTheKillAreNotIngestedTwice) {
  TempDir dir;
  uint64_t durable = 0;
  {
    testing::RingHoldWriter w(RING_HOLD_CHILD, dir.path(), "app", "draining", WithLanes(4));
    EXPECT_EQ(w.Command("norelease"), 0u);
    EXPECT_EQ(w.Command("50"), 0u);
    durable = w.Command("D 1");  // after the 50: moved, written and synced
    w.Kill();
  }
  EXPECT_EQ(durable, 51u);
  {
    auto j = Journal::Open(dir.path(), "app", LaneOptions(1 << 16, 4));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    for (const auto& w : (*j)->TakeWarnings()) ADD_FAILURE() << w;
    EXPECT_EQ((*j)->last_seq(), 51u);
  }
  const auto seen = ReadAll(dir.path());
  ASSERT_EQ(seen.size(), 51u);
  for (size_t k = 0; k < seen.size(); ++k) EXPECT_EQ(seen[k].value, static_cast<double>(k));
}

// The same kill, with RING then unreadable or gone: nothing refers to the
// lane records the database has any more. They are found among its newest
// events and not ingested again; the ones never moved are, once each, after
// them.
TEST(RingLanes, WithRingLostTheLanesEventsTheDatabaseHasAreNotIngestedTwice) {
  namespace fs = std::filesystem;
  TempDir base;
  const fs::path original = base / "original";
  {
    testing::RingHoldWriter w(RING_HOLD_CHILD, original.string(), "app", "draining", WithLanes(4));
    EXPECT_EQ(w.Command("norelease"), 0u);
    EXPECT_EQ(w.Command("30"), 0u);
    EXPECT_EQ(w.Command("D 1"), 31u);  // after the 30: moved, written and synced
    EXPECT_EQ(w.Command("hold"), 0u);
    EXPECT_EQ(w.Command("20"), 0u);  // in the lane, unmoved
    w.Kill();
  }
  const std::vector<std::pair<const char*, std::function<void(const fs::path&)>>> variants = {
      {"RING's header overwritten",
       [](const fs::path& ring) {
         std::fstream f(ring, std::ios::in | std::ios::out | std::ios::binary);
         f << std::string(64, 'x');
       }},
      {"RING removed", [](const fs::path& ring) { fs::remove(ring); }},
  };
  for (const auto& [name, damage] : variants) {
    SCOPED_TRACE(name);
    const fs::path copy = base / "copy";
    fs::remove_all(copy);
    fs::copy(original, copy, fs::copy_options::recursive);
    damage(copy / "app" / "RING");
    {
      auto j = Journal::Open(copy.string(), "app", LaneOptions(1 << 16, 4));
      ASSERT_TRUE(j.ok()) << j.status().ToString();
      std::string warnings;
      for (const auto& w : (*j)->TakeWarnings()) warnings += w + "\n";
      EXPECT_NE(warnings.find("held 30 event(s) the database has already"), std::string::npos)
          << warnings;
      EXPECT_NE(warnings.find("held 20 event(s) not yet numbered"), std::string::npos) << warnings;
      EXPECT_EQ((*j)->last_seq(), 51u);
    }
    const auto seen = ReadAll(copy.string());
    ASSERT_EQ(seen.size(), 51u);
    for (size_t k = 0; k < seen.size(); ++k) EXPECT_EQ(seen[k].value, static_cast<double>(k));
  }
}

// A reader beside a live writer with lanes sees its events through RING's
// references to them, before and after the drain wrote them.
TEST(RingLanes, AReaderSeesALiveWritersLaneEvents) {
  TempDir dir;
  testing::RingHoldWriter w(RING_HOLD_CHILD, dir.path(), "app", "draining", WithLanes(2));
  EXPECT_EQ(w.Command("D 1"), 1u);
  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->last_seq(), 1u);
  // Moved and written after the reader's view of the database: it finds
  // them in RING and the lanes, drained but not yet overwritten.
  EXPECT_EQ(w.Command("29"), 0u);
  for (int i = 0; i < 200 && (*r)->last_seq() < 30; ++i) {
    ASSERT_TRUE((*r)->RefreshRing());
    if ((*r)->last_seq() < 30) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ((*r)->last_seq(), 30u);
  EXPECT_EQ(w.Command("D 1"), 31u);  // numbered after the 29
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ((*r)->last_seq(), 31u);
  std::vector<double> values;
  (*r)->Scan({}, [&](const Record& rec) {
    values.push_back(rec.event->payload_as_Gauge()->value());
    return true;
  });
  ASSERT_EQ(values.size(), 31u);
  for (size_t k = 0; k < values.size(); ++k) EXPECT_EQ(values[k], static_cast<double>(k));
}

// A dead writer's lane files damaged, replaced or planted before the next
// open: the open and every reader go on (a warning says what could not be
// read), nothing intact is lost, and the numbering keeps no gap.
TEST(RingLanes, DamagedOrPlantedLaneFilesNeverStopAnOpenOrAReader) {
  namespace fs = std::filesystem;
  TempDir base;
  const fs::path original = base / "original";
  {
    testing::RingHoldWriter w(RING_HOLD_CHILD, original.string(), "app", "draining", WithLanes(4));
    EXPECT_EQ(w.Command("D 1"), 1u);  // seq 1 in the database
    EXPECT_EQ(w.Command("hold"), 0u);
    EXPECT_EQ(w.Command("40"), 0u);  // 40 in one lane, unmoved
    w.Kill();
  }
  std::vector<size_t> ids;
  const auto lanes = internal::ListLaneFiles((original / "app").string(), &ids);
  ASSERT_EQ(lanes.size(), 4u);
  // The lane the writer's thread used: the only one with records.
  std::string used;
  for (const auto& f : lanes) {
    auto scan = internal::ScanRing(f, 0);
    ASSERT_TRUE(scan.ok()) << scan.status().ToString();
    if (!scan->records.empty()) used = fs::path(f).filename().string();
  }
  ASSERT_FALSE(used.empty());
  struct Variant {
    const char* name;
    std::function<void(const fs::path& app)> damage;
    size_t events;        // the gauges after the next open
    const char* warning;  // in a warning of the open
  };
  const std::vector<Variant> variants = {
      {"a record's byte flipped",
       [&](const fs::path& app) {
         // Slot 5 of the lane (page 0 is the header, 256-byte slots): a
         // byte of its payload, inverted (a byte set to a fixed value may
         // have held it already: it can be part of the event's time).
         std::fstream f(app / used, std::ios::in | std::ios::out | std::ios::binary);
         const std::streamoff at = 4096 + 5 * 256 + 100;
         f.seekg(at);
         const int byte = f.get();
         ASSERT_NE(byte, EOF);
         f.seekp(at);
         f.put(static_cast<char>(~byte));
       },
       40, "1 torn slot(s)"},
      {"truncated", [&](const fs::path& app) { fs::resize_file(app / used, 1000); }, 1,
       "a ring lane of the journal stream"},
      {"a symlink to another file",
       [&](const fs::path& app) {
         fs::remove(app / used);
         fs::create_symlink(base / "victim", app / used);
       },
       1, "a ring lane of the journal stream"},
      {"readable by others",
       [&](const fs::path& app) {
         fs::permissions(app / used, fs::perms::others_read, fs::perm_options::add);
       },
       1, "readable or writable by other users"},
      {"a planted lane of garbage",
       [&](const fs::path& app) {
         std::ofstream(app / "RING.lane-999") << std::string(5000, 'x');
         fs::permissions(app / "RING.lane-999", fs::perms::owner_read | fs::perms::owner_write,
                         fs::perm_options::replace);
       },
       41, "RING.lane-999 is not a ring file"},
  };
  std::ofstream(base / "victim") << "not a ring";
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    const fs::path copy = base / "copy";
    fs::remove_all(copy);
    fs::copy(original, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    v.damage(copy / "app");
    // A reader first (the writer is gone: it shows what the open will
    // ingest), then the open, then a reader again.
    const auto before = ReadAll(copy.string());
    {
      auto j = Journal::Open(copy.string(), "app", LaneOptions(1 << 16, 4));
      ASSERT_TRUE(j.ok()) << j.status().ToString();
      std::string warnings;
      for (const auto& w : (*j)->TakeWarnings()) warnings += w + "\n";
      EXPECT_NE(warnings.find(v.warning), std::string::npos) << warnings;
    }
    const auto after = ReadAll(copy.string());
    size_t gauges = 0;
    for (const Seen& s : after) gauges += !s.name.empty();
    EXPECT_EQ(gauges, v.events);
    // What the reader showed before the open is what the open kept, seq
    // for seq (a torn record: the reader stops before it; the open skips
    // it).
    ASSERT_LE(before.size(), after.size());
    for (size_t k = 0; k < before.size(); ++k) {
      EXPECT_EQ(before[k].value, after[k].value) << "seq " << k + 1;
    }
    std::string victim;
    std::getline(std::ifstream(base / "victim"), victim);
    EXPECT_EQ(victim, "not a ring");
  }
}

// The lane files a writer makes are its own: owner-only, not another's.
TEST(RingLanes, LaneFilesAreOwnerOnly) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app", LaneOptions(1 << 16, 3));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  std::vector<size_t> ids;
  const auto files = internal::ListLaneFiles(dir / "app", &ids);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(ids, (std::vector<size_t>{0, 1, 2}));
  for (const auto& f : files) {
    struct stat st {};
    ASSERT_EQ(::lstat(f.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
}

}  // namespace
}  // namespace blackbox
