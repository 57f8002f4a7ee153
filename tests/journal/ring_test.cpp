// The buffered-event ring (journal/src/ring.h): in one process, across
// threads, and across a kill -9 of a real writer process.
#include "ring.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ring_payload.h"
#include "test_util.h"

namespace blackbox::internal {
namespace {

using testing::ParseRingPayload;
using testing::RingPayload;
using testing::TempDir;

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string Text(std::span<const uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

std::unique_ptr<Ring> OpenRing(const TempDir& dir, size_t size, uint64_t next_seq = 1) {
  RingOptions o;
  o.size = size;
  auto r = Ring::Open(dir.path(), o, next_seq);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

// Drains everything published; returns the payloads by seq.
std::vector<RingView> DrainAll(Ring& ring) {
  std::vector<RingView> views;
  ring.Peek(ring.slot_count(), &views);
  return views;
}

TEST(Ring, RoundTripAndScan) {
  TempDir dir;
  auto ring = OpenRing(dir, 1 << 16, 42);
  ASSERT_TRUE(ring);
  RingAppend a = ring->Append(Bytes("first"), 7);
  RingAppend b = ring->Append(Bytes(""));
  ASSERT_EQ(a.code, RingCode::kOk);
  EXPECT_EQ(a.seq, 42u);
  EXPECT_EQ(b.seq, 43u);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "RING").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 4096 + (1 << 16));

  auto views = DrainAll(*ring);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].seq, 42u);
  EXPECT_EQ(views[0].flags, 7u);
  EXPECT_TRUE(views[0].intact);
  EXPECT_EQ(Text(views[0].payload), "first");
  EXPECT_EQ(Text(views[1].payload), "");

  auto scan = ScanRing(dir / "RING", 0);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  ASSERT_EQ(scan->records.size(), 2u);
  EXPECT_EQ(scan->records[0].seq, 42u);
  EXPECT_EQ(scan->records[0].payload, "first");
  EXPECT_EQ(scan->records[0].flags, 7u);
  EXPECT_EQ(scan->complete_through, 43u);
  EXPECT_EQ(scan->holes + scan->torn, 0u);
  // after_seq skips what the database has already.
  auto later = ScanRing(dir / "RING", 42);
  ASSERT_TRUE(later.ok());
  ASSERT_EQ(later->records.size(), 1u);
  EXPECT_EQ(later->records[0].seq, 43u);

  ring->Release(43);
  EXPECT_EQ(ring->head(), 44u);
  auto after = ScanRing(dir / "RING", 0);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->records.empty());
}

// drained_too (what readers ask for): a drained slot still holding its
// record is returned; once a later lap takes a slot, the seqs up to it are
// not, and available_from says where the records start.
TEST(Ring, ScanReturnsDrainedRecordsUntilTheirSlotsAreTaken) {
  TempDir dir;
  auto ring = OpenRing(dir, 4096, 10);  // 16 slots, seqs 10..25 on the first lap
  ASSERT_TRUE(ring);
  for (int i = 0; i < 6; ++i)
    ASSERT_EQ(ring->Append(Bytes(fmt::format("e{}", i))).code, RingCode::kOk);
  ring->Release(13);  // 10..13 drained, 14 and 15 not

  auto plain = ScanRing(dir / "RING", 0);
  ASSERT_TRUE(plain.ok());
  ASSERT_EQ(plain->records.size(), 2u);
  EXPECT_EQ(plain->records[0].seq, 14u);
  EXPECT_EQ(plain->available_from, 14u);

  auto all = ScanRing(dir / "RING", 0, /*drained_too=*/true);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->records.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(all->records[i].seq, 10 + i);
    EXPECT_EQ(all->records[i].payload, fmt::format("e{}", i));
  }
  EXPECT_EQ(all->available_from, 10u);
  EXPECT_EQ(all->complete_through, 15u);
  EXPECT_EQ(all->holes + all->torn, 0u);
  auto after = ScanRing(dir / "RING", 11, true);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->records.size(), 4u);
  EXPECT_EQ(after->records[0].seq, 12u);

  // Seqs 16..27: 26 and 27 take the slots of 10 and 11.
  for (int i = 6; i < 18; ++i) {
    ASSERT_EQ(ring->Append(Bytes(fmt::format("e{}", i))).code, RingCode::kOk);
  }
  auto wrapped = ScanRing(dir / "RING", 0, true);
  ASSERT_TRUE(wrapped.ok());
  EXPECT_EQ(wrapped->available_from, 12u);
  ASSERT_EQ(wrapped->records.size(), 16u);
  EXPECT_EQ(wrapped->records.front().seq, 12u);
  EXPECT_EQ(wrapped->records.back().seq, 27u);
  EXPECT_EQ(wrapped->complete_through, 27u);

  // A drained slot whose record was damaged cuts off what came before it.
  ring->Release(20);
  ring.reset();
  {
    std::fstream f(dir / "RING", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + (14 & 15) * 256 + 32);  // the first byte of seq 14's payload
    f.put('X');
  }
  auto cut = ScanRing(dir / "RING", 0, true);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->available_from, 15u);
  ASSERT_FALSE(cut->records.empty());
  EXPECT_EQ(cut->records.front().seq, 15u);
  EXPECT_EQ(cut->records.back().seq, 27u);
}

TEST(Ring, WrapsAroundOverManyLapsWithADrain) {
  TempDir dir;
  auto ring = OpenRing(dir, 4096);  // 16 slots
  ASSERT_TRUE(ring);
  uint64_t next = 1;
  std::vector<RingView> views;
  for (int lap = 0; lap < 100; ++lap) {
    for (int i = 0; i < 11; ++i) {
      RingAppend a = ring->Append(Bytes(RingPayload(0, next)));
      ASSERT_EQ(a.code, RingCode::kOk);
      ASSERT_EQ(a.seq, next++);
    }
    ring->Peek(100, &views);
    ASSERT_EQ(views.size(), 11u);
    for (const auto& v : views) {
      auto id = ParseRingPayload(Text(v.payload));
      ASSERT_TRUE(id && v.intact);
      EXPECT_EQ(id->index, v.seq);
    }
    ring->Release(views.back().seq);
  }
  EXPECT_EQ(ring->dropped(), 0u);
  EXPECT_EQ(ring->head(), next);
}

TEST(Ring, FullRingDropsAndCountsWithoutBlocking) {
  TempDir dir;
  auto ring = OpenRing(dir, 4096);  // 16 slots
  ASSERT_TRUE(ring);
  for (uint64_t i = 1; i <= 16; ++i) ASSERT_EQ(ring->Append(Bytes("x")).seq, i);
  EXPECT_EQ(ring->Append(Bytes("y")).code, RingCode::kFull);
  EXPECT_EQ(ring->Append(Bytes("y")).code, RingCode::kFull);
  EXPECT_EQ(ring->dropped(), 2u);
  EXPECT_EQ(ring->tail(), 17u);  // a drop takes no number
  std::vector<RingView> views;
  ring->Peek(4, &views);
  ring->Release(views.back().seq);
  EXPECT_EQ(ring->Append(Bytes("z")).seq, 17u);
}

TEST(Ring, RefusesAPayloadLongerThanASlot) {
  TempDir dir;
  auto ring = OpenRing(dir, 4096);
  ASSERT_TRUE(ring);
  EXPECT_EQ(ring->payload_max(), 256u - 32);
  EXPECT_EQ(ring->Append(Bytes(std::string(ring->payload_max(), 'a'))).code, RingCode::kOk);
  EXPECT_EQ(ring->Append(Bytes(std::string(ring->payload_max() + 1, 'a'))).code,
            RingCode::kTooLarge);
  EXPECT_EQ(ring->tail(), 2u);
}

TEST(Ring, ResetRenumbersAndReopenReusesTheFile) {
  TempDir dir;
  {
    auto ring = OpenRing(dir, 4096);
    ASSERT_TRUE(ring);
    ring->Append(Bytes("old"));
  }
  auto ring = OpenRing(dir, 4096, 1000);
  ASSERT_TRUE(ring);
  EXPECT_EQ(ring->Append(Bytes("new")).seq, 1000u);
  auto scan = ScanRing(dir / "RING", 0);
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->records.size(), 1u);
  EXPECT_EQ(scan->records[0].payload, "new");
  // Other sizes: a fresh file replaces it.
  auto bigger = OpenRing(dir, 8192, 5);
  ASSERT_TRUE(bigger);
  EXPECT_EQ(bigger->slot_count(), 32u);
  EXPECT_EQ(bigger->Append(Bytes("n")).seq, 5u);
}

TEST(Ring, EightThreadsAndADrainSeeEverySeqOnceInOrder) {
  TempDir dir;
  auto ring = OpenRing(dir, 1 << 14);  // 64 slots: many laps, some drops
  ASSERT_TRUE(ring);
  constexpr int kThreads = 8;
  constexpr uint64_t kPer = 20000;
  std::atomic<int> running{kThreads};
  std::vector<std::vector<uint64_t>> got(kThreads);  // seqs each thread was given
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPer; ++i) {
        const std::string p = RingPayload(t, i);
        RingAppend a;
        while ((a = ring->Append(Bytes(p))).code == RingCode::kFull) std::this_thread::yield();
        ASSERT_EQ(a.code, RingCode::kOk);
        got[t].push_back(a.seq);
      }
      running.fetch_sub(1);
    });
  }
  std::vector<std::pair<uint64_t, std::string>> drained;
  std::vector<RingView> views;
  while (running.load() > 0 || ring->head() < ring->tail()) {
    if (ring->Peek(32, &views) == 0) continue;
    for (const auto& v : views) {
      ASSERT_TRUE(v.intact);
      drained.emplace_back(v.seq, Text(v.payload));
    }
    ring->Release(views.back().seq);
  }
  for (auto& w : workers) w.join();
  ASSERT_EQ(drained.size(), kThreads * kPer);
  std::vector<uint64_t> next_index(kThreads, 0);
  for (size_t k = 0; k < drained.size(); ++k) {
    ASSERT_EQ(drained[k].first, k + 1);
    auto id = ParseRingPayload(drained[k].second);
    ASSERT_TRUE(id) << "payload of seq " << drained[k].first;
    ASSERT_LT(id->thread, static_cast<uint32_t>(kThreads));
    // Each thread's payloads come in its own order, under the seq it was given.
    ASSERT_EQ(id->index, next_index[id->thread]);
    ASSERT_EQ(got[id->thread][id->index], drained[k].first);
    ++next_index[id->thread];
  }
}

// The offset of slot `seq`'s payload in a ring of 256-byte slots.
off_t PayloadOffset(const Ring& ring, uint64_t seq) {
  return static_cast<off_t>(4096 + (seq % ring.slot_count()) * 256 + 32);
}

void WriteAt(const std::string& path, off_t offset, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

TEST(RingScan, CountsATornSlotAndSkipsIt) {
  TempDir dir;
  auto ring = OpenRing(dir, 4096);
  ASSERT_TRUE(ring);
  for (int i = 0; i < 5; ++i) ring->Append(Bytes(RingPayload(0, i)));
  WriteAt(dir / "RING", PayloadOffset(*ring, 3) + 10, "\x55");
  auto scan = ScanRing(dir / "RING", 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->torn, 1u);
  EXPECT_EQ(scan->holes, 0u);
  ASSERT_EQ(scan->records.size(), 4u);
  for (const auto& r : scan->records) EXPECT_NE(r.seq, 3u);
  EXPECT_EQ(scan->complete_through, 2u);
  // The drain sees it too, as not intact.
  auto views = DrainAll(*ring);
  ASSERT_EQ(views.size(), 5u);
  EXPECT_FALSE(views[2].intact);
  EXPECT_TRUE(views[3].intact);
}

TEST(RingScan, CountsAReservedButUnpublishedSlotAsAHole) {
  TempDir dir;
  auto ring = OpenRing(dir, 4096);
  ASSERT_TRUE(ring);
  for (int i = 0; i < 3; ++i) ring->Append(Bytes("p"));
  // Slot of seq 2 back to "free for 2": reserved, never published.
  const uint64_t turn = 4;
  WriteAt(dir / "RING", static_cast<off_t>(4096 + 2 * 256),
          std::string(reinterpret_cast<const char*>(&turn), 8));
  auto scan = ScanRing(dir / "RING", 0);
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->holes, 1u);
  ASSERT_EQ(scan->records.size(), 2u);
  EXPECT_EQ(scan->records[1].seq, 3u);
  EXPECT_EQ(scan->complete_through, 1u);
}

TEST(RingScan, RefusesHostileFilesWithAnError) {
  TempDir dir;
  {
    auto ring = OpenRing(dir, 4096);
    ASSERT_TRUE(ring);
    ring->Append(Bytes("p"));
  }
  const std::string good = dir / "RING";
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto variant = [&](const std::string& name, const std::string& content) {
    const std::string path = dir / name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
    return path;
  };
  auto patched = [&](size_t offset, uint64_t value, size_t width) {
    std::string b = bytes;
    std::memcpy(b.data() + offset, &value, width);
    return b;
  };
  struct Case {
    std::string name, content;
  };
  std::vector<Case> cases = {
      {"empty", ""},
      {"short", bytes.substr(0, 100)},
      {"truncated", bytes.substr(0, bytes.size() - 1)},
      {"longer", bytes + "x"},
      {"magic", patched(0, 0, 1)},
      {"version", patched(8, 9, 4)},
      {"slot_size", patched(12, 1u << 20, 4)},
      {"slot_size_odd", patched(12, 200, 4)},
      {"slot_count", patched(16, 1u << 30, 8)},
      {"slot_count_zero", patched(16, 0, 8)},
      {"head_past_tail", patched(128, 1000, 8)},
  };
  for (const auto& c : cases) {
    auto scan = ScanRing(variant(c.name, c.content), 0);
    EXPECT_FALSE(scan.ok()) << c.name;
    if (!scan.ok()) {
      EXPECT_NE(scan.status().message(), "") << c.name;
    }
  }
  // A tail far ahead of head reads as the last slot_count seqs, never
  // published: holes, no read out of bounds.
  auto far = ScanRing(variant("tail_far", patched(64, 1000, 8)), 0);
  ASSERT_TRUE(far.ok()) << far.status().ToString();
  EXPECT_EQ(far->holes, 16u);
  EXPECT_TRUE(far->records.empty());
  // A symlink, another mode: refused by the reader and by the writer.
  ASSERT_EQ(::symlink(good.c_str(), (dir / "link").c_str()), 0);
  EXPECT_FALSE(ScanRing(dir / "link", 0).ok());
  TempDir other;
  ASSERT_EQ(::symlink(good.c_str(), (other / "RING").c_str()), 0);
  EXPECT_FALSE(Ring::Open(other.path(), {}, 1).ok());
  ASSERT_EQ(::chmod(good.c_str(), 0644), 0);
  EXPECT_FALSE(ScanRing(good, 0).ok());
  EXPECT_FALSE(Ring::Open(dir.path(), {}, 1).ok());
  EXPECT_EQ(ScanRing(dir / "missing", 0).status().code(), Status::Code::kNotFound);
}

// A reader does not own the file: whoever does may truncate it while it is
// being read (a store or load of a mapping past the end raises SIGBUS).
// ScanRing copies with pread, so a file that shrinks under it gives an error
// or a shorter scan, never a signal.
TEST(RingScan, AFileTruncatedWhileBeingReadGivesAnErrorNotASignal) {
  TempDir dir;
  constexpr size_t kSize = 1 << 20;  // 4096 slots, every one published
  {
    auto ring = OpenRing(dir, kSize);
    ASSERT_TRUE(ring);
    for (uint64_t i = 0; i < ring->slot_count(); ++i) {
      ASSERT_EQ(ring->Append(Bytes(RingPayload(0, i))).code, RingCode::kOk);
    }
  }
  const std::string path = dir / "RING";
  const off_t full = static_cast<off_t>(4096 + kSize);
  // Cut to half before the scan: refused.
  ASSERT_EQ(::truncate(path.c_str(), full / 2), 0);
  EXPECT_FALSE(ScanRing(path, 0).ok());
  ASSERT_EQ(::truncate(path.c_str(), full), 0);  // the slots past half read as zeros: holes

  // Cut to half and restored again and again while scans run.
  std::atomic<bool> stop{false};
  std::thread cutter([&] {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    while (!stop.load()) {
      ASSERT_EQ(::ftruncate(fd, full / 2), 0);
      std::this_thread::yield();
      ASSERT_EQ(::ftruncate(fd, full), 0);
      std::this_thread::yield();
    }
    ::close(fd);
  });
  int ok = 0, failed = 0;
  for (int k = 0; k < 2000; ++k) {
    auto scan = ScanRing(path, 0);
    if (!scan.ok()) {
      ++failed;
      EXPECT_NE(scan.status().message(), "");
      continue;
    }
    ++ok;
    EXPECT_LE(scan->records.size(), 4096u);
    for (const auto& r : scan->records) ASSERT_TRUE(ParseRingPayload(r.payload));
  }
  stop.store(true);
  cutter.join();
  RecordProperty("scans_ok", std::to_string(ok));
  RecordProperty("scans_refused", std::to_string(failed));
}

TEST(Ring, OpenRefusesSizesThatAreNotPowersOfTwo) {
  TempDir dir;
  RingOptions o;
  o.slot_size = 200;
  EXPECT_FALSE(Ring::Open(dir.path(), o, 1).ok());
  o = {};
  o.size = 3 << 20;
  EXPECT_FALSE(Ring::Open(dir.path(), o, 1).ok());
}

TEST(RingScan, BesideALiveWriterReturnsAnIntactPrefix) {
  TempDir dir;
  auto ring = OpenRing(dir, 1 << 22);  // 16384 slots: no drain needed
  ASSERT_TRUE(ring);
  constexpr uint64_t kCount = 16000;
  std::atomic<uint64_t> acked{0};
  std::atomic<int> scanned{0};
  std::thread writer([&] {
    for (uint64_t i = 0; i < kCount; ++i) {
      // Half way, the writer waits for one scan to have run beside it, so
      // that however the two threads are scheduled, a scan sees it alive.
      while (i == kCount / 2 && scanned.load(std::memory_order_acquire) == 0) {
        std::this_thread::yield();
      }
      RingAppend a = ring->Append(Bytes(RingPayload(0, i)));
      ASSERT_EQ(a.code, RingCode::kOk);
      acked.store(a.seq, std::memory_order_release);
      if (i % 64 == 0) std::this_thread::yield();
    }
  });
  int scans = 0;
  for (bool done = false; !done; ++scans) {
    done = acked.load(std::memory_order_acquire) == kCount;
    const uint64_t before = acked.load(std::memory_order_acquire);
    auto scan = ScanRing(dir / "RING", 0);
    ASSERT_TRUE(scan.ok()) << scan.status().ToString();
    EXPECT_EQ(scan->torn, 0u);
    EXPECT_LE(scan->holes, 1u);  // one writer: at most its append in flight
    EXPECT_GE(scan->complete_through, before);
    for (size_t k = 0; k < scan->records.size(); ++k) {
      const auto& r = scan->records[k];
      ASSERT_EQ(r.seq, k + 1);
      auto id = ParseRingPayload(r.payload);
      ASSERT_TRUE(id);
      ASSERT_EQ(id->index + 1, r.seq);
    }
    EXPECT_GE(scan->records.size(), before);
    scanned.fetch_add(1, std::memory_order_release);
  }
  writer.join();
  EXPECT_GT(scans, 1);
}

TEST(RingScan, BesideALiveWriterAndDrainNeverFailsOrTears) {
  TempDir dir;
  auto ring = OpenRing(dir, 4096);  // 16 slots: the drain laps them constantly
  ASSERT_TRUE(ring);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t i = 0; !stop.load(); ++i) ring->Append(Bytes(RingPayload(0, i)));
  });
  std::thread drain([&] {
    std::vector<RingView> views;
    while (!stop.load()) {
      if (ring->Peek(16, &views) > 0) ring->Release(views.back().seq);
    }
  });
  for (int k = 0; k < 2000; ++k) {
    auto scan = ScanRing(dir / "RING", 0);
    ASSERT_TRUE(scan.ok()) << scan.status().ToString();
    EXPECT_EQ(scan->torn, 0u);
    uint64_t prev = 0;
    for (const auto& r : scan->records) {
      ASSERT_GT(r.seq, prev);
      prev = r.seq;
      ASSERT_TRUE(ParseRingPayload(r.payload));
    }
  }
  stop.store(true);
  writer.join();
  drain.join();
}

// --- kill -9 of a real writer process

int KillCount() {
  const char* n = std::getenv("BLACKBOX_RING_KILLS");
  return n ? std::atoi(n) : 20;
}

TEST(RingKill, EveryAcknowledgedAppendSurvivesKillNine) {
  constexpr int kThreads = 2;
  std::mt19937 rng(std::random_device{}());
  uint64_t total_holes = 0, total_checked = 0;
  for (int round = 0; round < KillCount(); ++round) {
    TempDir dir;
    const std::string ack_path = dir / "ACK";
    int ack_fd = ::open(ack_path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(ack_fd, 0);
    ASSERT_EQ(::ftruncate(ack_fd, 4096), 0);
    void* map = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, ack_fd, 0);
    ::close(ack_fd);
    ASSERT_NE(map, MAP_FAILED);
    const auto* ack = static_cast<const std::atomic<uint64_t>*>(map);

    const std::string threads = std::to_string(kThreads);
    // 64 KB (256 slots): the writers lap the ring many times before the kill.
    const std::string size = std::to_string(1 << 16);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::execl(RING_WRITER_CHILD, RING_WRITER_CHILD, dir.path().c_str(), ack_path.c_str(),
              threads.c_str(), size.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Wait until every thread has appended, then kill at a random moment.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      bool all = true;
      for (int t = 0; t < kThreads; ++t) all = all && ack[2 * t + 1].load() > 0;
      if (all) break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer did not start";
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));

    // What the drain wrote out (a record cut by the kill was not released).
    std::map<uint64_t, std::string> seen;
    {
      std::ifstream in(dir / "DRAINED", std::ios::binary);
      std::string b((std::istreambuf_iterator<char>(in)), {});
      size_t at = 0;
      while (at + 12 <= b.size()) {
        uint64_t seq;
        uint32_t len;
        std::memcpy(&seq, b.data() + at, 8);
        std::memcpy(&len, b.data() + at + 8, 4);
        if (at + 12 + len > b.size()) break;
        seen.emplace(seq, b.substr(at + 12, len));
        at += 12 + len;
      }
    }
    const uint64_t last_drained = seen.empty() ? 0 : seen.rbegin()->first;
    auto scan = ScanRing(dir / "RING", last_drained);
    ASSERT_TRUE(scan.ok()) << scan.status().ToString();
    EXPECT_EQ(scan->torn, 0u);  // kill -9 stops the process, not its stores
    EXPECT_LE(scan->holes, static_cast<uint64_t>(kThreads)) << "round " << round;
    total_holes += scan->holes;
    uint64_t prev = last_drained;
    for (const auto& r : scan->records) {
      ASSERT_GT(r.seq, prev) << "out of order or duplicated";
      prev = r.seq;
      seen.emplace(r.seq, r.payload);
    }
    // Every append a thread saw return is there, under the seq it was given,
    // with its payload; each thread's payloads in its order.
    std::vector<uint64_t> found(kThreads, 0), last_seq(kThreads, 0);
    for (const auto& [seq, payload] : seen) {
      auto id = ParseRingPayload(payload);
      ASSERT_TRUE(id) << "payload of seq " << seq;
      ASSERT_LT(id->thread, static_cast<uint32_t>(kThreads));
      ASSERT_EQ(id->index, found[id->thread]) << "thread " << id->thread << " seq " << seq;
      ++found[id->thread];
      last_seq[id->thread] = seq;
    }
    for (int t = 0; t < kThreads; ++t) {
      const uint64_t acked = ack[2 * t + 1].load();
      EXPECT_GE(found[t], acked) << "thread " << t << " round " << round;
      EXPECT_LE(found[t], acked + 1) << "thread " << t;  // + its append in flight
      if (found[t] == acked) {
        EXPECT_EQ(last_seq[t], ack[2 * t].load());
      }
      total_checked += acked;
    }
    ::munmap(map, 4096);
  }
  RecordProperty("acknowledged_checked", std::to_string(total_checked));
  RecordProperty("holes", std::to_string(total_holes));
}

}  // namespace
}  // namespace blackbox::internal
