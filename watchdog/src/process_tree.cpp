#include "process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unique_fd.h"

namespace blackbox::watchdog {
namespace {

struct ProcStat {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t cpu_ticks = 0;
  uint64_t rss_pages = 0;
  int threads = 0;
};

// Parses /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
std::optional<ProcStat> ReadStat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return std::nullopt;
  std::string_view text(buf, static_cast<size_t>(n));
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  text.remove_prefix(close + 1);
  // Fields from 3 (state) on; index i below is field number i + 3.
  uint64_t fields[22] = {};
  int index = 0;
  size_t pos = 0;
  while (index < 22 && pos < text.size()) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    if (index > 0) {
      std::from_chars(text.data() + pos, text.data() + end, fields[index]);
    }
    ++index;
    pos = end;
  }
  if (index < 22) return std::nullopt;
  ProcStat stat;
  stat.pid = pid;
  stat.ppid = static_cast<pid_t>(fields[4 - 3]);
  stat.cpu_ticks = fields[14 - 3] + fields[15 - 3] + fields[16 - 3] + fields[17 - 3];
  stat.threads = static_cast<int>(fields[20 - 3]);
  stat.rss_pages = fields[24 - 3];
  return stat;
}

// Reads a small /proc file into `out`. False when it cannot be read.
bool ReadSmallFile(const char* path, std::string& out) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  out.clear();
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buf, static_cast<size_t>(n));
  }
}

void ParsePids(std::string_view text, std::vector<pid_t>& out) {
  while (!text.empty()) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\n')) text.remove_prefix(1);
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
    if (ec != std::errc()) return;
    out.push_back(pid);
    text.remove_prefix(static_cast<size_t>(end - text.data()));
  }
}

// The children of `pid` from /proc/<pid>/task/<tid>/children (a child is
// listed under the thread that forked it). nullopt when the kernel has no
// such files (CONFIG_PROC_CHILDREN off) or `pid` is gone.
std::optional<std::vector<pid_t>> ChildrenOf(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR* dir = ::opendir(path);
  if (dir == nullptr) return std::nullopt;
  std::vector<pid_t> children;
  std::string text;
  bool any = false;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    char file[320];
    std::snprintf(file, sizeof file, "/proc/%d/task/%s/children", pid, entry->d_name);
    if (!ReadSmallFile(file, text)) continue;  // the thread just ended, or no such file
    any = true;
    ParsePids(text, children);
  }
  ::closedir(dir);
  if (!any) return std::nullopt;
  return children;
}

// The whole of /proc, indexed by parent: the fallback without children files.
// Costs an open and a read per process on the machine.
std::unordered_multimap<pid_t, ProcStat> ScanAllByParent(pid_t root) {
  std::unordered_multimap<pid_t, ProcStat> by_parent;
  if (DIR* dir = ::opendir("/proc")) {
    while (dirent* entry = ::readdir(dir)) {
      pid_t pid = 0;
      const char* name = entry->d_name;
      auto [end, ec] = std::from_chars(name, name + std::strlen(name), pid);
      if (ec != std::errc() || *end != '\0' || pid == root) continue;
      if (std::optional<ProcStat> stat = ReadStat(pid)) by_parent.emplace(stat->ppid, *stat);
    }
    ::closedir(dir);
  }
  return by_parent;
}

}  // namespace

std::optional<TreeSample> SampleProcessTree(pid_t root) {
  std::optional<ProcStat> root_stat = ReadStat(root);
  if (!root_stat) return std::nullopt;

  // Walk down from the root through the children files: a few reads per
  // process of the tree, instead of one per process of the machine (this runs
  // every health interval, and an idle watchdog should cost next to nothing).
  std::optional<std::unordered_multimap<pid_t, ProcStat>> by_parent;
  static const uint64_t page_size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  TreeSample sample;
  std::vector<ProcStat> pending = {*root_stat};
  while (!pending.empty()) {
    ProcStat stat = pending.back();
    pending.pop_back();
    sample.rss_bytes += stat.rss_pages * page_size;
    sample.cpu_ticks += stat.cpu_ticks;
    sample.threads += stat.threads;
    sample.processes += 1;
    if (!by_parent) {
      if (std::optional<std::vector<pid_t>> children = ChildrenOf(stat.pid)) {
        for (pid_t child : *children) {
          if (std::optional<ProcStat> child_stat = ReadStat(child)) pending.push_back(*child_stat);
        }
        continue;
      }
      if (stat.pid != root) continue;  // it ended between two reads
      by_parent = ScanAllByParent(root);
    }
    auto [first, last] = by_parent->equal_range(stat.pid);
    for (auto it = first; it != last; ++it) pending.push_back(it->second);
  }
  return sample;
}

std::vector<pid_t> ChildProcesses(pid_t pid) {
  if (std::optional<std::vector<pid_t>> children = ChildrenOf(pid)) return *children;
  std::vector<pid_t> children;
  auto by_parent = ScanAllByParent(pid);
  auto [first, last] = by_parent.equal_range(pid);
  for (auto it = first; it != last; ++it) children.push_back(it->second.pid);
  return children;
}

std::vector<pid_t> Descendants(pid_t root, std::span<const pid_t> spared) {
  std::vector<pid_t> out;
  std::vector<pid_t> pending = {root};
  while (!pending.empty()) {
    const pid_t pid = pending.back();
    pending.pop_back();
    for (pid_t child : ChildProcesses(pid)) {
      if (std::find(spared.begin(), spared.end(), child) != spared.end()) continue;
      out.push_back(child);
      pending.push_back(child);
    }
  }
  return out;
}

double CpuPercent(const TreeSample& before, const TreeSample& after, int64_t elapsed_ns) {
  if (elapsed_ns <= 0 || after.cpu_ticks < before.cpu_ticks) return 0;
  static const double ticks_per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double cpu_seconds =
      static_cast<double>(after.cpu_ticks - before.cpu_ticks) / ticks_per_second;
  return 100.0 * cpu_seconds / (static_cast<double>(elapsed_ns) / 1e9);
}

}  // namespace blackbox::watchdog
