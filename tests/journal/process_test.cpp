// Process-level journal tests: a real writer process, killed with SIGKILL at a
// random moment, or read while it writes.
#include "process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <random>
#include <sstream>

#include "blackbox/journal.h"
#include "test_util.h"

namespace blackbox {
namespace {

using testing::TempDir;

// A running journal_writer_child whose stdout we read line by line.
class WriterChild {
 public:
  WriterChild(const std::string& root, const std::string& stream, int threads, long per_thread,
              const std::string& mode) {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    const std::vector<std::string> argv = {
        JOURNAL_WRITER_CHILD,       root, stream, std::to_string(threads),
        std::to_string(per_thread), mode};
    EXPECT_NO_THROW(pid_ = testing::StartProcess(argv, {}, STDIN_FILENO, fds[1], STDERR_FILENO));
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~WriterChild() {
    Kill();
    if (out_ != nullptr) fclose(out_);
  }
  // Reads one acknowledged line; false at EOF.
  bool ReadAck(uint64_t* seq, char* kind, double* value) {
    char buf[128];
    if (fgets(buf, sizeof buf, out_) == nullptr) return false;
    std::string line(buf);
    if (line.empty() || line.back() != '\n') return false;  // torn by the kill
    std::istringstream in(line);
    in >> *seq >> *kind >> *value;
    return !in.fail();
  }
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

std::map<uint64_t, double> ReadStream(const std::string& root, const std::string& stream,
                                      std::vector<BadRecord>* problems) {
  std::map<uint64_t, double> stored;
  auto r = Reader::Open(root, stream);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return stored;
  auto checked = (*r)->Verify([&](const BadRecord& b) { problems->push_back(b); });
  EXPECT_TRUE(checked.ok());
  (*r)->Scan({}, [&](const Record& rec) {
    stored[rec.seq] = rec.event->payload_as_Gauge()->value();
    return true;
  });
  return stored;
}

TEST(JournalProcess, SigkillMidStreamLosesNoAcknowledgedEvent) {
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 3; ++round) {
    TempDir dir;
    std::map<uint64_t, std::pair<char, double>> acked;
    {
      WriterChild child(dir.path(), "app", 4, 0, "mixed");
      const int kill_after = std::uniform_int_distribution<int>(50, 3000)(rng);
      uint64_t seq;
      char kind;
      double value;
      for (int i = 0; i < kill_after && child.ReadAck(&seq, &kind, &value); ++i) {
        acked[seq] = {kind, value};
      }
      child.Kill();
      // Lines that were complete in the pipe when the child died were
      // acknowledged too.
      while (child.ReadAck(&seq, &kind, &value)) acked[seq] = {kind, value};
    }
    ASSERT_FALSE(acked.empty());
    std::vector<BadRecord> problems;
    auto stored = ReadStream(dir.path(), "app", &problems);
    EXPECT_TRUE(problems.empty()) << problems.front().reason;
    for (const auto& [seq, kv] : acked) {
      auto it = stored.find(seq);
      ASSERT_NE(it, stored.end()) << "acknowledged " << kv.first << " event seq " << seq << " lost";
      EXPECT_EQ(it->second, kv.second) << "seq " << seq;
    }
    // Gap-free from 1 to the last stored seq.
    ASSERT_FALSE(stored.empty());
    EXPECT_EQ(stored.begin()->first, 1u);
    EXPECT_EQ(stored.rbegin()->first, stored.size());

    // The writer can reopen and continue the sequence.
    auto j = Journal::Open(dir.path(), "app");
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    EXPECT_EQ((*j)->last_seq(), stored.size());
  }
}

TEST(JournalProcess, AReaderSeesTheEventsOfALiveWriterInAnotherProcess) {
  TempDir dir;
  WriterChild child(dir.path(), "app", 1, 0, "buffered");
  uint64_t seq = 0;
  char kind;
  double value;
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(child.ReadAck(&seq, &kind, &value));
  const uint64_t seen_by_writer = seq;

  auto r = Reader::Open(dir.path(), "app");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE((*r)->last_seq(), seen_by_writer);
  uint64_t count = 0;
  (*r)->Scan({}, [&](const Record&) {
    ++count;
    return true;
  });
  EXPECT_GE(count, seen_by_writer);

  for (int i = 0; i < 200; ++i) ASSERT_TRUE(child.ReadAck(&seq, &kind, &value));
  ASSERT_TRUE((*r)->Refresh().ok());
  EXPECT_GE((*r)->last_seq(), seq);
  // The writer was never disturbed: it is still running and acknowledging.
  EXPECT_EQ(kill(child.pid(), 0), 0);
  ASSERT_TRUE(child.ReadAck(&seq, &kind, &value));
}

}  // namespace
}  // namespace blackbox
