// The tool reads a journal while another process appends to it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process.h"
#include "ring_hold_writer.h"
#include "tool_test_support.h"

namespace blackbox::tools::testing {
namespace {

using nlohmann::json;

// A child process we started; killed and reaped if the test ends early.
class Child {
 public:
  Child(std::vector<std::string> argv, int stdout_fd = -1) {
    ::blackbox::testing::RunOptions options;
    options.env = ToolEnvironment();
    pid_ = ::blackbox::testing::StartProcess(
        argv, options, STDIN_FILENO, stdout_fd >= 0 ? stdout_fd : STDOUT_FILENO, STDERR_FILENO);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
  }
  void Signal(int sig) { kill(pid_, sig); }
  // Exit status, or 128 + signal.
  int Wait() {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0) {
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

// Every line parses, and the seqs are 1, 2, 3, … with no gap.
size_t CheckConsecutive(const std::string& out) {
  uint64_t expected = 1;
  for (const auto& line : Lines(out)) {
    json j = json::parse(line);
    EXPECT_EQ(j["seq"], expected) << line;
    ++expected;
  }
  return expected - 1;
}

TEST(LiveWriter, ReplayReadsACommittedPrefixWhileAnotherProcessAppends) {
  TempDir dir;
  std::string root = dir / "journal";
  constexpr int kEvents = 4000;
  Child writer({TOOLS_TEST_WRITER, root, "app", std::to_string(kEvents), "200"});
  // Wait for the stream to exist.
  for (int i = 0; i < 500 && Lines(RunTool({"--journal", root, "replay", "--json"}).out).empty();
       ++i) {
    usleep(10'000);
  }
  size_t previous = 0;
  for (int i = 0; i < 5; ++i) {
    ToolResult r = RunTool({"--journal", root, "replay", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    size_t seen = CheckConsecutive(r.out);
    EXPECT_GE(seen, previous);
    previous = seen;
  }
  EXPECT_EQ(writer.Wait(), 0);
  EXPECT_EQ(CheckConsecutive(RunTool({"--journal", root, "replay", "--json"}).out),
            size_t{kEvents});
}

TEST(LiveWriter, FollowPrintsEventsAsTheyAreAppended) {
  TempDir dir;
  std::string root = dir / "journal";
  constexpr int kEvents = 1500;
  // A first event, so that the stream exists when follow starts.
  Child first({TOOLS_TEST_WRITER, root, "app", "1", "0"});
  ASSERT_EQ(first.Wait(), 0);

  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  Child follow({BLACKBOX_TOOL, "--journal", root, "replay", "--json", "--follow"}, pipe_fds[1]);
  close(pipe_fds[1]);
  Child writer({TOOLS_TEST_WRITER, root, "app", std::to_string(kEvents), "300"});

  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  size_t lines = 0;
  while (lines < kEvents + 1 && std::chrono::steady_clock::now() < deadline) {
    pollfd p{pipe_fds[0], POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char buf[65536];
    ssize_t n = read(pipe_fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    lines = static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
  }
  EXPECT_EQ(writer.Wait(), 0);
  follow.Signal(SIGTERM);
  EXPECT_EQ(follow.Wait(), 128 + SIGTERM) << "follow exited on its own";
  close(pipe_fds[0]);
  // The first writer's event, then every event of the second, in order.
  std::vector<std::string> all = Lines(out);
  ASSERT_EQ(all.size(), size_t{kEvents + 1});
  EXPECT_EQ(CheckConsecutive(out), size_t{kEvents + 1});
}

// ring_hold_child (tests/journal), on the app stream, with the tool's
// environment; its drain "held" or "draining".
// With `lanes`, the writer has that many ring lanes (its buffered appends
// then answer seq 0).
class RingWriter : public ::blackbox::testing::RingHoldWriter {
 public:
  RingWriter(const std::string& root, const std::string& mode, size_t lanes = 0)
      : RingHoldWriter(RING_HOLD_CHILD, root, "app", mode, Options(lanes)) {}

 private:
  static ::blackbox::testing::RunOptions Options(size_t lanes) {
    ::blackbox::testing::RunOptions options;
    options.env = ToolEnvironment();
    options.extra_env.push_back("BLACKBOX_TEST_RING_LANES=" + std::to_string(lanes));
    return options;
  }
};

// With `lanes`, the 20 events are still in the writer's lanes, unnumbered.
void ExpectReplayAndVerifyReadAKilledWritersRing(size_t lanes) {
  TempDir dir;
  std::string root = dir / "journal";
  {
    RingWriter writer(root, "held", lanes);
    ASSERT_EQ(writer.Append(20), lanes == 0 ? 20u : 0u);
    writer.Kill();
  }
  ToolResult replay = RunTool({"--journal", root, "replay", "--json"});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_EQ(CheckConsecutive(replay.out), size_t{20});
  ToolResult verify = RunTool({"--journal", root, "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST(LiveWriter, ReplayAndVerifyReadTheRingOfAWriterKilledBeforeItsDrainRan) {
  ExpectReplayAndVerifyReadAKilledWritersRing(0);
}

TEST(LiveWriter, ReplayAndVerifyReadTheLanesOfAWriterKilledBeforeItsDrainRan) {
  ExpectReplayAndVerifyReadAKilledWritersRing(4);
}

// The time from an append's return in a live ring-mode writer to its line
// from `replay --follow`, for a held drain (only the ring has it) and a
// running one. The bound is loose (a shared machine); the figures are
// recorded (follow_ms_<mode>: the slowest of kAppends).
// "lanes": a running drain and 2 ring lanes: an event is shown once moved
// from its lane into the ring.
TEST(LiveWriter, FollowShowsARingModeWritersEventWithinMilliseconds) {
  for (const std::string mode : {"held", "draining", "lanes"}) {
    SCOPED_TRACE(mode);
    TempDir dir;
    std::string root = dir / "journal";
    const size_t lanes = mode == "lanes" ? 2 : 0;
    RingWriter writer(root, mode == "held" ? "held" : "draining", lanes);
    ASSERT_EQ(writer.Append(1), lanes == 0 ? 1u : 0u);

    int pipe_fds[2];
    ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
    Child follow({BLACKBOX_TOOL, "--journal", root, "replay", "--json", "--follow"}, pipe_fds[1]);
    close(pipe_fds[1]);
    std::string out;
    // Reads follow's output until a line with `seq` (true) or the deadline.
    auto wait_for = [&](uint64_t seq, std::chrono::steady_clock::time_point deadline) {
      auto has = [&] {
        for (const auto& line : Lines(out)) {
          if (json::parse(line)["seq"] == seq) return true;
        }
        return false;
      };
      while (!has()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{pipe_fds[0], POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char buf[65536];
        ssize_t n = read(pipe_fds[0], buf, sizeof buf);
        if (n <= 0) return false;
        out.append(buf, static_cast<size_t>(n));
        // Only whole lines are parsed: wait for the rest of a cut one.
        while (!out.empty() && out.back() != '\n') {
          n = read(pipe_fds[0], buf, sizeof buf);
          if (n <= 0) return false;
          out.append(buf, static_cast<size_t>(n));
        }
      }
      return true;
    };
    ASSERT_TRUE(wait_for(1, std::chrono::steady_clock::now() + std::chrono::seconds(30))) << out;

    constexpr int kAppends = 20;
    std::vector<double> ms;
    for (int i = 0; i < kAppends; ++i) {
      const auto start = std::chrono::steady_clock::now();
      // One writing thread: the next seq, whether the append says so or
      // (in a lane) not yet.
      const uint64_t seq = static_cast<uint64_t>(i + 2);
      ASSERT_EQ(writer.Append(1), lanes == 0 ? seq : 0u);
      ASSERT_TRUE(wait_for(seq, start + std::chrono::seconds(2))) << "seq " << seq << ":\n" << out;
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
      usleep(3'000 + 1'000 * (i % 5));  // not in step with follow's polls
    }
    follow.Signal(SIGTERM);
    follow.Wait();
    close(pipe_fds[0]);
    EXPECT_EQ(CheckConsecutive(out), size_t{kAppends + 1});
    std::sort(ms.begin(), ms.end());
    char figures[64];
    std::snprintf(figures, sizeof figures, "median %.1f ms, max %.1f ms", ms[ms.size() / 2],
                  ms.back());
    RecordProperty("follow_ms_" + mode, figures);
    std::printf("replay --follow, %s drain: %s over %d appends\n", mode.c_str(), figures, kAppends);
  }
}

}  // namespace
}  // namespace blackbox::tools::testing
