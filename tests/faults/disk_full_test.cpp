// Disk full: the journal lives on a small tmpfs that the test fills while an
// application on the recovery manager keeps appending. The application must
// keep running, say so once on stderr, count what it could not write, write
// again once space returns, and nothing written before may be damaged.
// Needs root (to mount the tmpfs); skipped with a message otherwise.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
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

}  // namespace
}  // namespace blackbox::faults
