// The walks of the watchdog's process tree (process_tree.h), over real
// processes forked by the test.
#include "process_tree.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace blackbox::watchdog {
namespace {

// Waits for a signal to end it.
[[noreturn]] void Idle() {
  while (true) ::pause();
}

// A process with one child of its own; both wait until killed. The child's
// pid comes back through a pipe.
pid_t ForkPair(pid_t* grandchild) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const pid_t inner = ::fork();
    if (inner == 0) Idle();
    (void)!::write(fds[1], &inner, sizeof inner);
    Idle();
  }
  ::close(fds[1]);
  if (::read(fds[0], grandchild, sizeof *grandchild) != sizeof *grandchild) *grandchild = -1;
  ::close(fds[0]);
  return pid;
}

// Forks short-lived children without a pause: its tree changes all the time.
pid_t ForkForker() {
  const pid_t pid = ::fork();
  if (pid == 0) {
    while (true) {
      const pid_t c = ::fork();
      if (c == 0) ::_exit(0);
      if (c > 0) ::waitpid(c, nullptr, 0);
    }
  }
  return pid;
}

void KillAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// The sweep after a child's death spares the new child. What the new child
// forks while the walk runs must not be listed: a walk of the spared tree
// taken first and subtracted would list it, and the sweep would kill it.
TEST(ProcessTree, DescendantsNeverListASparedTreeNorWhatItForksMeanwhile) {
  pid_t other_child = -1;
  const pid_t other = ForkPair(&other_child);
  ASSERT_GT(other, 0);
  ASSERT_GT(other_child, 0);
  const pid_t spared = ForkForker();
  ASSERT_GT(spared, 0);
  // Until the forker has children of its own.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Descendants(spared).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }

  std::vector<pid_t> expected = {other, other_child};
  std::sort(expected.begin(), expected.end());
  const pid_t spare[] = {spared};
  int wrong = 0;
  std::vector<pid_t> first_wrong;
  for (int i = 0; i < 500; ++i) {
    std::vector<pid_t> got = Descendants(::getpid(), spare);
    std::sort(got.begin(), got.end());
    if (got != expected) {
      if (wrong++ == 0) first_wrong = got;
    }
  }
  // Not spared, the forker and (at times) its children are listed.
  std::vector<pid_t> all = Descendants(::getpid());
  const bool forker_listed = std::find(all.begin(), all.end(), spared) != all.end();

  KillAndReap(spared);
  KillAndReap(other);
  KillAndReap(other_child);  // re-parented to init or a subreaper; the kill is what counts

  EXPECT_EQ(wrong, 0) << "of 500 walks; the first listed " << first_wrong.size() << " processes";
  EXPECT_TRUE(forker_listed);
}

TEST(ProcessTree, DescendantsListParentsBeforeTheirChildren) {
  pid_t grandchild = -1;
  const pid_t child = ForkPair(&grandchild);
  ASSERT_GT(child, 0);
  std::vector<pid_t> got = Descendants(::getpid());
  KillAndReap(child);
  ::kill(grandchild, SIGKILL);
  auto c = std::find(got.begin(), got.end(), child);
  auto g = std::find(got.begin(), got.end(), grandchild);
  ASSERT_NE(c, got.end());
  ASSERT_NE(g, got.end());
  EXPECT_LT(c, g);
}

}  // namespace
}  // namespace blackbox::watchdog
