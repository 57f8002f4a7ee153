// Journal vs raw RocksDB, side by side in one run.
//
//   journal_bench [--dir DIR] [--repeat R] [--scale X]
//
// Every case runs R times alternating journal and raw; the medians and their
// ratio are printed with the goal from the journal's issue. Raw RocksDB uses
// its default options, 8-byte big-endian keys and values of the same size as
// the journal's encoded events; the journal pays for building each event.
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "blackbox/journal.h"

namespace {

using blackbox::bench::BigEndianKey;
using blackbox::bench::BuildHealthEvent;
using blackbox::bench::Median;

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// Raw RocksDB with its defaults.
struct RawDb {
  explicit RawDb(const std::string& path) : db(blackbox::bench::OpenRaw(path)) {}
  std::unique_ptr<rocksdb::DB> db;
};

// Runs `ops` operations split over `threads` threads; returns ops/s.
double Rate(uint64_t ops, int threads, const std::function<void(int, uint64_t, uint64_t)>& body) {
  auto start = Clock::now();
  std::vector<std::thread> ts;
  uint64_t per = ops / threads;
  for (int t = 0; t < threads; ++t) ts.emplace_back(body, t, t * per, (t + 1) * per);
  for (auto& th : ts) th.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(per * threads) / secs;
}

struct Case {
  std::string name;
  std::string goal;
  double goal_ratio;
  std::vector<double> journal, raw;
};

}  // namespace

int main(int argc, char** argv) {
  const blackbox::bench::BenchArgs args =
      blackbox::bench::ParseBenchArgs(argc, argv, "journal_bench");
  const std::string& base = args.base;
  const int repeat = args.repeat;
  const double scale = args.scale;
  const uint64_t kBuffered = static_cast<uint64_t>(200'000 * scale);
  const uint64_t kDurable1 = static_cast<uint64_t>(2'000 * scale);
  const uint64_t kDurable8 = static_cast<uint64_t>(8'000 * scale);
  const uint64_t kScan = static_cast<uint64_t>(1'000'000 * scale);

  flatbuffers::FlatBufferBuilder probe;
  BuildHealthEvent(probe, 0);
  const std::string value(reinterpret_cast<const char*>(probe.GetBufferPointer()), probe.GetSize());
  fmt::print("event size {} bytes; {} repetitions per case; dir {}\n\n", value.size(), repeat,
             base);

  Case buffered{"append, buffered, 1 thread", ">= 1.0x raw Put", 1.0, {}, {}};
  Case durable1{"append, durable, 1 thread", "(reference)", 0, {}, {}};
  Case durable8{"append, durable, 8 threads", ">= 1.0x raw 8-thread sync Put", 1.0, {}, {}};
  Case scan{"full scan with verification", ">= 0.5x raw iteration", 0.5, {}, {}};
  std::vector<double> scaling;    // journal durable 8 threads / 1 thread
  std::vector<double> per_batch;  // journal durable 8 threads: appends per group commit

  int run = 0;
  for (int r = 0; r < repeat; ++r) {
    auto fresh = [&](const char* what) { return fmt::format("{}/{}-{}", base, what, run++); };
    // --- buffered, 1 thread
    {
      auto j = blackbox::Journal::Open(fresh("j"), "app");
      if (!j.ok()) {
        fmt::print(stderr, "{}\n", j.status().ToString());
        return 1;
      }
      buffered.journal.push_back(Rate(kBuffered, 1, [&](int, uint64_t lo, uint64_t hi) {
        flatbuffers::FlatBufferBuilder fbb(256);
        for (uint64_t i = lo; i < hi; ++i) {
          BuildHealthEvent(fbb, i);
          (*j)->Append(blackbox::Bytes(fbb), blackbox::Durability::kBuffered);
        }
      }));
      RawDb raw(fresh("r"));
      buffered.raw.push_back(Rate(kBuffered, 1, [&](int, uint64_t lo, uint64_t hi) {
        rocksdb::WriteOptions wo;
        for (uint64_t i = lo; i < hi; ++i) raw.db->Put(wo, BigEndianKey(i + 1), value);
      }));
    }
    // --- durable, 1 and 8 threads
    {
      auto j = blackbox::Journal::Open(fresh("j"), "app");
      auto body = [&](int, uint64_t lo, uint64_t hi) {
        flatbuffers::FlatBufferBuilder fbb(256);
        for (uint64_t i = lo; i < hi; ++i) {
          BuildHealthEvent(fbb, i);
          (*j)->Append(blackbox::Bytes(fbb), blackbox::Durability::kDurable);
        }
      };
      double one = Rate(kDurable1, 1, body);
      const uint64_t batches_before = (*j)->batches_written();
      double eight = Rate(kDurable8, 8, body);
      per_batch.push_back(static_cast<double>(kDurable8) /
                          static_cast<double>((*j)->batches_written() - batches_before));
      durable1.journal.push_back(one);
      durable8.journal.push_back(eight);
      scaling.push_back(eight / one);
      RawDb raw(fresh("r"));
      auto raw_body = [&](int, uint64_t lo, uint64_t hi) {
        rocksdb::WriteOptions wo;
        wo.sync = true;
        for (uint64_t i = lo; i < hi; ++i) raw.db->Put(wo, BigEndianKey(i + 1), value);
      };
      durable1.raw.push_back(Rate(kDurable1, 1, raw_body));
      durable8.raw.push_back(Rate(kDurable8, 8, raw_body));
    }
    // --- full scan (written once per repetition, read back)
    {
      std::string jpath = fresh("j"), rpath = fresh("r");
      {
        auto j = blackbox::Journal::Open(jpath, "app");
        flatbuffers::FlatBufferBuilder fbb(256);
        for (uint64_t i = 0; i < kScan; ++i) {
          BuildHealthEvent(fbb, i);
          (*j)->Append(blackbox::Bytes(fbb), blackbox::Durability::kBuffered);
        }
        RawDb raw(rpath);
        rocksdb::WriteOptions wo;
        for (uint64_t i = 0; i < kScan; ++i) raw.db->Put(wo, BigEndianKey(i + 1), value);
      }
      auto reader = blackbox::Reader::Open(jpath, "app");
      scan.journal.push_back(Rate(kScan, 1, [&](int, uint64_t, uint64_t) {
        uint64_t n = 0;
        (*reader)->Scan({}, [&](const blackbox::Record&) {
          ++n;
          return true;
        });
        if (n != kScan) fmt::print(stderr, "journal scan saw {} of {}\n", n, kScan);
      }));
      RawDb raw(rpath);
      scan.raw.push_back(Rate(kScan, 1, [&](int, uint64_t, uint64_t) {
        uint64_t n = 0;
        std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(rocksdb::ReadOptions()));
        for (it->SeekToFirst(); it->Valid(); it->Next()) {
          n += it->value().size() > 0;
        }
        if (n != kScan) fmt::print(stderr, "raw scan saw {} of {}\n", n, kScan);
      }));
    }
    // Each repetition starts from empty directories.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(base)) fs::remove_all(e.path(), ec);
  }

  fmt::print("{:<32} {:>14} {:>14} {:>8}  {}\n", "case (median ops/s)", "journal", "raw rocksdb",
             "ratio", "goal");
  for (const Case* c : {&buffered, &durable1, &durable8, &scan}) {
    double jm = Median(c->journal), rm = Median(c->raw), ratio = jm / rm;
    std::string verdict = c->goal_ratio == 0 ? "" : (ratio >= c->goal_ratio ? "met" : "NOT met");
    fmt::print("{:<32} {:>14.0f} {:>14.0f} {:>7.2f}x  {} {}\n", c->name, jm, rm, ratio, c->goal,
               verdict);
  }
  double s = Median(scaling);
  fmt::print("{:<32} {:>14} {:>14} {:>7.2f}x  >= 4x {}\n", "durable 8 threads / 1 thread", "", "",
             s, s >= 4 ? "met" : "NOT met");
  fmt::print("(durable, 8 threads: median {:.2f} appends per group commit)\n", Median(per_batch));
  std::error_code ec;
  fs::remove_all(base, ec);
  return 0;
}
