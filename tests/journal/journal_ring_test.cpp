// The journal in ring mode (JournalOptions::ring_bytes, journal_ring.cpp):
// numbering across threads and durabilities, spilled events, what Open does
// with a ring left behind, and kill -9 of a real writer process.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/journal.h"
#include "fault_fs.h"
#include "file_system_hook.h"
#include "high_water.h"
#include "process.h"
#include "ring.h"
#include "test_util.h"

namespace blackbox {
namespace {

using testing::TempDir;

JournalOptions RingOptions(size_t bytes) {
  JournalOptions o;
  o.ring_bytes = bytes;
  return o;
}

std::string Gauge(std::string_view name, double value) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto g = fb::CreateGaugeDirect(fbb, std::string(name).c_str(), value);
  FinishEvent(fbb, "app", fb::Severity::Info, fb::Payload::Gauge, g.Union());
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

// What a reader sees of a stream after the writer closed.
struct Seen {
  uint64_t seq = 0;
  fb::Payload type = fb::Payload::NONE;
  double value = 0;  // a Gauge's
  std::string name;  // a Gauge's
  std::string text;  // a LogLine's
};

std::vector<Seen> ReadAll(const std::string& root, std::vector<BadRecord>* problems = nullptr) {
  std::vector<Seen> out;
  auto r = Reader::Open(root, "app");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return out;
  if (problems != nullptr) {
    auto checked = (*r)->Verify([&](const BadRecord& b) { problems->push_back(b); });
    EXPECT_TRUE(checked.ok());
  }
  (*r)->Scan({}, [&](const Record& rec) {
    Seen s;
    s.seq = rec.seq;
    s.type = rec.event->payload_type();
    if (const auto* g = rec.event->payload_as_Gauge()) {
      s.value = g->value();
      s.name = g->name()->str();
    }
    if (const auto* l = rec.event->payload_as_LogLine()) {
      EXPECT_EQ(l->source()->str(), "blackbox.journal");
      s.text = l->text()->str();
    }
    out.push_back(std::move(s));
    return true;
  });
  return out;
}

// The events a LogLine of the journal says were dropped ("N buffered…").
uint64_t DroppedIn(const std::vector<Seen>& seen) {
  uint64_t n = 0;
  for (const auto& s : seen) {
    if (s.type == fb::Payload::LogLine && s.text.find("dropped") != std::string::npos) {
      n += std::stoull(s.text);
    }
  }
  return n;
}

TEST(JournalRing, ThreadsAppendingBufferedAndDurableGetEverySeqOnceInOrder) {
  TempDir dir;
  constexpr int kThreads = 6;
  constexpr int kPer = 3000;
  std::vector<std::vector<uint64_t>> got(kThreads);
  uint64_t dropped = 0;
  {
    auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));  // 256 slots
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    EXPECT_TRUE((*j)->TakeWarnings().empty());
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < kPer; ++i) {
          const std::string e = Gauge("g", t * 1e6 + i);
          const Durability d = i % 50 == 0 ? Durability::kDurable : Durability::kBuffered;
          Result<uint64_t> seq = (*j)->Append(Bytes(e), d);
          // Dropped (the ring was full): this test wants every event, so again.
          while (!seq.ok() && d == Durability::kBuffered) {
            std::this_thread::yield();
            seq = (*j)->Append(Bytes(e), d);
          }
          ASSERT_TRUE(seq.ok()) << seq.status().ToString();
          got[t].push_back(*seq);
        }
      });
    }
    for (auto& w : workers) w.join();
    dropped = (*j)->dropped_appends();
    EXPECT_EQ((*j)->failed_appends(), dropped);
  }
  std::vector<BadRecord> problems;
  const auto seen = ReadAll(dir.path(), &problems);
  EXPECT_TRUE(problems.empty()) << problems.front().reason;
  // Every seq from 1 once, in order: the appends, and the loss records.
  ASSERT_FALSE(seen.empty());
  for (size_t k = 0; k < seen.size(); ++k) ASSERT_EQ(seen[k].seq, k + 1);
  std::map<uint64_t, double> by_seq;
  for (const auto& s : seen) {
    if (s.type == fb::Payload::Gauge) by_seq[s.seq] = s.value;
  }
  EXPECT_EQ(by_seq.size(), size_t{kThreads} * kPer);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPer; ++i) {
      ASSERT_EQ(by_seq.at(got[t][i]), t * 1e6 + i) << "thread " << t << " append " << i;
      if (i > 0) {
        ASSERT_GT(got[t][i], got[t][i - 1]);
      }
    }
  }
  EXPECT_EQ(DroppedIn(seen), dropped);
  ::testing::Test::RecordProperty("dropped", std::to_string(dropped));
}

TEST(JournalRing, EventsTooLargeForASlotAndAppendAllKeepTheOrder) {
  TempDir dir;
  const std::string big_name(1000, 'n');  // > a 256-byte slot
  struct Acked {
    uint64_t seq;
    double value;
    bool big;
  };
  std::vector<Acked> acked;
  std::mutex mu;
  {
    auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    std::vector<std::thread> workers;
    for (int t = 0; t < 3; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < 300; ++i) {
          const double v = t * 1e6 + i * 10;
          const Durability d = i % 7 == 0 ? Durability::kDurable : Durability::kBuffered;
          Result<uint64_t> seq = Status::IOError("unset");
          if (i % 3 == 0) {
            const std::string e = Gauge(big_name, v);
            seq = (*j)->Append(Bytes(e), d);
          } else if (i % 3 == 1) {
            const std::string a = Gauge("a", v), b = Gauge(big_name, v + 1), c = Gauge("c", v + 2);
            const std::span<const uint8_t> all[] = {Bytes(a), Bytes(b), Bytes(c)};
            seq = (*j)->AppendAll(all, d);
          } else {
            const std::string e = Gauge("small", v);
            do {
              seq = (*j)->Append(Bytes(e), d);
            } while (!seq.ok() && d == Durability::kBuffered);
          }
          ASSERT_TRUE(seq.ok()) << seq.status().ToString();
          std::lock_guard lock(mu);
          acked.push_back({*seq, v, i % 3 == 0});
          if (i % 3 == 1) {
            acked.push_back({*seq + 1, v + 1, true});
            acked.push_back({*seq + 2, v + 2, false});
          }
        }
      });
    }
    for (auto& w : workers) w.join();
  }
  const auto seen = ReadAll(dir.path());
  std::map<uint64_t, const Seen*> by_seq;
  for (size_t k = 0; k < seen.size(); ++k) {
    ASSERT_EQ(seen[k].seq, k + 1);
    by_seq[seen[k].seq] = &seen[k];
  }
  for (const auto& a : acked) {
    ASSERT_TRUE(by_seq.count(a.seq)) << a.seq;
    ASSERT_EQ(by_seq[a.seq]->value, a.value) << "seq " << a.seq;
    EXPECT_EQ(by_seq[a.seq]->name, a.big ? big_name : by_seq[a.seq]->name.substr(0, 5));
    if (!a.big) {
      EXPECT_LT(by_seq[a.seq]->name.size(), 6u);
    }
  }
  // Nothing but the appends (and loss records of dropped small ones).
  EXPECT_EQ(seen.size(), acked.size() + (seen.size() - by_seq.size()));
  EXPECT_EQ(seen.size(), acked.size() + (seen.size() - acked.size()));
}

TEST(JournalRing, ScanSyncSnapshotAndCloseSeeEverythingAppended) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE((*j)->Append(Bytes(Gauge("g", i)), Durability::kBuffered).ok());
    }
    EXPECT_EQ((*j)->last_seq(), 100u);
    uint64_t n = 0;
    ASSERT_TRUE((*j)->Scan({}, [&](const Record&) { return ++n, true; }).ok());
    EXPECT_EQ(n, 100u);
    ASSERT_TRUE((*j)->Sync().ok());
    EXPECT_TRUE((*j)->PutSnapshot(100, Bytes(std::string("snap"))).ok());
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE((*j)->Append(Bytes(Gauge("g", i)), Durability::kBuffered).ok());
    }
  }
  // Closed: everything in the database, nothing left in the ring.
  EXPECT_EQ(ReadAll(dir.path()).size(), 105u);
  auto scan = internal::ScanRing(dir / "app/RING", 0);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_TRUE(scan->records.empty());
  EXPECT_EQ(scan->head, 106u);
  auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE((*j)->TakeWarnings().empty());
  EXPECT_EQ((*j)->Append(Bytes(Gauge("g", 0)), Durability::kDurable).value(), 106u);
}

// A ring left by a writer that died: published records, one reserved but
// never published, one torn. Open ingests it with placeholders, no gap.
TEST(JournalRing, OpenIngestsARingLeftBehindWithPlaceholdersForHoles) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE((*j)->Append(Bytes(Gauge("db", i)), {}).ok());
  }
  const std::string stream_dir = dir / "app";
  {
    internal::RingOptions o;
    o.size = 1 << 13;  // 32 slots of 256
    auto ring = internal::Ring::Open(stream_dir, o, 6);
    ASSERT_TRUE(ring.ok());
    for (int s = 6; s <= 10; ++s) {
      ASSERT_EQ((*ring)->Append(Bytes(Gauge("ring", s))).seq, static_cast<uint64_t>(s));
    }
  }
  // Seq 8: back to "free for 8" (reserved, never published); seq 9: torn.
  int fd = ::open((stream_dir + "/RING").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const uint64_t free8 = 16;
  ASSERT_EQ(::pwrite(fd, &free8, 8, 4096 + 8 * 256), 8);
  ASSERT_EQ(::pwrite(fd, "\x55", 1, 4096 + 9 * 256 + 40), 1);
  ::close(fd);

  auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  const auto warnings = (*j)->TakeWarnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("held 3 event(s)"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("2 seq(s)"), std::string::npos) << warnings[0];
  EXPECT_EQ((*j)->last_seq(), 10u);
  EXPECT_EQ((*j)->Append(Bytes(Gauge("new", 11)), Durability::kBuffered).value(), 11u);
  j->reset();
  const auto seen = ReadAll(dir.path());
  ASSERT_EQ(seen.size(), 11u);
  for (size_t k = 0; k < seen.size(); ++k) ASSERT_EQ(seen[k].seq, k + 1);
  for (uint64_t s : {6, 7, 10}) {
    EXPECT_EQ(seen[s - 1].type, fb::Payload::Gauge);
    EXPECT_EQ(seen[s - 1].value, static_cast<double>(s));
  }
  for (uint64_t s : {8, 9}) {
    EXPECT_EQ(seen[s - 1].type, fb::Payload::LogLine) << s;
    EXPECT_NE(seen[s - 1].text.find("lost while being written"), std::string::npos);
  }
}

TEST(JournalRing, WithTheRingOffOpenStillIngestsARingLeftBehind) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    auto ring = internal::Ring::Open(dir / "app", {}, 1);
    ASSERT_TRUE(ring.ok());
    (*ring)->Append(Bytes(Gauge("ring", 1)));
  }
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->last_seq(), 1u);
  EXPECT_EQ((*j)->TakeWarnings().size(), 1u);
  struct stat st {};
  EXPECT_NE(::stat((dir / "app/RING").c_str(), &st), 0);  // not to be read again
  EXPECT_EQ((*j)->Append(Bytes(Gauge("direct", 2)), Durability::kBuffered).value(), 2u);
}

// A ring left behind whose events cannot be written at the next open (the
// disk refuses writes): they are neither lost nor numbered over. Appends
// fail until the disk has room; then the first one ingests the ring and
// takes the seq after it.
TEST(JournalRing, ARingThatCannotBeIngestedAtOpenIsIngestedBeforeAnythingNew) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE((*j)->Append(Bytes(Gauge("db", i)), {}).ok());
  }
  {
    auto ring = internal::Ring::Open(dir / "app", {}, 6);
    ASSERT_TRUE(ring.ok());
    for (int s = 6; s <= 8; ++s) (*ring)->Append(Bytes(Gauge("ring", s)));
  }
  auto fs = std::make_shared<faults::FaultFileSystem>(rocksdb::FileSystem::Default());
  internal::SetBaseFileSystemForTesting(fs);
  fs->Arm(faults::FaultKind::kAppend, fs->count(faults::FaultKind::kAppend) + 1, 0);
  {
    auto j = Journal::Open(dir.path(), "app");
    if (j.ok()) {
      for (int i = 0; i < 3; ++i) {
        EXPECT_FALSE((*j)->Append(Bytes(Gauge("while-full", i)), Durability::kDurable).ok());
      }
      fs->Disarm();
      auto after = (*j)->Append(Bytes(Gauge("after", 9)), Durability::kDurable);
      ASSERT_TRUE(after.ok()) << after.status().ToString();
      EXPECT_EQ(*after, 9u);
    } else {
      ADD_FAILURE() << "open refused: " << j.status().ToString();
    }
  }
  internal::SetBaseFileSystemForTesting(nullptr);
  const auto seen = ReadAll(dir.path());
  ASSERT_EQ(seen.size(), 9u);
  for (size_t k = 0; k < seen.size(); ++k) {
    EXPECT_EQ(seen[k].seq, k + 1);
    EXPECT_EQ(seen[k].type, fb::Payload::Gauge);
    EXPECT_EQ(seen[k].value, static_cast<double>(k + 1)) << "seq " << k + 1;
  }
}

// --- a write-ahead log damaged from outside, and the numbers a jump skips

// The write-ahead log of `stream_dir` holding the most, and where what was
// written to it ends (after its last non-zero byte: a preallocated log ends
// in zeros).
std::pair<std::string, uint64_t> FullestLog(const std::string& stream_dir) {
  std::pair<std::string, uint64_t> best;
  for (const auto& e : std::filesystem::directory_iterator(stream_dir)) {
    if (e.path().extension() != ".log") continue;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t last = bytes.find_last_not_of('\0');
    const uint64_t end = last == std::string::npos ? 0 : last + 1;
    if (end > best.second) best = {e.path().string(), end};
  }
  return best;
}

// 8 bytes of junk in the middle of what the fullest log holds.
void DamageLogMiddle(const std::string& stream_dir) {
  const auto [log, end] = FullestLog(stream_dir);
  ASSERT_GT(end, 0u) << "no log with records in " << stream_dir;
  std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << log;
  f.seekp(static_cast<std::streamoff>(end / 2));
  f.write("\xff\xff\xff\xff\xff\xff\xff\xff", 8);
  ASSERT_TRUE(f) << log;
}

// The seqs of `seqs` that the stream's high-water mark records as never
// given out (high_water.h): each one would read as no loss if it went missing.
std::vector<uint64_t> MarkedUnused(const std::string& stream_dir,
                                   const std::vector<uint64_t>& seqs) {
  std::vector<uint64_t> out;
  auto mark = internal::ReadHighWater(stream_dir);
  EXPECT_TRUE(mark.ok()) << mark.status().ToString();
  if (!mark.ok()) return out;
  EXPECT_FALSE(mark->unused.empty()) << "the damaged open recorded no unused range";
  for (uint64_t seq : seqs) {
    for (const auto& r : mark->unused) {
      if (r.first <= seq && seq <= r.last) out.push_back(seq);
    }
  }
  return out;
}

// A dead writer's ring is ingested under its own seqs, which lie in the
// range the damaged open found never given out (it jumps above the mark):
// they leave that range, or losing them later would read as no loss.
TEST(JournalRing, ARingIngestedAfterLogDamageIsNotRecordedAsNeverGivenOut) {
  TempDir dir;
  const std::string stream_dir = dir / "app";
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    for (int i = 1; i <= 300; ++i) {
      ASSERT_TRUE((*j)->Append(Bytes(Gauge("db", i)), Durability::kDurable).ok());
    }
  }
  std::vector<uint64_t> ring_seqs;
  {
    internal::RingOptions o;
    o.size = 1 << 16;
    auto ring = internal::Ring::Open(stream_dir, o, 301);
    ASSERT_TRUE(ring.ok());
    for (int s = 301; s <= 350; ++s) {
      ring_seqs.push_back((*ring)->Append(Bytes(Gauge("ring", s))).seq);
      ASSERT_EQ(ring_seqs.back(), static_cast<uint64_t>(s));
    }
  }
  DamageLogMiddle(stream_dir);

  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  const auto warnings = (*j)->TakeWarnings();
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("damaged"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("held 50 event(s)"), std::string::npos) << warnings[1];
  const uint64_t next = (*j)->Append(Bytes(Gauge("new", 0)), Durability::kDurable).value();
  EXPECT_GT(next, 350u);
  j->reset();
  EXPECT_EQ(MarkedUnused(stream_dir, ring_seqs), std::vector<uint64_t>{});
  const auto seen = ReadAll(dir.path());
  std::vector<uint64_t> present;
  for (const auto& s : seen) {
    if (s.seq >= 301 && s.seq <= 350 && s.type == fb::Payload::Gauge) present.push_back(s.seq);
  }
  EXPECT_EQ(present, ring_seqs);
}

// The scenario of the next test, in `dir`: what was acknowledged before
// the damage, the seqs given out after it, and the writer's warnings.
void LiveRingDamage(const TempDir& dir, std::vector<uint64_t>* acked_out,
                    std::vector<uint64_t>* after_out, std::vector<std::string>* warnings) {
  const std::string stream_dir = dir / "app";
  auto fs = std::make_shared<faults::FaultFileSystem>(rocksdb::FileSystem::Default());
  internal::SetBaseFileSystemForTesting(fs);
  std::vector<uint64_t>& acked = *acked_out;
  std::vector<uint64_t>& after_damage = *after_out;
  {
    auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    for (int i = 0; i < 300; ++i) {
      acked.push_back((*j)->Append(Bytes(Gauge("before", i)), Durability::kDurable).value());
    }
    // A full disk: the drain's write fails, and so does every reopen.
    fs->Arm(faults::FaultKind::kAppend, fs->count(faults::FaultKind::kAppend) + 1, 0);
    for (int i = 0; i < 10; ++i) {
      auto seq = (*j)->Append(Bytes(Gauge("buffered", i)), Durability::kBuffered);
      ASSERT_TRUE(seq.ok()) << seq.status().ToString();
      after_damage.push_back(*seq);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (fs->injected() < 3 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GE(fs->injected(), 3u) << "the drain never tried to write";
    DamageLogMiddle(stream_dir);
    fs->Disarm();
    // A reopen that began while the disk was full may still fail the first
    // durable append (not acknowledged: its seq is not counted here).
    for (int i = 0; i < 5; ++i) {
      auto seq = (*j)->Append(Bytes(Gauge("durable", i)), Durability::kDurable);
      for (int tries = 0; !seq.ok() && tries < 100; ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        seq = (*j)->Append(Bytes(Gauge("durable", i)), Durability::kDurable);
      }
      ASSERT_TRUE(seq.ok()) << seq.status().ToString();
      after_damage.push_back(*seq);
    }
    *warnings = (*j)->TakeWarnings();
  }
  internal::SetBaseFileSystemForTesting(nullptr);
}

// A live ring-mode writer whose drain failed, its log then damaged from
// outside before the reopen: the ring keeps its numbering (it knows what it
// gave out), and none of what it gives out is recorded as never given out.
TEST(JournalRing, ALiveRingReopenedAfterLogDamageKeepsItsSeqsCountable) {
  // The damage must be read by the writer's own reopen; now and then (1 run
  // in 6 under ASan here) the drain reopened before it was made, and the run
  // says nothing. Up to three runs, each in a fresh directory.
  std::optional<TempDir> dir;
  std::vector<uint64_t> acked, after_damage;
  std::vector<std::string> warnings;
  for (int attempt = 0; attempt < 3 && warnings.empty(); ++attempt) {
    dir.emplace();
    acked.clear();
    after_damage.clear();
    LiveRingDamage(*dir, &acked, &after_damage, &warnings);
    if (::testing::Test::HasFatalFailure()) return;
  }
  const std::string stream_dir = *dir / "app";
  ASSERT_FALSE(warnings.empty()) << "3 runs, and no reopen read the damage";
  EXPECT_NE(warnings[0].find("damaged"), std::string::npos) << warnings[0];
  for (size_t k = 1; k < after_damage.size(); ++k) {
    EXPECT_GT(after_damage[k], after_damage[k - 1]);  // the ring's numbering, no jump
    EXPECT_LT(after_damage[k], after_damage[k - 1] + 10);
  }
  EXPECT_EQ(after_damage.front(), acked.back() + 1);
  EXPECT_EQ(MarkedUnused(stream_dir, after_damage), std::vector<uint64_t>{});
  std::map<uint64_t, fb::Payload> by_seq;
  for (const auto& s : ReadAll(dir->path())) by_seq[s.seq] = s.type;
  for (uint64_t seq : after_damage) {
    EXPECT_EQ(by_seq.count(seq), 1u) << "seq " << seq << " acknowledged, missing";
  }
}

// A writer killed while it built its ring (a temporary renamed over RING)
// leaves the temporary, as large as a ring. The next writer removes it, or
// a process crashing at every start fills the disk with them; a symlink
// planted under such a name is removed, its target left alone.
TEST(JournalRing, OpenRemovesRingTemporariesAKilledWriterLeft) {
  TempDir dir;
  const std::string stream_dir = dir / "app";
  { ASSERT_TRUE(Journal::Open(dir.path(), "app").ok()); }
  const std::string left = stream_dir + "/RING.tmp.Ab12Cd";
  {
    std::ofstream out(left, std::ios::binary);
    out << std::string(1 << 20, '\0');
  }
  const std::string target = dir / "not-the-journals";
  { std::ofstream(target) << "keep"; }
  const std::string planted = stream_dir + "/RING.tmp.link";
  ASSERT_EQ(::symlink(target.c_str(), planted.c_str()), 0);

  auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(left));
  EXPECT_FALSE(std::filesystem::is_symlink(planted));
  EXPECT_TRUE(std::filesystem::exists(stream_dir + "/RING"));
  EXPECT_EQ(testing::ReadFile(target), "keep");
  std::vector<std::string> temporaries;
  for (const auto& e : std::filesystem::directory_iterator(stream_dir)) {
    if (e.path().filename().string().rfind("RING.tmp.", 0) == 0) {
      temporaries.push_back(e.path().string());
    }
  }
  EXPECT_EQ(temporaries, std::vector<std::string>{});
  EXPECT_TRUE((*j)->TakeWarnings().empty());
}

TEST(JournalRing, FallsBackToTheDirectPathWhenTheRingCannotBeCreated) {
  TempDir dir;
  ASSERT_EQ(::mkdir((dir / "app").c_str(), 0700), 0);
  // RING a symbolic link: refused like a file it cannot allocate.
  ASSERT_EQ(::symlink("/dev/null", (dir / "app/RING").c_str()), 0);
  auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 16));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  const auto warnings = (*j)->TakeWarnings();
  ASSERT_FALSE(warnings.empty());
  EXPECT_NE(warnings.back().find("direct path"), std::string::npos) << warnings.back();
  EXPECT_EQ((*j)->Append(Bytes(Gauge("g", 1)), Durability::kBuffered).value(), 1u);
  EXPECT_EQ((*j)->Append(Bytes(Gauge("g", 2)), Durability::kDurable).value(), 2u);
}

TEST(JournalRing, AFullRingRefusesBufferedAppendsAndJournalsTheLoss) {
  TempDir dir;
  uint64_t dropped = 0, acked = 0;
  {
    auto j = Journal::Open(dir.path(), "app", RingOptions(1 << 13));  // 32 slots
    ASSERT_TRUE(j.ok());
    std::atomic<uint64_t> ok{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t) {
      workers.emplace_back([&] {
        const std::string e = Gauge("g", 1);
        for (int i = 0; i < 20000; ++i) {
          if ((*j)->Append(Bytes(e), Durability::kBuffered).ok()) ok.fetch_add(1);
        }
      });
    }
    for (auto& w : workers) w.join();
    dropped = (*j)->dropped_appends();
    acked = ok.load();
    EXPECT_EQ(acked + dropped, 80000u);
  }
  EXPECT_GT(dropped, 0u);  // 4 threads in a tight loop outrun the drain of 32 slots
  const auto seen = ReadAll(dir.path());
  for (size_t k = 0; k < seen.size(); ++k) ASSERT_EQ(seen[k].seq, k + 1);
  EXPECT_EQ(DroppedIn(seen), dropped);
  EXPECT_EQ(seen.size() - acked,
            static_cast<size_t>(std::count_if(seen.begin(), seen.end(), [](const Seen& s) {
              return s.type == fb::Payload::LogLine;
            })));
}

// The disk fills under the drain (every append to a file fails, as with
// ENOSPC): buffered appends never block (the ring takes them, then refuses
// them once full), durable ones fail with the error instead of hanging, and
// once there is room again everything acknowledged reaches the journal.
// With `lanes`, buffered appends go into that many lanes (acknowledged with
// seq 0: checked by their values).
void ExpectAFullDiskBlocksNoAppender(size_t lanes) {
  TempDir dir;
  auto fs = std::make_shared<faults::FaultFileSystem>(rocksdb::FileSystem::Default());
  internal::SetBaseFileSystemForTesting(fs);
  std::vector<uint64_t> acked;
  std::vector<double> acked_in_lanes;
  uint64_t dropped = 0;
  {
    JournalOptions o = RingOptions(1 << 13);  // 32 slots
    o.ring_lanes = lanes;
    auto j = Journal::Open(dir.path(), "app", o);
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    for (int i = 0; i < 10; ++i) {
      acked.push_back((*j)->Append(Bytes(Gauge("before", i)), Durability::kDurable).value());
    }
    fs->Arm(faults::FaultKind::kAppend, fs->count(faults::FaultKind::kAppend) + 1, 0);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) {
      auto seq = (*j)->Append(Bytes(Gauge("full", i)), Durability::kBuffered);
      if (seq.ok() && *seq == 0) {
        acked_in_lanes.push_back(i);
      } else if (seq.ok()) {
        acked.push_back(*seq);
      }
    }
    if (lanes > 0) {
      EXPECT_FALSE(acked_in_lanes.empty());
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
    dropped = (*j)->dropped_appends();
    EXPECT_GT(dropped, 0u);  // 32 slots for 200 appends, none drained
    auto durable = (*j)->Append(Bytes(Gauge("durable", 0)), Durability::kDurable);
    EXPECT_FALSE(durable.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    fs->Disarm();
    // Room again: the drain's retry writes the ring; a durable append works.
    auto after = (*j)->Append(Bytes(Gauge("after", 0)), Durability::kDurable);
    ASSERT_TRUE(after.ok()) << after.status().ToString();
    acked.push_back(*after);
  }
  internal::SetBaseFileSystemForTesting(nullptr);
  const auto seen = ReadAll(dir.path());
  for (size_t k = 0; k < seen.size(); ++k) ASSERT_EQ(seen[k].seq, k + 1);
  std::map<uint64_t, const Seen*> by_seq;
  for (const auto& s : seen) by_seq[s.seq] = &s;
  for (uint64_t seq : acked) {
    ASSERT_TRUE(by_seq.count(seq)) << "acknowledged seq " << seq << " lost";
    EXPECT_EQ(by_seq[seq]->type, fb::Payload::Gauge);
  }
  for (double value : acked_in_lanes) {
    EXPECT_EQ(std::count_if(seen.begin(), seen.end(),
                            [&](const Seen& s) { return s.name == "full" && s.value == value; }),
              1)
        << "acknowledged buffered append " << value;
  }
  EXPECT_EQ(DroppedIn(seen), dropped);
  ::testing::Test::RecordProperty("dropped", std::to_string(dropped));
}

TEST(JournalRing, AFullDiskNeverBlocksAnAppenderAndLosesNothingAcknowledged) {
  ExpectAFullDiskBlocksNoAppender(0);
}

TEST(JournalRing, AFullDiskNeverBlocksAnAppenderWithLanesAndLosesNothingAcknowledged) {
  ExpectAFullDiskBlocksNoAppender(2);
}

// --- kill -9 of a real writer process in ring mode

int KillCount() {
  const char* n = std::getenv("BLACKBOX_JOURNAL_RING_KILLS");
  return n ? std::atoi(n) : 50;
}

// `lanes`: the writer's ring_lanes (0: none). A buffered append into a lane
// is acknowledged with seq 0: it is checked by its value.
void KillNineRounds(size_t lanes) {
  std::mt19937 rng(std::random_device{}());
  uint64_t placeholders = 0, checked = 0, ingesting_opens = 0, loss_records = 0;
  for (int round = 0; round < KillCount(); ++round) {
    TempDir dir;
    std::vector<std::pair<uint64_t, double>> acked;  // seq (0: numbered later), value
    {
      // The acknowledgements go to a file, not a pipe: nothing slows the
      // writer down (a reader of a pipe would, and the writer would spend
      // its time blocked in write(2) rather than in the journal).
      const std::string ack_path = dir / "ACKS";
      int ack_fd = ::open(ack_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      ASSERT_GE(ack_fd, 0);
      // 3 threads: one appending buffered and durable (every third), two
      // buffered at full speed; a 64 KB ring (256 slots).
      const std::vector<std::string> argv = {
          JOURNAL_WRITER_CHILD, dir.path(), "app", "3", "0", "split", std::to_string(1 << 16)};
      testing::RunOptions run;
      run.extra_env.push_back(fmt::format("BLACKBOX_TEST_RING_LANES={}", lanes));
      pid_t pid = testing::StartProcess(argv, run, STDIN_FILENO, ack_fd, STDERR_FILENO);
      ::close(ack_fd);
      // Kill at a random moment 2 to 60 ms after the first acknowledgement.
      struct stat st {};
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (::stat(ack_path.c_str(), &st) == 0 && st.st_size == 0) {
        int early = 0;
        ASSERT_EQ(::waitpid(pid, &early, WNOHANG), 0) << "the writer exited, status " << early;
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer did not start";
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      std::this_thread::sleep_for(
          std::chrono::microseconds(std::uniform_int_distribution<int>(2000, 60000)(rng)));
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
      FILE* out = std::fopen(ack_path.c_str(), "r");
      ASSERT_NE(out, nullptr);
      char buf[128];
      while (std::fgets(buf, sizeof buf, out) != nullptr) {
        std::string line(buf);
        if (line.empty() || line.back() != '\n') break;  // cut by the kill
        std::istringstream in(line);
        uint64_t seq;
        char kind;
        double value;
        in >> seq >> kind >> value;
        ASSERT_FALSE(in.fail()) << line;
        if (lanes == 0 || kind == 'D') {
          ASSERT_NE(seq, 0u) << line;
        }
        acked.emplace_back(seq, value);
      }
      std::fclose(out);
    }
    ASSERT_FALSE(acked.empty()) << "round " << round;
    // The next writer ingests the ring.
    {
      JournalOptions o = RingOptions(1 << 16);
      o.ring_lanes = lanes;
      auto j = Journal::Open(dir.path(), "app", o);
      ASSERT_TRUE(j.ok()) << j.status().ToString();
      for (const auto& w : (*j)->TakeWarnings()) {
        const bool ingested = w.find("ingested under their seqs") != std::string::npos ||
                              w.find("ingested in the order of their appends") != std::string::npos;
        ASSERT_TRUE(ingested || (lanes > 0 && w.find("torn slot(s)") != std::string::npos)) << w;
        ingesting_opens += ingested;
      }
    }
    std::vector<BadRecord> problems;
    const auto seen = ReadAll(dir.path(), &problems);
    EXPECT_TRUE(problems.empty()) << problems.front().reason;
    std::map<uint64_t, double> stored;
    std::map<double, uint64_t> seq_of_value;
    for (size_t k = 0; k < seen.size(); ++k) {
      ASSERT_EQ(seen[k].seq, k + 1) << "round " << round << ": a gap";
      if (seen[k].type == fb::Payload::Gauge) {
        stored[seen[k].seq] = seen[k].value;
        ASSERT_TRUE(seq_of_value.emplace(seen[k].value, seen[k].seq).second)
            << "round " << round << ": value " << seen[k].value << " twice";
      } else {
        // A placeholder, or the count of buffered appends the full ring
        // refused (never acknowledged).
        ASSERT_EQ(seen[k].type, fb::Payload::LogLine);
        if (seen[k].text.find("lost while being written") != std::string::npos) {
          ++placeholders;
        } else {
          ASSERT_NE(seen[k].text.find("dropped: the ring was full"), std::string::npos)
              << seen[k].text;
          ++loss_records;
        }
      }
    }
    for (const auto& [seq, value] : acked) {
      if (seq == 0) {
        ASSERT_TRUE(seq_of_value.count(value))
            << "round " << round << ": acknowledged value " << value << " lost";
        continue;
      }
      auto it = stored.find(seq);
      ASSERT_NE(it, stored.end()) << "round " << round << ": acknowledged seq " << seq << " lost";
      ASSERT_EQ(it->second, value) << "round " << round << " seq " << seq;
    }
    // Each thread's events in its order.
    std::map<int, double> last_of_thread;
    for (const auto& [seq, value] : stored) {
      const int t = static_cast<int>(value / 1e6);
      if (last_of_thread.count(t)) {
        ASSERT_GT(value, last_of_thread[t]);
      }
      last_of_thread[t] = value;
    }
    checked += acked.size();
  }
  ::testing::Test::RecordProperty("acknowledged_checked", std::to_string(checked));
  ::testing::Test::RecordProperty("placeholders", std::to_string(placeholders));
  ::testing::Test::RecordProperty("opens_that_ingested", std::to_string(ingesting_opens));
  ::testing::Test::RecordProperty("records_of_drops", std::to_string(loss_records));
  std::printf(
      "lanes: %zu, kills: %d, acknowledged appends checked: %llu, opens that ingested a ring: "
      "%llu, placeholders: %llu, records of drops: %llu\n",
      lanes, KillCount(), static_cast<unsigned long long>(checked),
      static_cast<unsigned long long>(ingesting_opens),
      static_cast<unsigned long long>(placeholders), static_cast<unsigned long long>(loss_records));
}

TEST(JournalRingKill, EveryAcknowledgedAppendSurvivesKillNine) { KillNineRounds(0); }

// The same with 4 ring lanes: buffered appends numbered when moved, and a
// kill anywhere in the move, the write or the two releases.
TEST(JournalRingKill, EveryAcknowledgedAppendSurvivesKillNineWithLanes) { KillNineRounds(4); }

}  // namespace
}  // namespace blackbox
