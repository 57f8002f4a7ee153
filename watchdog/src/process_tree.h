// Resource use of a process and all of its descendants, read from /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace blackbox::watchdog {

struct TreeSample {
  uint64_t rss_bytes = 0;
  // utime + stime + cutime + cstime of every live process of the tree, in
  // clock ticks. Reaped descendants stay counted through their parent's
  // cutime/cstime, so the sum only grows while the root lives.
  uint64_t cpu_ticks = 0;
  int processes = 0;
  int threads = 0;
};

// Sums over `root` and its descendants, found through
// /proc/<pid>/task/<tid>/children (or, on kernels without those files, the
// ppid links of every /proc/<pid>/stat). nullopt when `root` does not exist.
std::optional<TreeSample> SampleProcessTree(pid_t root);

// The direct children of `pid` (zombies included: a child is listed until it
// is reaped), from the same /proc files or the ppid scan. Empty when `pid`
// is gone.
std::vector<pid_t> ChildProcesses(pid_t pid);

// Every descendant of `root`, `root` itself excluded, parents before their
// children. A snapshot: processes forked while it is taken may be missing.
// The walk does not enter `spared`: those processes and their trees are left
// out, including what they fork while the walk runs (subtracting a second
// walk of theirs would list those).
std::vector<pid_t> Descendants(pid_t root, std::span<const pid_t> spared = {});

// CPU in percent of one core between two samples taken `elapsed_ns` apart.
double CpuPercent(const TreeSample& before, const TreeSample& after, int64_t elapsed_ns);

}  // namespace blackbox::watchdog
