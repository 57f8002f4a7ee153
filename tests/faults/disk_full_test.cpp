// Disk full: the journal lives on a small tmpfs that the test fills while an
// application on the recovery manager keeps appending. The application must
// keep running, say so once on stderr, count what it could not write, write
// again once space returns, and nothing written before may be damaged.
// Needs root (to mount the tmpfs); skipped with a message otherwise.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include "blackbox/journal.h"
#include "fault_support.h"

namespace blackbox::faults {
namespace {

using namespace std::chrono_literals;

// Writes zeros to `path` until the filesystem is full; returns the bytes written.
size_t FillUp(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  size_t total = 0;
  std::string chunk(64 * 1024, '\0');
  // Big chunks first, then ever smaller ones, so that not one byte is left.
  for (size_t size = chunk.size(); size >= 1; size /= 2) {
    while (true) {
      ssize_t n = write(fd, chunk.data(), size);
      if (n <= 0) break;
      total += static_cast<size_t>(n);
    }
  }
  fsync(fd);
  close(fd);
  return total;
}

// Writes zeros to `path` until only about `leave` bytes are free.
void FillLeaving(const std::string& dir, const std::string& path, size_t leave) {
  struct statvfs st {};
  ASSERT_EQ(statvfs(dir.c_str(), &st), 0);
  const size_t free_bytes = static_cast<size_t>(st.f_bavail) * st.f_frsize;
  ASSERT_GT(free_bytes, leave);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  std::string chunk(4096, '\0');
  for (size_t left = free_bytes - leave; left > 0;) {
    ssize_t n = write(fd, chunk.data(), std::min(left, chunk.size()));
    ASSERT_GT(n, 0);
    left -= static_cast<size_t>(n);
  }
  close(fd);
}

struct Batch {
  std::set<std::string> acked;  // "TAG i" messages the app says were journaled
  uint64_t failures = 0;        // journal_failures() at the end of the batch
  bool done = false;
};

// Sends `command` and collects its acks up to its "done" line.
Batch RunBatch(Child& app, const std::string& command) {
  Batch b;
  EXPECT_TRUE(app.WriteLine(command));
  while (auto line = app.ReadLine(60s)) {
    std::istringstream in(*line);
    std::string word, tag;
    in >> word >> tag;
    if (word == "ack") {
      long i;
      in >> i;
      b.acked.insert(fmt::format("{} {}", tag, i));
    } else if (word == "done") {
      std::string f;
      in >> f;
      b.failures = std::stoull(f.substr(f.find('=') + 1));
      b.done = true;
      break;
    }
  }
  return b;
}

int CountOccurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(DiskFull, AppKeepsRunningReportsOnceCountsAndResumesWithoutDamage) {
  TempDir dir;
  TmpfsMount disk(dir / "disk", 8 << 20);
  if (!disk.ok()) GTEST_SKIP() << "disk-full test skipped: " << disk.reason();
  const std::string root = disk.path() + "/journal";
  const std::string err_path = dir / "app.err";
  // The state file lives elsewhere: this test is about the journal.
  Child app({APP_CHILD, root, dir / "system_state.json"}, err_path);
  ASSERT_EQ(app.ReadLine(30s).value_or("<none>"), "start failures=0") << ReadFile(err_path);

  Batch before = RunBatch(app, "errors 50 pre");
  ASSERT_TRUE(before.done);
  ASSERT_EQ(before.acked.size(), 50u);
  ASSERT_EQ(before.failures, 0u);

  ASSERT_GT(FillUp(disk.path() + "/filler"), 0u);
  // RocksDB has log space reserved ahead; the app writes (4 KiB messages) until
  // the journal runs into the full disk.
  Batch full = RunBatch(app, "until-failure full 4096 5000");
  ASSERT_TRUE(full.done) << "the app died when the disk filled up: " << ReadFile(err_path);
  ASSERT_GT(full.failures, 0u) << "the journal never hit the full disk";
  // Still (nearly) full, and still no crash. The journal recovers after a
  // failed write by reopening RocksDB, which can itself free space (the old
  // log is flushed and dropped), so some of these may succeed: every append
  // is either acknowledged (and checked for below) or counted as lost.
  Batch still = RunBatch(app, "errors 20 still");
  ASSERT_TRUE(still.done) << ReadFile(err_path);
  // (A report is several appends; one that failed counts at least once.)
  EXPECT_LE(20u - still.acked.size(), still.failures - full.failures);
  EXPECT_EQ(kill(app.pid(), 0), 0);

  std::string err = ReadFile(err_path);
  EXPECT_EQ(CountOccurrences(err, "cannot write the journal"), 1) << err;
  EXPECT_EQ(CountLines(err), 1) << err;

  // Space returns: writes resume.
  ASSERT_EQ(unlink((disk.path() + "/filler").c_str()), 0);
  Batch after = RunBatch(app, "errors 50 post");
  ASSERT_TRUE(after.done) << ReadFile(err_path);
  EXPECT_EQ(after.acked.size(), 50u) << "writes did not resume once space returned";
  EXPECT_EQ(after.failures, still.failures) << "appends still fail with free space";

  ASSERT_TRUE(app.WriteLine("quit"));
  auto status = app.Wait(30s);
  ASSERT_TRUE(status.has_value()) << "the app did not exit";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  // The loss was reported once, however long it lasted.
  err = ReadFile(err_path);
  EXPECT_EQ(CountOccurrences(err, "cannot write the journal"), 1) << err;

  // Nothing already written was damaged; everything acknowledged is there.
  ProcessResult verify = RunProcess({BLACKBOX_TOOL, "--journal", root, "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  std::set<std::string> stored;
  auto reader = Reader::Open(root, "app");
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  uint64_t expected = (*reader)->first_seq();
  ASSERT_TRUE((*reader)
                  ->Scan({},
                         [&](const Record& r) {
                           EXPECT_EQ(r.seq, expected++) << "sequence gap";
                           if (const fb::Error* e = r.event->payload_as_Error();
                               e != nullptr && e->message()) {
                             // "TAG i" without the padding.
                             std::istringstream words(e->message()->str());
                             std::string tag, i;
                             words >> tag >> i;
                             stored.insert(tag + " " + i);
                           }
                           return true;
                         })
                  .ok());
  for (const Batch* b : {&before, &full, &still, &after}) {
    for (const std::string& m : b->acked) EXPECT_TRUE(stored.contains(m)) << m << " is missing";
  }
}

// A writer that starts on a full disk gets a closed journal, not an error:
// its appends fail and are counted until space returns, then it opens and
// numbers on from what is on disk.
TEST(DiskFull, AJournalOpenedOnAFullDiskOpensWhenSpaceReturns) {
  TempDir dir;
  TmpfsMount disk(dir / "disk", 2 << 20);
  if (!disk.ok()) GTEST_SKIP() << "disk-full test skipped: " << disk.reason();
  const std::string root = disk.path() + "/journal";
  auto event = [](int i) {
    fb::ErrorT e;
    e.message = fmt::format("event {}", i);
    fb::EventT ev;
    ev.payload.Set(std::move(e));
    return ev;
  };
  {
    auto journal = Journal::Open(root, "app");
    ASSERT_TRUE(journal.ok()) << journal.status().ToString();
    for (int i = 1; i <= 3; ++i)
      ASSERT_TRUE((*journal)->Append(event(i), Durability::kDurable).ok());
  }
  ASSERT_GT(FillUp(disk.path() + "/filler"), 0u);

  auto journal = Journal::Open(root, "app");
  ASSERT_TRUE(journal.ok()) << "a full disk refused the writer: " << journal.status().ToString();
  Journal& j = **journal;
  auto failed = j.Append(event(4), Durability::kDurable);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(j.failed_appends(), 1u);

  ASSERT_EQ(unlink((disk.path() + "/filler").c_str()), 0);
  auto seq = j.Append(event(5), Durability::kDurable);
  ASSERT_TRUE(seq.ok()) << "writing did not resume: " << seq.status().ToString();
  EXPECT_EQ(*seq, 4u) << "numbering must continue after what is on disk";
  EXPECT_EQ(j.last_seq(), 4u);
}

// The demo order router on a nearly full 2 MB disk: its journal runs out of
// space while three threads write (orders, handled errors, gauges, health
// samples). It used to die on RocksDB's assertion (exit 134); it must finish
// its orders and exit 0, having said once that it cannot write the journal.
TEST(DiskFull, DemoOnANearlyFullDiskFinishesItsOrders) {
  TempDir dir;
  TmpfsMount disk(dir / "disk", 2 << 20);
  if (!disk.ok()) GTEST_SKIP() << "disk-full test skipped: " << disk.reason();
  FillLeaving(disk.path(), disk.path() + "/filler", 144 << 10);
  const std::string root = disk.path() + "/journal";
  int reported = 0;
  for (int run = 1; run <= 2; ++run) {
    SCOPED_TRACE(fmt::format("run {}", run));
    ProcessResult demo = RunProcess({BLACKBOX_DEMO, "--journal", root, "--orders", "300",
                                     "--interval-ms", "5", "--error-every", "3"},
                                    WithTimeout(120s));
    ASSERT_FALSE(demo.timed_out);
    EXPECT_EQ(demo.signal, 0) << demo.err.substr(demo.err.size() > 3000 ? demo.err.size() - 3000
                                                                        : 0);
    EXPECT_EQ(demo.exit_code, 0);
    EXPECT_NE(demo.out.find("stopping:"), std::string::npos) << demo.out;
    // Said once per run at most, however many writes failed.
    const int said = CountOccurrences(demo.err, "cannot write the journal");
    EXPECT_LE(said, 1) << demo.err;
    reported += said;
  }
  EXPECT_GE(reported, 1) << "the journal never ran out of space";
  // The disk really filled up (else this test proves nothing).
  struct statvfs st {};
  ASSERT_EQ(statvfs(disk.path().c_str(), &st), 0);
  EXPECT_LT(static_cast<size_t>(st.f_bavail) * st.f_frsize, 64u << 10);
  // Space returns: what was written is intact.
  ASSERT_EQ(unlink((disk.path() + "/filler").c_str()), 0);
  ProcessResult verify = RunProcess({BLACKBOX_TOOL, "--journal", root, "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// The watchdog with its journal on a disk that is full: it must go on
// supervising (the child runs to its end and the watchdog exits 0), not die
// on RocksDB's assertion and take its child with it.
TEST(DiskFull, WatchdogOnAFullDiskKeepsSupervisingItsChild) {
  TempDir dir;
  TmpfsMount disk(dir / "disk", 2 << 20);
  if (!disk.ok()) GTEST_SKIP() << "disk-full test skipped: " << disk.reason();
  const std::string root = disk.path() + "/journal";
  const std::string marker = dir / "child-finished";
  const std::vector<std::string> watchdog = {BLACKBOX_WATCHDOG,
                                             "--journal",
                                             root,
                                             "--state-dir",
                                             dir / "state",
                                             "--health-check-interval",
                                             "0.01",
                                             "--restart-delay",
                                             "0.01"};
  // A first run on free space creates the journal.
  std::vector<std::string> first = watchdog;
  first.insert(first.end(), {"--", "/bin/true"});
  ProcessResult created = RunProcess(first, WithTimeout(60s));
  ASSERT_EQ(created.exit_code, 0) << created.err;

  FillLeaving(disk.path(), disk.path() + "/filler", 8 << 10);
  std::vector<std::string> argv = watchdog;
  argv.insert(argv.end(), {"--", "/bin/sh", "-c",
                           "i=0; while [ $i -lt 40 ]; do echo \"ERROR line $i\"; sleep 0.02; "
                           "i=$((i+1)); done; echo done > " +
                               marker});
  ProcessResult r = RunProcess(argv, WithTimeout(60s));
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(marker), "done\n")
      << "the child did not run to its end; watchdog stderr: " << r.err;
  EXPECT_NE(r.err.find("journal"), std::string::npos) << "the journal's failure was not reported";

  ASSERT_EQ(unlink((disk.path() + "/filler").c_str()), 0);
  ProcessResult verify = RunProcess({BLACKBOX_TOOL, "--journal", root, "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace blackbox::faults
