#include "health_sampler.h"

#include <dirent.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

namespace blackbox {
namespace {

int64_t ClockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

uint64_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

int Threads() {
  FILE* f = std::fopen("/proc/self/status", "re");
  if (f == nullptr) return 0;
  char line[256];
  int threads = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "Threads: %d", &threads) == 1) break;
  }
  std::fclose(f);
  return threads;
}

int OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the directory stream's own fd
}

// Percent of system memory in use; *available_bytes gets MemAvailable.
double MemoryPercent(uint64_t* available_bytes) {
  FILE* f = std::fopen("/proc/meminfo", "re");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long total = 0, available = 0, value = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "MemTotal: %llu", &value) == 1) total = value;
    if (std::sscanf(line, "MemAvailable: %llu", &value) == 1) available = value;
  }
  std::fclose(f);
  *available_bytes = available * 1024;  // kB
  if (total == 0 || available > total) return 0;
  return 100.0 * static_cast<double>(total - available) / static_cast<double>(total);
}

// Percent of `path`'s filesystem in use; fills the sample's disk bytes.
double DiskPercent(const std::string& path, HealthSample& s) {
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) return 0;
  // Like df and psutil: the space reserved for root counts as neither used
  // nor available.
  const uint64_t used = (st.f_blocks - st.f_bfree) * uint64_t{st.f_frsize};
  const uint64_t avail = st.f_bavail * uint64_t{st.f_frsize};
  s.disk_used_bytes = used;
  s.disk_capacity_bytes = used + avail;
  return used + avail > 0 ? 100.0 * static_cast<double>(used) / static_cast<double>(used + avail)
                          : 0;
}

}  // namespace

HealthSampler::HealthSampler(std::string disk_path)
    : disk_path_(std::move(disk_path)),
      last_cpu_ns_(ClockNs(CLOCK_PROCESS_CPUTIME_ID)),
      last_mono_ns_(ClockNs(CLOCK_MONOTONIC)) {}

HealthSample HealthSampler::Sample() {
  HealthSample s;
  int64_t cpu = ClockNs(CLOCK_PROCESS_CPUTIME_ID);
  int64_t mono = ClockNs(CLOCK_MONOTONIC);
  // Below a few milliseconds the rate is noise: keep the previous figure.
  if (mono - last_mono_ns_ >= 5'000'000) {
    last_cpu_percent_ =
        100.0 * static_cast<double>(cpu - last_cpu_ns_) / static_cast<double>(mono - last_mono_ns_);
    last_cpu_ns_ = cpu;
    last_mono_ns_ = mono;
  }
  s.cpu_percent = last_cpu_percent_;
  s.rss_bytes = RssBytes();
  s.memory_percent = MemoryPercent(&s.memory_available_bytes);
  s.disk_percent = DiskPercent(disk_path_, s);
  s.threads = Threads();
  s.open_fds = OpenFds();
  return s;
}

}  // namespace blackbox
