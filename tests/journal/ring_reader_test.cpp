// Readers read a ring-mode writer's ring (<stream>/RING, journal/src/reader.cpp):
// the events its drain has not written to the database yet are seen while
// the writer lives and after it was killed, and nothing else of the ring is.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "blackbox/journal.h"
#include "process.h"
#include "ring.h"
#include "ring_hold_writer.h"
#include "test_util.h"

namespace blackbox {
namespace {

using testing::TempDir;

std::string Gauge(std::string_view stream, std::string_view name, double value) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto g = fb::CreateGaugeDirect(fbb, std::string(name).c_str(), value);
  FinishEvent(fbb, stream, fb::Severity::Info, fb::Payload::Gauge, g.Union());
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

// The events a reader of the stream sees, as (seq, gauge value).
std::vector<std::pair<uint64_t, double>> Seen(const Reader& r, const ScanOptions& o = {}) {
  std::vector<std::pair<uint64_t, double>> out;
  EXPECT_TRUE(r.Scan(o, [&](const Record& rec) {
                 const auto* g = rec.event->payload_as_Gauge();
                 out.emplace_back(rec.seq, g ? g->value() : -1);
                 return true;
               }).ok());
  return out;
}

// Verify's problems, and the records it counted.
std::vector<std::string> Problems(const Reader& r, uint64_t* checked) {
  std::vector<std::string> out;
  auto n = r.Verify([&](const BadRecord& b) { out.push_back(b.reason); });
  EXPECT_TRUE(n.ok());
  *checked = n.ok() ? *n : 0;
  return out;
}

// The events in the stream's database itself, read with RocksDB directly.
size_t DatabaseEvents(const std::string& stream_dir) {
  rocksdb::DBOptions options;
  std::vector<std::string> names;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(options, stream_dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(options, stream_dir, cfs, &handles, &raw).ok());
  if (raw == nullptr) return 0;
  std::unique_ptr<rocksdb::DB> db(raw);
  size_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, db->DefaultColumnFamily()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  it.reset();
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  return n;
}

// ring_hold_child with its drain held, appending on command.
class HeldWriter : public testing::RingHoldWriter {
 public:
  HeldWriter(const std::string& root, const std::string& stream)
      : RingHoldWriter(RING_HOLD_CHILD, root, stream, "held") {}
};

TEST(RingReader, ReaderSeesALiveWritersEventsBeforeTheDrainWritesThem) {
  TempDir dir;
  HeldWriter writer(dir.path(), "app");
  ASSERT_EQ(writer.Append(5), 5u);
  // All five are in the ring only.
  EXPECT_EQ(DatabaseEvents(dir / "app"), 0u);

  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)->has_ring());
  EXPECT_EQ((*r)->last_seq(), 5u);
  EXPECT_EQ((*r)->first_seq(), 1u);
  const std::vector<std::pair<uint64_t, double>> five = {{1, 0}, {2, 1}, {3, 2}, {4, 3}, {5, 4}};
  EXPECT_EQ(Seen(**r), five);
  ScanOptions middle;
  middle.from_seq = 2;
  middle.until_seq = 4;
  EXPECT_EQ(Seen(**r, middle), (std::vector<std::pair<uint64_t, double>>{{2, 1}, {3, 2}, {4, 3}}));

  // Three more: a cheap ring re-read sees them, as does a refresh.
  ASSERT_EQ(writer.Append(3), 8u);
  EXPECT_EQ((*r)->last_seq(), 5u);
  EXPECT_TRUE((*r)->RefreshRing());
  EXPECT_EQ((*r)->last_seq(), 8u);
  EXPECT_EQ(Seen(**r).size(), 8u);
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ(Seen(**r).size(), 8u);
  uint64_t checked = 0;
  EXPECT_TRUE(Problems(**r, &checked).empty());
  EXPECT_EQ(checked, 8u);

  auto m = MergedReader::Open(dir.path());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE((*m)->has_rings());
  size_t merged = 0;
  MergedReader::Options after3;
  after3.after = {{"app", 3}};
  ASSERT_TRUE((*m)->Scan(after3,
                         [&](const Record& rec) {
                           EXPECT_EQ(rec.seq, 4 + merged);
                           ++merged;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(merged, 5u);
  EXPECT_EQ(DatabaseEvents(dir / "app"), 0u);
}

TEST(RingReader, ReaderSeesTheRingOfAWriterKilledBeforeItsDrainRan) {
  TempDir dir;
  {
    HeldWriter writer(dir.path(), "app");
    ASSERT_EQ(writer.Append(20), 20u);
    writer.Kill();
  }
  EXPECT_EQ(DatabaseEvents(dir / "app"), 0u);
  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto seen = Seen(**r);
  ASSERT_EQ(seen.size(), 20u);
  for (size_t k = 0; k < seen.size(); ++k) {
    EXPECT_EQ(seen[k].first, k + 1);
    EXPECT_EQ(seen[k].second, static_cast<double>(k));
  }
  uint64_t checked = 0;
  EXPECT_TRUE(Problems(**r, &checked).empty());
  EXPECT_EQ(checked, 20u);

  // The next writer ingests them under the same seqs: the view does not change.
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok()) << j.status().ToString();
  }
  EXPECT_EQ(DatabaseEvents(dir / "app"), 20u);
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ(Seen(**r), seen);
  EXPECT_FALSE((*r)->has_ring());  // the direct-path writer removed it
}

// A ring built by hand after two events in the database: intact events of
// the stream at 3 and 4, one of another stream at 5, more after it.
// A writer appending as fast as it can (`ring`: in ring mode, its drain
// running): every view, by Open, Refresh or (ring mode) RefreshRing, is the
// seqs 1..last with no gap and nothing reported, and never goes back.
// With `lanes`, the writer has that many ring lanes.
void ExpectBusyWriterViewsWithoutGaps(bool ring, size_t lanes = 0) {
  TempDir dir;
  int out = ::open((dir / "acks").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(out, 0);
  testing::RunOptions run;
  run.extra_env.push_back("BLACKBOX_TEST_RING_LANES=" + std::to_string(lanes));
  pid_t pid = testing::StartProcess(
      {JOURNAL_WRITER_CHILD, dir.path(), "app", "2", "0", "buffered", ring ? "65536" : "0"}, run,
      STDIN_FILENO, out, STDERR_FILENO);
  ::close(out);
  std::unique_ptr<Reader> reader;
  for (int i = 0; i < 500 && reader == nullptr; ++i) {
    if (auto r = Reader::Open(dir.path(), "app"); r.ok() && (*r)->last_seq() > 0) {
      reader = std::move(*r);
    } else {
      usleep(10'000);
    }
  }
  ASSERT_NE(reader, nullptr);
  uint64_t previous = 0, views = 0, from_ring = 0;
  std::vector<std::string> problems;
  auto check = [&](const Reader& r) {
    uint64_t expected = 1;
    EXPECT_TRUE(r.Scan({}, [&](const Record& rec) {
                   EXPECT_EQ(rec.seq, expected);
                   expected = rec.seq + 1;
                   return true;
                 }).ok());
    EXPECT_EQ(expected - 1, r.last_seq());
    EXPECT_GE(r.last_seq(), previous);
    previous = r.last_seq();
    ++views;
  };
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < end && !::testing::Test::HasFailure()) {
    ASSERT_TRUE(reader->Refresh().ok());
    check(*reader);
    for (int k = 0; ring && k < 5; ++k) {
      const uint64_t before = reader->last_seq();
      if (!reader->RefreshRing()) break;
      from_ring += reader->last_seq() - before;
      check(*reader);
    }
    uint64_t checked = 0;
    for (auto& p : Problems(*reader, &checked)) problems.push_back(std::move(p));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(problems.empty()) << problems.front();
  ::testing::Test::RecordProperty("views", std::to_string(views));
  ::testing::Test::RecordProperty("seqs_from_ring_rereads", std::to_string(from_ring));
  std::printf("%lu views up to seq %lu; %lu seqs first seen by RefreshRing\n",
              static_cast<unsigned long>(views), static_cast<unsigned long>(previous),
              static_cast<unsigned long>(from_ring));
}

TEST(RingReader, ReadersOfABusyRingModeWriterSeeEverySeqOnceWithNothingReported) {
  ExpectBusyWriterViewsWithoutGaps(true);
}

// The same with ring lanes: RING refers to the lanes' records.
TEST(RingReader, ReadersOfABusyWriterWithLanesSeeEverySeqOnceWithNothingReported) {
  ExpectBusyWriterViewsWithoutGaps(true, 2);
}

// The same beside a writer on the direct path, whose log a reader reads
// while it is written: the log is preallocated with its size, so the reader
// finds zeros where the writer has not written yet (see WalEnd).
TEST(RingReader, ReadersOfABusyDirectWriterSeeEverySeqOnceWithNothingReported) {
  ExpectBusyWriterViewsWithoutGaps(false);
}

TEST(RingReader, OnlyTheGapFreePrefixOfIntactEventsOfTheStreamIsShown) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    for (int i = 1; i <= 2; ++i) ASSERT_TRUE((*j)->Append(Bytes(Gauge("app", "db", i)), {}).ok());
  }
  const std::string stream_dir = dir / "app";
  internal::RingOptions o;
  o.size = 1 << 13;  // 32 slots of 256
  {
    auto ring = internal::Ring::Open(stream_dir, o, 3);
    ASSERT_TRUE(ring.ok());
    ASSERT_EQ((*ring)->Append(Bytes(Gauge("app", "ring", 3))).seq, 3u);
    ASSERT_EQ((*ring)->Append(Bytes(Gauge("app", "ring", 4))).seq, 4u);
    ASSERT_EQ((*ring)->Append(Bytes(Gauge("other", "ring", 5))).seq, 5u);
    ASSERT_EQ((*ring)->Append(Bytes(Gauge("app", "ring", 6))).seq, 6u);
  }
  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Seen(**r), (std::vector<std::pair<uint64_t, double>>{{1, 1}, {2, 2}, {3, 3}, {4, 4}}));
  uint64_t checked = 0;
  EXPECT_TRUE(Problems(**r, &checked).empty());
  EXPECT_EQ(checked, 4u);

  // Seq 4 torn (a byte of its payload changed): the prefix ends at 3.
  int fd = ::open((stream_dir + "/RING").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "\x55", 1, 4096 + 4 * 256 + 40), 1);
  ::close(fd);
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ((*r)->last_seq(), 3u);
  EXPECT_TRUE(Problems(**r, &checked).empty());

  // A marker (its event in the writer's memory) is not an event to show.
  {
    auto ring = internal::Ring::Open(stream_dir, o, 3);
    ASSERT_TRUE(ring.ok());
    ASSERT_EQ((*ring)->Append(Bytes(Gauge("app", "ring", 3)), /*kSpilledFlag*/ 1).seq, 3u);
  }
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ((*r)->last_seq(), 2u);
}

TEST(RingReader, ARingThatDoesNotContinueTheDatabaseIsLeftOut) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    for (int i = 1; i <= 2; ++i) ASSERT_TRUE((*j)->Append(Bytes(Gauge("app", "db", i)), {}).ok());
  }
  const std::string stream_dir = dir / "app";
  {
    internal::RingOptions o;
    o.size = 1 << 13;
    auto ring = internal::Ring::Open(stream_dir, o, 10);  // 3..9 are nowhere
    ASSERT_TRUE(ring.ok());
    ASSERT_EQ((*ring)->Append(Bytes(Gauge("app", "ring", 10))).seq, 10u);
  }
  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->last_seq(), 2u);
  uint64_t checked = 0;
  EXPECT_TRUE(Problems(**r, &checked).empty());  // no gap reported: none is known
  EXPECT_EQ(checked, 2u);
}

TEST(RingReader, AnUnreadableRingIsIgnored) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append(Bytes(Gauge("app", "db", 1)), {}).ok());
  }
  const std::string ring = dir / "app/RING";
  for (const std::string& contents :
       {std::string("not a ring"), std::string(8192, '\0'), std::string(4096, '\x7f')}) {
    testing::WriteFile(ring, contents);
    ::chmod(ring.c_str(), 0600);
    auto r = Reader::Open(dir.path(), "app");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)->last_seq(), 1u);
    EXPECT_EQ(Seen(**r).size(), 1u);
    uint64_t checked = 0;
    EXPECT_TRUE(Problems(**r, &checked).empty());
  }
  // A symbolic link named RING is not followed.
  ::unlink(ring.c_str());
  ASSERT_EQ(::symlink("/dev/zero", ring.c_str()), 0);
  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->last_seq(), 1u);

  // A real ring continuing the database, then spoilt in turn.
  ::unlink(ring.c_str());
  internal::RingOptions o;
  o.size = 1 << 13;
  {
    auto written = internal::Ring::Open(dir / "app", o, 2);
    ASSERT_TRUE(written.ok());
    ASSERT_EQ((*written)->Append(Bytes(Gauge("app", "ring", 2))).seq, 2u);
  }
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_EQ((*r)->last_seq(), 2u);  // read when intact
  const std::string intact = testing::ReadFile(ring);
  auto spoilt = [&](const char* what) {
    SCOPED_TRACE(what);
    ASSERT_TRUE((*r)->Refresh().ok());
    EXPECT_EQ((*r)->last_seq(), 1u);
    uint64_t checked = 0;
    EXPECT_TRUE(Problems(**r, &checked).empty());
  };
  ASSERT_EQ(::chmod(ring.c_str(), 0644), 0);
  spoilt("readable by others");
  ASSERT_EQ(::chmod(ring.c_str(), 0600), 0);
  ASSERT_EQ(::truncate(ring.c_str(), 4096 + 300), 0);
  spoilt("truncated");
  if (::geteuid() == 0) {
    testing::WriteFile(ring, intact);
    ASSERT_EQ(::chmod(ring.c_str(), 0600), 0);
    ASSERT_TRUE((*r)->Refresh().ok());
    ASSERT_EQ((*r)->last_seq(), 2u);  // intact again
    ASSERT_EQ(::chown(ring.c_str(), 65534, 65534), 0);
    spoilt("another user's");
  }
}

}  // namespace
}  // namespace blackbox
