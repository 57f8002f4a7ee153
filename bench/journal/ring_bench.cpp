// The buffered-event ring (journal/src/ring.h) beside raw RocksDB, one run.
//
//   ring_bench [--dir DIR] [--repeat R] [--scale X]
//
// Each repetition runs, alternating: ring appends from 1 and from 8 threads
// (a drain thread releasing continuously, so the ring does not fill; drops
// are counted and reported), raw RocksDB Puts (default options and
// WriteOptions, 8-byte big-endian keys, values of the event's size) from 1
// thread, and the ring with a drain that writes each peeked run of records
// into RocksDB as one WriteBatch (sustained events/s). The event is a
// pre-encoded 144-byte health sample, as in journal_bench. Also the ring
// lanes (lanes.h) alone: 8 lanes with room, from 1 and 8 threads, for the
// throughput per core as threads are added. Medians over R.
//
// Then blackbox::Journal itself, today's direct path beside ring mode
// (JournalOptions::ring_bytes = 4 MB), same event: buffered appends from 1
// and 8 threads, in bursts of half the ring's slots (between bursts, untimed,
// the drain catches up: the cost of an append the ring takes, with the drain
// running beside it; refusals are counted and printed), and durable appends
// from 1 and 8 threads (their cost is the fsync either way); and the same
// with 8 ring lanes (JournalOptions::ring_lanes) of 4 MB each.
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "lanes.h"
#include "ring.h"

namespace {

using blackbox::bench::BigEndianKey;
using blackbox::bench::Median;
using blackbox::bench::OpenRaw;

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
using blackbox::internal::Ring;
using blackbox::internal::RingCode;
using blackbox::internal::RingView;

std::string HealthEvent() {
  flatbuffers::FlatBufferBuilder fbb;
  blackbox::bench::BuildHealthEvent(fbb);
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

std::unique_ptr<Ring> OpenRing(const std::string& dir, size_t bytes = 0) {
  fs::create_directories(dir);
  blackbox::internal::RingOptions o;
  if (bytes != 0) o.size = bytes;
  auto r = Ring::Open(dir, o, 1);
  if (!r.ok()) {
    fmt::print(stderr, "ring open: {}\n", r.status().ToString());
    std::exit(1);
  }
  return std::move(*r);
}

// Runs `ops` operations split over `threads` threads; returns the seconds.
double Time(uint64_t ops, int threads, const std::function<void(uint64_t, uint64_t)>& body) {
  auto start = Clock::now();
  std::vector<std::thread> ts;
  const uint64_t per = ops / threads;
  for (int t = 0; t < threads; ++t) ts.emplace_back(body, t * per, (t + 1) * per);
  for (auto& th : ts) th.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct RingRun {
  double ns_per_append;
  uint64_t drops;
};

// Appends `ops` events from `threads` threads while a drain thread releases
// (and, with `db`, writes into RocksDB in WriteBatches) whatever is published.
// With `db` the time runs until everything appended is in the database.
RingRun RunRing(Ring& ring, const std::string& event, uint64_t ops, int threads,
                rocksdb::DB* db = nullptr) {
  std::atomic<bool> stop{false};
  std::thread drain([&] {
    std::vector<RingView> views;
    rocksdb::WriteBatch batch;
    rocksdb::WriteOptions wo;
    for (;;) {
      if (ring.Peek(ring.slot_count(), &views) == 0) {
        if (stop.load(std::memory_order_acquire) && ring.head() == ring.tail()) return;
        std::this_thread::yield();
        continue;
      }
      if (db != nullptr) {
        batch.Clear();
        for (const auto& v : views) {
          batch.Put(
              BigEndianKey(v.seq),
              rocksdb::Slice(reinterpret_cast<const char*>(v.payload.data()), v.payload.size()));
        }
        if (!db->Write(wo, &batch).ok()) std::abort();
      }
      ring.Release(views.back().seq);
    }
  });
  const uint64_t dropped_before = ring.dropped();
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(event.data()),
                                       event.size());
  auto start = Clock::now();
  Time(ops, threads, [&](uint64_t lo, uint64_t hi) {
    for (uint64_t i = lo; i < hi; ++i) {
      // Full: counted in dropped(), then tried again (this measures what
      // the drain sustains, not the cost of refusing).
      while (ring.Append(bytes).code == RingCode::kFull) {
        if (db != nullptr) {
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        } else {
          std::this_thread::yield();
        }
      }
    }
  });
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  stop.store(true, std::memory_order_release);
  drain.join();
  if (db != nullptr) secs = std::chrono::duration<double>(Clock::now() - start).count();
  return {secs * 1e9 / static_cast<double>(ops), ring.dropped() - dropped_before};
}

// The append alone: `ops` appends from one thread into rings with room for
// them (no drain running; Reset between passes); ns per append.
double RunBurst(Ring& ring, const std::string& event, uint64_t ops) {
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(event.data()),
                                       event.size());
  const uint64_t pass = ring.slot_count();
  double secs = 0;
  uint64_t done = 0;
  while (done < ops) {
    ring.Reset(done + 1);
    const uint64_t n = std::min(pass, ops - done);
    auto start = Clock::now();
    for (uint64_t i = 0; i < n; ++i) {
      if (ring.Append(bytes).code != RingCode::kOk) std::abort();
    }
    secs += std::chrono::duration<double>(Clock::now() - start).count();
    done += n;
  }
  return secs * 1e9 / static_cast<double>(ops);
}

// `passes` passes of `per` calls of `append` from each of `threads` threads,
// `reset` before each pass, untimed; ns per call. The threads are started
// once and wait at a barrier between passes, so a pass times the appends
// alone (the figures came out the same as with threads started per pass).
template <class Reset, class Append>
double TimePasses(int threads, uint64_t passes, uint64_t per, Reset reset, Append append) {
  std::barrier sync(threads + 1);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (uint64_t k = 0; k < passes; ++k) {
        sync.arrive_and_wait();  // start
        for (uint64_t i = 0; i < per; ++i) append();
        sync.arrive_and_wait();  // done
      }
    });
  }
  double secs = 0;
  for (uint64_t k = 0; k < passes; ++k) {
    reset();
    auto start = Clock::now();
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    secs += std::chrono::duration<double>(Clock::now() - start).count();
  }
  for (auto& th : ts) th.join();
  return secs * 1e9 / static_cast<double>(passes * per * threads);
}

// The appenders alone, without a drain touching their cache lines: `ops`
// appends from `threads` threads into a ring with room for a pass of them
// (Reset between passes); ns per append.
double RunBurstThreads(Ring& ring, const std::string& event, uint64_t ops, int threads) {
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(event.data()),
                                       event.size());
  const uint64_t per = ring.slot_count() / threads;
  const uint64_t passes = (ops + per * threads - 1) / (per * threads);
  uint64_t next = 1;
  return TimePasses(
      threads, passes, per,
      [&] {
        ring.Reset(next);
        next += per * threads;
      },
      [&] {
        if (ring.Append(bytes).code != RingCode::kOk) std::abort();
      });
}

// The same for ring lanes (lanes.h): `ops` appends from `threads` threads
// into `lanes` lanes with room for a pass (Reset between passes), each
// thread in a lane of its own when there are as many; ns per append.
double RunLanesBurst(const std::string& dir, size_t lanes, const std::string& event, uint64_t ops,
                     int threads) {
  fs::create_directories(dir);
  blackbox::internal::RingOptions o;
  // 1 MiB a lane (4096 slots): long enough passes that the barrier between
  // them is a small part (256 KiB lanes made one thread's figure 1.4x
  // slower), small enough that 8 lanes stay near the caches.
  o.size = 1 << 20;
  auto opened = blackbox::internal::Lanes::Open(dir, lanes, o);
  if (!opened.ok()) {
    fmt::print(stderr, "lanes open: {}\n", opened.status().ToString());
    std::exit(1);
  }
  blackbox::internal::Lanes& l = **opened;
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(event.data()),
                                       event.size());
  // A pass: what the lanes hold when each thread has its own (or shares one
  // with others, when there are more threads than lanes).
  const uint64_t per = l.lane(0).slot_count() * std::min<uint64_t>(lanes, threads) / threads;
  const uint64_t passes = (ops + per * threads - 1) / (per * threads);
  return TimePasses(
      threads, passes, per,
      [&] {
        for (size_t i = 0; i < l.count(); ++i) l.lane(i).Reset(1);
      },
      [&] {
        if (l.Append(bytes).code != RingCode::kOk) std::abort();
      });
}

// What a shared position costs by itself: `threads` threads each taking
// `ops / threads` positions from one atomic counter (`shared`: fetch_add, as
// any total order handed out at append time needs) or from a counter of
// their own on its own cache line; positions per second, all threads.
double RunPositions(uint64_t ops, int threads, bool shared) {
  struct alignas(64) Counter {
    std::atomic<uint64_t> value{0};
  };
  std::vector<Counter> own(threads);
  Counter one;
  std::barrier sync(threads + 1);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::atomic<uint64_t>& c = shared ? one.value : own[t].value;
      sync.arrive_and_wait();
      for (uint64_t i = 0; i < ops / threads; ++i) c.fetch_add(1, std::memory_order_relaxed);
      sync.arrive_and_wait();
    });
  }
  sync.arrive_and_wait();
  auto start = Clock::now();
  sync.arrive_and_wait();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& th : ts) th.join();
  return static_cast<double>(ops / threads * threads) / secs;
}

struct JournalRun {
  double ns_per_append;
  uint64_t dropped;
  double per_batch;  // appends per RocksDB write
};

// `ops` appends of `event` to a fresh journal at `dir` from `threads`
// threads, timed in bursts of `burst` appends (0: one burst); between
// bursts, untimed, a scan from the last seq lets the drain catch up.
JournalRun RunJournal(const std::string& dir, size_t ring_bytes, size_t lanes,
                      const std::string& event, uint64_t ops, int threads,
                      blackbox::Durability durability, uint64_t burst = 0) {
  blackbox::JournalOptions o;
  o.ring_bytes = ring_bytes;
  o.ring_lanes = lanes;
  o.check_permissions = false;
  auto j = blackbox::Journal::Open(dir, "app", o);
  if (!j.ok()) {
    fmt::print(stderr, "journal open: {}\n", j.status().ToString());
    std::exit(1);
  }
  if (!(*j)->TakeWarnings().empty()) std::exit(1);  // no ring: not what is measured
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(event.data()),
                                       event.size());
  if (burst == 0) burst = ops;
  double secs = 0;
  for (uint64_t done = 0; done < ops; done += burst) {
    const uint64_t n = std::min(burst, ops - done);
    secs += Time(n, threads, [&](uint64_t lo, uint64_t hi) {
      for (uint64_t i = lo; i < hi; ++i) (void)(*j)->Append(bytes, durability);
    });
    blackbox::ScanOptions so;
    so.from_seq = (*j)->last_seq();
    (void)(*j)->Scan(so, [](const blackbox::Record&) { return true; });
  }
  return {secs * 1e9 / static_cast<double>(ops), (*j)->dropped_appends(),
          static_cast<double>(ops) /
              static_cast<double>(std::max<uint64_t>(1, (*j)->batches_written()))};
}

}  // namespace

int main(int argc, char** argv) {
  const blackbox::bench::BenchArgs args = blackbox::bench::ParseBenchArgs(argc, argv, "ring_bench");
  const std::string& base = args.base;
  const int repeat = args.repeat;
  const double scale = args.scale;
  const uint64_t kRing = static_cast<uint64_t>(4'000'000 * scale);
  const uint64_t kPut = static_cast<uint64_t>(200'000 * scale);
  const uint64_t kDrain = static_cast<uint64_t>(1'000'000 * scale);
  const uint64_t kPositions = static_cast<uint64_t>(200'000'000 * scale);
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string event = HealthEvent();
  fmt::print("event size {} bytes; {} repetitions; {} cores; dir {}\n\n", event.size(), repeat,
             cores, base);

  std::vector<double> burst, ring1, ring8, put, drain_rate, drain_ns, drain_vector, alone1, alone8;
  std::vector<double> pos1, pos_shared8, pos_own8, lanes1, lanes8;
  uint64_t drops1 = 0, drops8 = 0, drops_db = 0;
  int run = 0;
  for (int r = 0; r < repeat; ++r) {
    auto fresh = [&](const char* what) { return fmt::format("{}/{}-{}", base, what, run++); };
    {
      auto ring = OpenRing(fresh("ring"));
      burst.push_back(RunBurst(*ring, event, kRing));
    }
    {
      auto ring = OpenRing(fresh("ring"));
      RingRun one = RunRing(*ring, event, kRing, 1);
      ring1.push_back(one.ns_per_append);
      drops1 += one.drops;
    }
    {
      auto db = OpenRaw(fresh("raw"));
      rocksdb::WriteOptions wo;
      double secs = Time(kPut, 1, [&](uint64_t lo, uint64_t hi) {
        for (uint64_t i = lo; i < hi; ++i) db->Put(wo, BigEndianKey(i + 1), event);
      });
      put.push_back(secs * 1e9 / static_cast<double>(kPut));
    }
    {
      auto ring = OpenRing(fresh("ring"));
      RingRun eight = RunRing(*ring, event, kRing, 8);
      ring8.push_back(eight.ns_per_append);
      drops8 += eight.drops;
    }
    {
      auto ring = OpenRing(fresh("ring"));
      auto db = OpenRaw(fresh("drain"));
      RingRun d = RunRing(*ring, event, kDrain, 1, db.get());
      drain_ns.push_back(d.ns_per_append);
      drain_rate.push_back(1e9 / d.ns_per_append);
      drops_db += d.drops;
    }
    {
      auto ring = OpenRing(fresh("ring"));
      auto db = OpenRaw(fresh("drainv"), true);
      RingRun d = RunRing(*ring, event, kDrain, 1, db.get());
      drain_vector.push_back(1e9 / d.ns_per_append);
    }
    {
      // Last, and removed at once: a large ring's dirty pages, written back
      // by the kernel, slowed the cases that ran after it by 3x. 16 MiB:
      // 65,536 slots a pass, so that starting 8 threads per pass is a
      // small part of it.
      auto ring = OpenRing(fresh("ring"), 16 << 20);
      alone1.push_back(RunBurstThreads(*ring, event, kRing, 1));
      alone8.push_back(RunBurstThreads(*ring, event, kRing, 8));
    }
    // Lanes with room (no drain): 8 lanes of 1 MiB, from 1 and 8 threads.
    lanes1.push_back(RunLanesBurst(fresh("lanes"), 8, event, kRing, 1));
    lanes8.push_back(RunLanesBurst(fresh("lanes"), 8, event, kRing, 8));
    {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(base)) fs::remove_all(e.path(), ec);
    }
    pos1.push_back(RunPositions(kPositions, 1, true));
    pos_shared8.push_back(RunPositions(kPositions, 8, true));
    pos_own8.push_back(RunPositions(kPositions, 8, false));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(base)) fs::remove_all(e.path(), ec);
  }

  const double b = Median(burst), r1 = Median(ring1), r8 = Median(ring8), p = Median(put);
  const double rate1 = 1e9 / r1, rate8 = 1e9 / r8;
  // The drain thread spins on a core of its own, so the appenders and it
  // share every core in both cases.
  const double per_core1 = rate1 / std::min(2u, cores), per_core8 = rate8 / cores;
  fmt::print("{:<44} {:>12} {:>10}  {}\n", "case (medians)", "ns/append", "x raw Put", "goal");
  fmt::print("{:<44} {:>12.1f} {:>9.1f}x  <= 100 ns and >= 20x raw Put: {}\n",
             "ring append, 1 thread (drain releasing)", r1, p / r1,
             r1 <= 100 && p / r1 >= 20 ? "met" : "NOT met");
  fmt::print("{:<44} {:>12.1f} {:>9.1f}x\n", "ring append alone, 1 thread (room, no drain)", b,
             p / b);
  fmt::print("{:<44} {:>12.1f} {:>9.1f}x\n", "ring append, 8 threads (drain releasing)", r8,
             p / r8);
  fmt::print("{:<44} {:>12.1f} {:>10}\n", "raw RocksDB Put, 1 thread", p, "1.0x");
  fmt::print(
      "\nthroughput: 1 thread {:.1f} M/s ({:.1f} M/s per core), 8 threads {:.1f} M/s "
      "({:.1f} M/s per core); appenders and drain on {} cores\n",
      rate1 / 1e6, per_core1 / 1e6, rate8 / 1e6, per_core8 / 1e6, cores);
  const double a1 = 1e9 / Median(alone1), a8 = 1e9 / Median(alone8);
  fmt::print(
      "appenders alone (16 MiB ring with room, no drain): 1 thread {:.1f} M/s on 1 core, 8 "
      "threads {:.1f} M/s ({:.1f} M/s per core, {:.2f}x one thread's)\n",
      a1 / 1e6, a8 / 1e6, a8 / std::min(8u, cores) / 1e6, a8 / std::min(8u, cores) / a1);
  {
    const double l1 = 1e9 / Median(lanes1), l8 = 1e9 / Median(lanes8);
    const double per8 = l8 / std::min(8u, cores);
    fmt::print(
        "lanes alone (8 lanes with room, no drain): 1 thread {:.1f} ns/append, {:.1f} M/s on 1 "
        "core; 8 threads {:.1f} M/s ({:.1f} M/s per core, {:.2f}x one thread's): goal >= 0.9x "
        "(per-core rate holds): {}\n",
        Median(lanes1), l1 / 1e6, l8 / 1e6, per8 / 1e6, per8 / l1,
        per8 / l1 >= 0.9 ? "met" : "NOT met");
  }
  {
    const double c = std::min(8u, cores), p1 = Median(pos1);
    const double shared = Median(pos_shared8) / c, own = Median(pos_own8) / c;
    fmt::print(
        "positions alone (fetch_add only), per core: 1 thread {:.0f} M/s; 8 threads on one shared "
        "counter {:.0f} M/s ({:.2f}x), on counters of their own {:.0f} M/s ({:.2f}x)\n",
        p1 / 1e6, shared / 1e6, shared / p1, own / 1e6, own / p1);
  }
  fmt::print(
      "ring full (append refused, counted, tried again), all repetitions: 1 thread {} of {}, 8 "
      "threads {} of {}\n",
      drops1, kRing * repeat, drops8, kRing * repeat);
  fmt::print(
      "\nring drained into RocksDB (WriteBatch per peek, 1 appending thread): "
      "{:.2f} M events/s sustained (median); ring full {} times in {} appends\n",
      Median(drain_rate) / 1e6, drops_db, kDrain * repeat);
  fmt::print("the same, the journal's vector memtable: {:.2f} M events/s sustained (median)\n",
             Median(drain_vector) / 1e6);

  // blackbox::Journal, direct path and ring mode.
  constexpr size_t kRingBytes = 4 << 20;
  const uint64_t kSlots = kRingBytes / 256;
  const uint64_t kBuffered = static_cast<uint64_t>(200'000 * scale);
  const uint64_t kDurable1 = static_cast<uint64_t>(2'000 * scale);
  const uint64_t kDurable8 = static_cast<uint64_t>(8'000 * scale);
  using blackbox::Durability;
  struct Case {
    const char* name;
    size_t ring;
    size_t lanes;
    int threads;
    Durability durability;
    std::vector<double> ns;
    uint64_t dropped = 0;
    std::vector<double> per_batch;
  };
  const char* const kCaseNames[] = {
      "Journal::Append buffered, direct, 1 thread",
      "Journal::Append buffered, ring mode, 1 thread",
      "Journal::Append buffered, 8 lanes, 1 thread",
      "Journal::Append buffered, direct, 8 threads",
      "Journal::Append buffered, ring mode, 8 threads",
      "Journal::Append buffered, 8 lanes, 8 threads",
      "Journal::Append durable, direct, 1 thread",
      "Journal::Append durable, ring mode, 1 thread",
      "Journal::Append durable, 8 lanes, 1 thread",
      "Journal::Append durable, direct, 8 threads",
      "Journal::Append durable, ring mode, 8 threads",
      "Journal::Append durable, 8 lanes, 8 threads",
  };
  // The lanes' cases get 8 lanes of kRingBytes each (ring_bytes = 8 x
  // kRingBytes): a thread keeps to one lane, so that each thread has the
  // room ring mode's threads share, and the bursts are as long. With lanes
  // of kRingBytes / 8, one thread's bursts would be 8 times shorter, and
  // the timing of each burst's threads' start and join would dominate.
  std::vector<Case> cases;
  for (int k = 0; k < 12; ++k) {
    const int mode = k % 3;  // direct, ring, lanes
    cases.push_back({kCaseNames[k],
                     mode == 0   ? 0
                     : mode == 2 ? 8 * kRingBytes
                                 : kRingBytes,
                     mode == 2 ? size_t{8} : 0,
                     (k / 3) % 2 == 0 ? 1 : 8,
                     k < 6 ? Durability::kBuffered : Durability::kDurable,
                     {},
                     0,
                     {}});
  }

  std::vector<double> put_j;
  for (int r = 0; r < repeat; ++r) {
    {
      auto db = OpenRaw(fmt::format("{}/rawj-{}", base, run++));
      rocksdb::WriteOptions wo;
      double secs = Time(kPut, 1, [&](uint64_t lo, uint64_t hi) {
        for (uint64_t i = lo; i < hi; ++i) db->Put(wo, BigEndianKey(i + 1), event);
      });
      put_j.push_back(secs * 1e9 / static_cast<double>(kPut));
    }
    for (auto& c : cases) {
      const bool buffered = c.durability == Durability::kBuffered;
      const uint64_t ops = buffered ? kBuffered : c.threads == 1 ? kDurable1 : kDurable8;
      // Bursts of half the ring, or with lanes half of the lanes the
      // threads append to (a thread keeps to one lane; each lane is as
      // large as ring mode's ring, see the cases).
      uint64_t burst = buffered && c.ring ? kSlots / 2 : 0;
      if (buffered && c.lanes) burst = kSlots / 2 * std::min<uint64_t>(c.threads, c.lanes);
      JournalRun jr = RunJournal(fmt::format("{}/journal-{}", base, run++), c.ring, c.lanes, event,
                                 ops, c.threads, c.durability, burst);
      c.ns.push_back(jr.ns_per_append);
      c.dropped += jr.dropped;
      c.per_batch.push_back(jr.per_batch);
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(base)) fs::remove_all(e.path(), ec);
  }
  const double pj = Median(put_j);
  fmt::print("\n{:<50} {:>12} {:>10} {:>14} {:>14}\n", "blackbox::Journal (medians)", "ns/append",
             "x raw Put", "refused (all)", "appends/write");
  fmt::print("{:<50} {:>12.1f} {:>10}\n", "raw RocksDB Put, 1 thread", pj, "1.0x");
  for (const auto& c : cases) {
    const double m = Median(c.ns);
    fmt::print("{:<50} {:>12.1f} {:>9.1f}x {:>14} {:>14.1f}\n", c.name, m, pj / m, c.dropped,
               Median(c.per_batch));
  }
  std::error_code ec;
  fs::remove_all(base, ec);
  return 0;
}
