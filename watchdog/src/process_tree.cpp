#include "process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

}  // namespace

std::optional<TreeSample> SampleProcessTree(pid_t root) {
  std::optional<ProcStat> root_stat = ReadStat(root);
  if (!root_stat) return std::nullopt;

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
    auto [first, last] = by_parent.equal_range(stat.pid);
    for (auto it = first; it != last; ++it) pending.push_back(it->second);
  }
  return sample;
}

double CpuPercent(const TreeSample& before, const TreeSample& after, int64_t elapsed_ns) {
  if (elapsed_ns <= 0 || after.cpu_ticks < before.cpu_ticks) return 0;
  static const double ticks_per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double cpu_seconds =
      static_cast<double>(after.cpu_ticks - before.cpu_ticks) / ticks_per_second;
  return 100.0 * cpu_seconds / (static_cast<double>(elapsed_ns) / 1e9);
}

}  // namespace blackbox::watchdog
