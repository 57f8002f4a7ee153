#include "blackbox/journal.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "process.h"
#include "test_util.h"

namespace blackbox {
namespace {

using testing::GaugeEvent;
using testing::TempDir;

std::vector<std::pair<uint64_t, double>> ReadAll(const Journal& j) {
  std::vector<std::pair<uint64_t, double>> out;
  EXPECT_TRUE(j.Scan({}, [&](const Record& r) {
                 out.emplace_back(r.seq, r.event->payload_as_Gauge()->value());
                 return true;
               }).ok());
  return out;
}

TEST(Journal, AppendsGetConsecutiveSeqsFromOne) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j)->last_seq(), 0u);
  for (int i = 0; i < 5; ++i) {
    auto seq =
        (*j)->Append(GaugeEvent("g", i), i % 2 ? Durability::kDurable : Durability::kBuffered);
    ASSERT_TRUE(seq.ok()) << seq.status().ToString();
    EXPECT_EQ(*seq, static_cast<uint64_t>(i + 1));
  }
  auto all = ReadAll(**j);
  ASSERT_EQ(all.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(all[i].first, static_cast<uint64_t>(i + 1));
    EXPECT_EQ(all[i].second, i);
  }
}

// AppendAll: one write, consecutive seqs, the first returned; concurrent
// single appends never land between the events of one call.
TEST(Journal, AppendAllWritesItsEventsTogetherUnderConsecutiveSeqs) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  auto encoded = [](double value) {
    fb::EventT e = GaugeEvent("g", value);
    e.stream = "app";
    return EncodeEvent(std::move(e));
  };
  std::vector<std::thread> threads;
  std::atomic<bool> failed{false};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (t % 2 == 0) {
          // Values t*1000 + i*10 + k: the k-th event of call i of thread t.
          std::vector<std::string> bytes;
          for (int k = 0; k < 3; ++k) bytes.push_back(encoded(t * 1000 + i * 10 + k));
          std::vector<std::span<const uint8_t>> events;
          for (const auto& b : bytes) events.push_back(Bytes(b));
          if (!(*j)->AppendAll(events, i % 2 ? Durability::kDurable : Durability::kBuffered).ok()) {
            failed = true;
          }
        } else if (!(*j)->Append(GaugeEvent("g", -1), Durability::kBuffered).ok()) {
          failed = true;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_FALSE(failed.load());
  auto all = ReadAll(**j);
  ASSERT_EQ(all.size(), 2u * 100 * 3 + 2u * 100);
  for (size_t n = 0; n < all.size(); ++n) {
    ASSERT_EQ(all[n].first, n + 1);
    const double v = all[n].second;
    if (v < 0 || static_cast<int>(v) % 10 != 0) continue;
    ASSERT_LT(n + 2, all.size());
    EXPECT_EQ(all[n + 1].second, v + 1) << "seq " << n + 1;
    EXPECT_EQ(all[n + 2].second, v + 2) << "seq " << n + 1;
  }
  // The seq returned is the first of the call's events.
  std::vector<std::string> bytes = {encoded(7), encoded(8)};
  std::vector<std::span<const uint8_t>> events = {Bytes(bytes[0]), Bytes(bytes[1])};
  const uint64_t batches = (*j)->batches_written();
  auto first = (*j)->AppendAll(events, Durability::kDurable);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, all.size() + 1);
  EXPECT_EQ((*j)->last_seq(), all.size() + 2);
  EXPECT_EQ((*j)->batches_written(), batches + 1);
  EXPECT_EQ((*j)->AppendAll({}, Durability::kDurable).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(Journal, ReopenContinuesTheSequence) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE((*j)->Append(GaugeEvent("g", i), Durability::kBuffered).ok());
  }
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->last_seq(), 3u);
  auto seq = (*j)->Append(GaugeEvent("g", 9), Durability::kDurable);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 4u);
}

TEST(Journal, EightThreadsTimesTenThousandAppendsAreGapFreeAndComplete) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10000;
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Value encodes (thread, index) so every event is identifiable.
        auto d = i % 100 == 0 ? Durability::kDurable : Durability::kBuffered;
        auto seq = (*j)->Append(GaugeEvent("t", t * 1'000'000.0 + i), d);
        ASSERT_TRUE(seq.ok());
        seqs[t].push_back(*seq);
      }
    });
  }
  for (auto& th : threads) th.join();

  // Each thread saw its own seqs strictly increasing (commit order).
  std::set<uint64_t> all_seqs;
  for (const auto& s : seqs) {
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    all_seqs.insert(s.begin(), s.end());
  }
  ASSERT_EQ(all_seqs.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all_seqs.begin(), 1u);
  EXPECT_EQ(*all_seqs.rbegin(), static_cast<uint64_t>(kThreads * kPerThread));

  // Stored: gap-free, and every (thread, index) present exactly once, with
  // each thread's events in its own order.
  auto stored = ReadAll(**j);
  ASSERT_EQ(stored.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<int> next_index(kThreads, 0);
  for (size_t k = 0; k < stored.size(); ++k) {
    ASSERT_EQ(stored[k].first, k + 1);
    int t = static_cast<int>(stored[k].second / 1'000'000);
    int i = static_cast<int>(stored[k].second - t * 1'000'000.0);
    ASSERT_EQ(i, next_index[t]++) << "thread " << t;
  }
}

// Group commit: durable appends from eight threads share fsyncs. Each batch
// is one RocksDB write; with one fsync each, eight threads appending durably
// must need far fewer writes than appends.
TEST(Journal, ConcurrentDurableAppendsShareWrites) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE((*j)->Append(GaugeEvent("t", t * 1000.0 + i), Durability::kDurable).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ((*j)->last_seq(), static_cast<uint64_t>(kThreads * kPerThread));
  const uint64_t writes = (*j)->batches_written();
  EXPECT_GT(writes, 0u);
  EXPECT_LE(writes * 2, static_cast<uint64_t>(kThreads * kPerThread))
      << "durable appends of 8 threads were not batched: " << writes << " writes";
}

TEST(Journal, CreatesOwnerOnlyDirectoriesAndFiles) {
  TempDir dir;
  std::string root = dir / "journal";
  {
    auto j = Journal::Open(root, "app");
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    ASSERT_TRUE((*j)->Append(GaugeEvent("g", 1), Durability::kDurable).ok());
  }
  struct stat st {};
  ASSERT_EQ(stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((root + "/app").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(root + "/app")) {
    if (!e.is_regular_file()) continue;
    ++files;
    ASSERT_EQ(stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << e.path();
  }
  EXPECT_GT(files, 2);
}

TEST(Journal, RefusesARootWritableByOthers) {
  TempDir dir;
  std::string root = dir / "journal";
  ASSERT_EQ(mkdir(root.c_str(), 0700), 0);
  ASSERT_EQ(chmod(root.c_str(), 0777), 0);
  auto j = Journal::Open(root, "app");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("writable by other users"), std::string::npos)
      << j.status().ToString();
  auto r = Reader::Open(root, "app");
  EXPECT_FALSE(r.ok());
}

TEST(Journal, SecondWriterOfAStreamIsRefusedAsBusy) {
  TempDir dir;
  auto a = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(a.ok());
  auto b = Journal::Open(dir.path(), "app");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Status::Code::kBusy) << b.status().ToString();
  // Another stream of the same root is independent.
  EXPECT_TRUE(Journal::Open(dir.path(), "watchdog").ok());
}

TEST(Journal, InvalidStreamNamesAreRejected) {
  TempDir dir;
  for (const char* bad : {"", "..", "a/b"}) {
    auto j = Journal::Open(dir.path(), bad);
    EXPECT_FALSE(j.ok()) << bad;
    EXPECT_EQ(j.status().code(), Status::Code::kInvalidArgument);
  }
}

TEST(Journal, StoresAndLoadsTheNewestSnapshot) {
  TempDir dir;
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok());
  auto none = (*j)->LatestSnapshot();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE((*j)->Append(GaugeEvent("g", i), Durability::kBuffered).ok());
  ASSERT_TRUE((*j)->PutSnapshot(4, Bytes(std::string_view("four"))).ok());
  ASSERT_TRUE((*j)->PutSnapshot(9, Bytes(std::string_view("nine"))).ok());
  EXPECT_FALSE((*j)->PutSnapshot(11, Bytes(std::string_view("future"))).ok());
  auto latest = (*j)->LatestSnapshot();
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->seq, 9u);
  EXPECT_EQ((*latest)->bytes, "nine");
}

TEST(Journal, ACorruptedRecordIsReportedAndSkipped) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    for (int i = 1; i <= 5; ++i)
      ASSERT_TRUE((*j)->Append(GaugeEvent("g", i), Durability::kDurable).ok());
  }
  {
    // Damage record 3 behind the journal's back, through RocksDB itself.
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::ColumnFamilyOptions cfo;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir / "app",
                                  {{rocksdb::kDefaultColumnFamilyName, cfo}, {"snapshots", cfo}},
                                  &handles, &raw)
                    .ok());
    std::string key("\0\0\0\0\0\0\0\x03", 8);
    std::string value;
    ASSERT_TRUE(raw->Get(rocksdb::ReadOptions(), key, &value).ok());
    for (size_t i = 4; i < value.size(); i += 3) value[i] = static_cast<char>(value[i] ^ 0x5a);
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), key, value).ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<BadRecord> bad;
  std::vector<uint64_t> good;
  ScanOptions so;
  so.on_bad = [&](const BadRecord& b) { bad.push_back(b); };
  ASSERT_TRUE((*r)->Scan(so,
                         [&](const Record& rec) {
                           good.push_back(rec.seq);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(good, (std::vector<uint64_t>{1, 2, 4, 5}));
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].seq, 3u);
  EXPECT_EQ(bad[0].stream, "app");
  EXPECT_FALSE(bad[0].reason.empty());

  std::vector<BadRecord> problems;
  auto checked = (*r)->Verify([&](const BadRecord& b) { problems.push_back(b); });
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(*checked, 5u);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].seq, 3u);
}

// The stream "app" of `dir` after its log was cut as a kill cuts it: readers
// see its 20 events and nothing bad, and a writer opens it without a word
// and numbers on from 21 (no jump: nothing was damaged).
void ExpectTwentyEventsAndNoDamage(const TempDir& dir) {
  std::vector<std::string> bad;
  {
    auto r = Reader::Open(dir.path(), "app");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->last_seq(), 20u);
    ScanOptions scan;
    scan.on_bad = [&](const BadRecord& b) { bad.push_back(b.reason); };
    uint64_t n = 0;
    EXPECT_TRUE((*r)->Scan(scan, [&](const Record&) { return ++n, true; }).ok());
    EXPECT_EQ(n, 20u);
  }
  EXPECT_TRUE(bad.empty()) << bad.front();
  auto j = Journal::Open(dir.path(), "app");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  const std::vector<std::string> warnings = (*j)->TakeWarnings();
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ((*j)->last_seq(), 20u);
  EXPECT_EQ(ReadAll(**j).size(), 20u);
  auto next = (*j)->Append(GaugeEvent("g", 99), Durability::kDurable);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 21u);
}

// A stream's write-ahead log as a writer killed with -9 leaves it: the
// records it wrote, and the rest of the space preallocated for the log, in
// zeros (owner_only_fs.cpp). With `torn`, the write of one more record was
// cut short by the kill between them: its header (a length of 100 bytes)
// and the first 30 of them.
void ExpectKilledWritersLogOpensWhole(bool torn) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE((*j)->Append(GaugeEvent("g", i), Durability::kDurable).ok());
    }
  }
  std::vector<std::string> logs;
  for (const auto& e : std::filesystem::directory_iterator(dir / "app")) {
    if (e.path().extension() == ".log") logs.push_back(e.path().string());
  }
  ASSERT_EQ(logs.size(), 1u);
  std::string bytes = testing::ReadFile(logs[0]);
  ASSERT_LT(bytes.size(), 32768u - 64);  // in the first block: a record may start after it
  if (torn) bytes += std::string("\x5a\xa5\x3c\xc3\x64\x00\x01", 7) + std::string(30, 'x');
  bytes += std::string(1 << 20, '\0');
  testing::WriteFile(logs[0], bytes);
  ExpectTwentyEventsAndNoDamage(dir);
}

TEST(PreallocatedLog, ZerosAfterTheLastRecordAreTheLogsEnd) {
  ExpectKilledWritersLogOpensWhole(false);
}

// Before zeros, a torn record would fail its checksum with bytes after it,
// which the strict open takes for damage in the middle of the log: it is
// read as cut short instead, the torn tail of any crash.
TEST(PreallocatedLog, ATornLastRecordBeforeZerosIsATornTailNotDamage) {
  ExpectKilledWritersLogOpensWhole(true);
}

// A kill can cut a write at any page boundary, also inside the header of a
// record's next fragment: a batch larger than a log block is split into
// fragments, each with its own header. A header cut short before zeros is a
// torn tail too (RocksDB reads one cut short at the end of a log as such),
// not a record gone bad in the middle of its batch. `kept` header bytes
// survive: the checksum's, or with its length too.
void ExpectTornFragmentHeaderIsATornTail(size_t kept) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE((*j)->Append(GaugeEvent("g", i), Durability::kDurable).ok());
    }
    // One batch of about 40 KiB: its first fragment fills the first block,
    // the next one starts the second block with its header.
    std::vector<std::string> events;
    for (int i = 0; i < 40; ++i) {
      fb::EventT e = GaugeEvent(std::string(1000, static_cast<char>('a' + i % 26)), i);
      events.push_back(EncodeEvent(std::move(e)));
    }
    std::vector<std::span<const uint8_t>> spans;
    for (const auto& e : events) spans.push_back(Bytes(e));
    ASSERT_TRUE((*j)->AppendAll(spans, Durability::kDurable).ok());
  }
  std::vector<std::string> logs;
  for (const auto& e : std::filesystem::directory_iterator(dir / "app")) {
    if (e.path().extension() == ".log") logs.push_back(e.path().string());
  }
  ASSERT_EQ(logs.size(), 1u);
  std::string bytes = testing::ReadFile(logs[0]);
  ASSERT_GT(bytes.size(), 32768u + 7) << "the batch should reach the second block";
  const std::string header = bytes.substr(32768, 7);
  ASSERT_TRUE(header[6] == 3 || header[6] == 4) << "a middle or last fragment starts block 2";
  // As the kill left it: the header's first bytes, then zeros.
  bytes.resize(32768);
  bytes += header.substr(0, kept);
  bytes += std::string(1 << 20, '\0');
  testing::WriteFile(logs[0], bytes);
  ExpectTwentyEventsAndNoDamage(dir);
}

TEST(PreallocatedLog, AFragmentHeaderCutAfterItsChecksumIsATornTail) {
  ExpectTornFragmentHeaderIsATornTail(4);
}

TEST(PreallocatedLog, AFragmentHeaderCutAfterItsLengthIsATornTail) {
  ExpectTornFragmentHeaderIsATornTail(6);
}

}  // namespace
}  // namespace blackbox
