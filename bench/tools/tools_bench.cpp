// Throughput of `blackbox export --history` and `blackbox replay` beside a raw
// RocksDB iteration of the same journal, measured in the same run.
//
//   tools_bench [--events N] [--runs R] [--keep DIR]
//   tools_bench --incidents K [--events N] [--runs R] [--keep DIR]
//   tools_bench --follow SECONDS [--rate EVENTS_PER_S] [--runs R]
//
// Writes a journal of N events (default 1,000,000: a mix of health samples,
// gauges, errors, callbacks and log lines), then, R times (default 5) in
// turn: iterates it with a bare RocksDB iterator (keys and values touched,
// nothing decoded), runs `blackbox export --history FILE`, `blackbox replay
// --json > /dev/null` and `blackbox replay > /dev/null`. Prints the median
// events/s of each (by wall clock, and per CPU second) and its ratio to the
// raw iteration. With --incidents K the journal holds K deaths instead
// (WriteIncidentJournal) and the run compares `crashes --group` with
// `replay --json --type crash` (CompareCrashes). With --follow, the CPU of
// `blackbox replay --follow` (to /dev/null) over a live writer appending
// buffered gauges at RATE a second (default 600) for SECONDS: the writer
// once on the direct path and once in ring mode (4 MiB), in turn, R times
// (CompareFollow).
#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/journal.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kT0 = 1768473000LL * 1'000'000'000;

// Wall-clock and CPU seconds of one measurement. On a shared machine the
// CPU figure is the steadier one: it does not count time spent waiting for a core.
struct Timing {
  double wall = 0;
  double cpu = 0;
};

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void Die(const std::string& why) {
  fmt::print(stderr, "tools_bench: {}\n", why);
  std::exit(1);
}

blackbox::fb::EventT MakeEvent(uint64_t i) {
  namespace fb = blackbox::fb;
  fb::EventT e;
  e.time_ns = kT0 + static_cast<int64_t>(i) * 1'000'000;
  e.mono_ns = static_cast<int64_t>(i) + 1;
  e.pid = 4242;
  switch (i % 10) {
    case 0: {
      fb::ErrorT p;
      p.context = "order_execution";
      p.exception_type = "std::runtime_error";
      p.message = fmt::format("order {} rejected: \"price out of range\"", i);
      p.frames = {"place_order(Order const&) at orders.cpp:88", "main at main.cpp:12"};
      e.severity = fb::Severity::Error;
      e.payload.Set(std::move(p));
      break;
    }
    case 1: {
      fb::CallbackT p;
      p.kind = fb::CallbackKind::Recovery;
      p.name = "reconnect_broker";
      p.ok = true;
      p.duration_us = static_cast<int64_t>(i % 5000);
      e.payload.Set(std::move(p));
      break;
    }
    case 2:
    case 3: {
      fb::GaugeT p;
      p.name = i % 2 ? "active_positions" : "active_connections";
      p.value = static_cast<double>(i % 7);
      e.payload.Set(std::move(p));
      break;
    }
    case 4: {
      fb::LogLineT p;
      p.source = "stderr";
      p.pattern = "ERROR";
      p.text = fmt::format("ERROR: feed {} stalled for 1.5 s", i % 13);
      e.payload.Set(std::move(p));
      break;
    }
    default: {
      fb::HealthT p;
      p.rss_bytes = 500'000'000 + i;
      p.cpu_percent = static_cast<double>(i % 1000) / 10.0;
      p.memory_percent = 41.25;
      p.disk_percent = 12.5;
      p.threads = 8;
      p.open_fds = 21;
      p.sampled_pid = 4242;
      e.payload.Set(std::move(p));
      break;
    }
  }
  return e;
}

void WriteJournal(const std::string& root, uint64_t events) {
  auto journal = blackbox::Journal::Open(root, "app");
  if (!journal.ok()) Die(journal.status().ToString());
  for (uint64_t i = 0; i < events; ++i) {
    auto seq = (*journal)->Append(MakeEvent(i), blackbox::Durability::kBuffered);
    if (!seq.ok()) Die(seq.status().ToString());
  }
  if (auto s = (*journal)->Sync(); !s.ok()) Die(s.ToString());
}

// --incidents K: a journal of N events in two streams holding K deaths, each
// as the app and the watchdog journal one (the watchdog's Starting of the
// child, the app's Starting and Config with its build ID, the watchdog's
// Crash and Restart, the next run's capture of the crash with frames), in
// 40 distinct crashing functions and two builds; health samples fill the
// rest.
void WriteIncidentJournal(const std::string& root, uint64_t events, uint64_t incidents) {
  namespace fb = blackbox::fb;
  auto app = blackbox::Journal::Open(root, "app");
  auto watchdog = blackbox::Journal::Open(root, std::string(blackbox::kWatchdogStream));
  if (!app.ok()) Die(app.status().ToString());
  if (!watchdog.ok()) Die(watchdog.status().ToString());
  auto append = [](blackbox::Journal& j, fb::EventT e) {
    if (auto seq = j.Append(e, blackbox::Durability::kBuffered); !seq.ok()) {
      Die(seq.status().ToString());
    }
  };
  const uint64_t per_run = events / std::max<uint64_t>(incidents, 1);
  int64_t t = kT0;
  uint64_t written = 0;
  for (uint64_t run = 0; written < events; ++run) {
    const int32_t pid = 10'000 + static_cast<int32_t>(run);
    auto event = [&](fb::Severity severity, int32_t event_pid) {
      fb::EventT e;
      e.time_ns = (t += 1'000'000);
      e.mono_ns = t - kT0;
      e.pid = event_pid;
      e.severity = severity;
      ++written;
      return e;
    };
    {
      fb::EventT e = event(fb::Severity::Info, 1);
      fb::LifecycleT p;
      p.phase = fb::Phase::Starting;
      p.child_pid = pid;
      e.payload.Set(std::move(p));
      append(**watchdog, std::move(e));
    }
    {
      fb::EventT e = event(fb::Severity::Info, pid);
      fb::LifecycleT p;
      p.phase = fb::Phase::Starting;
      e.payload.Set(std::move(p));
      append(**app, std::move(e));
    }
    {
      fb::EventT e = event(fb::Severity::Info, pid);
      fb::ConfigT p;
      p.component = "recovery";
      auto entry = std::make_unique<fb::ConfigEntryT>();
      entry->key = "build_id";
      entry->value = run * 2 < incidents ? "0f1e2d3c4b5a69788796a5b4c3d2e1f0aa11bb22"
                                         : "77665544332211009988aabbccddeeff00112233";
      p.entries.push_back(std::move(entry));
      e.payload.Set(std::move(p));
      append(**app, std::move(e));
    }
    if (run > 0 && run <= incidents) {
      // The capture of the previous run's crash, journaled by this run.
      fb::EventT e = event(fb::Severity::Critical, pid);
      fb::CrashT p;
      p.origin = fb::CrashOrigin::Signal;
      p.signal = 11;
      p.signal_name = "SIGSEGV";
      p.crashed_pid = pid - 1;
      p.crash_time_ns = t - 3'000'000;
      p.frames = {fmt::format("orders::handler_{}(Order const&) +0x1c (trader) at orders.cpp:{}",
                              run % 40, 100 + run % 40),
                  "orders::dispatch(Order const&) +0x44 (trader) at orders.cpp:310",
                  "main +0x8d (trader) at main.cpp:12"};
      e.payload.Set(std::move(p));
      append(**app, std::move(e));
    }
    for (uint64_t i = 0; i + 6 < per_run && written < events; ++i) {
      fb::EventT e = event(fb::Severity::Info, pid);
      fb::HealthT p;
      p.rss_bytes = 500'000'000 + i;
      p.cpu_percent = static_cast<double>(i % 1000) / 10.0;
      p.sampled_pid = pid;
      e.payload.Set(std::move(p));
      append(**app, std::move(e));
    }
    if (run >= incidents) continue;  // the last run lives on
    {
      fb::EventT e = event(fb::Severity::Critical, 1);
      fb::CrashT p;
      p.origin = fb::CrashOrigin::Watchdog;
      p.signal = 11;
      p.crashed_pid = pid;
      p.core_dumped = true;
      e.payload.Set(std::move(p));
      append(**watchdog, std::move(e));
    }
    {
      fb::EventT e = event(fb::Severity::Warning, 1);
      fb::RestartT p;
      p.attempt = 1;
      p.reason = fb::RestartReason::Crash;
      p.signal = 11;
      p.child_pid = pid + 1;
      e.payload.Set(std::move(p));
      append(**watchdog, std::move(e));
    }
  }
  if (auto s = (*app)->Sync(); !s.ok()) Die(s.ToString());
  if (auto s = (*watchdog)->Sync(); !s.ok()) Die(s.ToString());
}

// Time to iterate every event of <root>/app with a plain RocksDB iterator
// (opening the database included, as the tool's figures include it).
Timing RawIteration(const std::string& root, uint64_t expected) {
  std::string path = root + "/app";
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok()) {
    Die("list column families");
  }
  auto start = Clock::now();
  double cpu_start = ProcessCpuSeconds();
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path, families, &handles, &raw).ok()) {
    Die("open read-only");
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  uint64_t count = 0, bytes = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[0]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      bytes += it->key().size() + it->value().size();
      ++count;
    }
  }
  Timing t{std::chrono::duration<double>(Clock::now() - start).count(),
           ProcessCpuSeconds() - cpu_start};
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  if (count != expected) Die(fmt::format("raw iteration saw {} events, not {}", count, expected));
  if (bytes == 0) Die("no bytes");
  return t;
}

// Time of one run of the tool (process start to exit), stdout to `out`.
Timing RunTool(const std::vector<std::string>& args, const std::string& out) {
  std::vector<std::string> argv{BLACKBOX_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> p;
  for (auto& a : argv) p.push_back(a.data());
  p.push_back(nullptr);
  auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) _exit(127);
    dup2(fd, 1);
    execv(p[0], p.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  Timing t;
  t.wall = std::chrono::duration<double>(Clock::now() - start).count();
  t.cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
          static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("blackbox " + args[2] + " failed");
  return t;
}

// --incidents: `crashes --group` (and the plain incident list) beside
// `replay --json --type crash`, which reads the same journal and prints
// every crash record.
void CompareCrashes(const std::string& root, int runs) {
  std::vector<double> replay, group, list;
  for (int r = 0; r < runs; ++r) {
    replay.push_back(
        RunTool({"--journal", root, "replay", "--json", "--type", "crash"}, "/dev/null").wall);
    group.push_back(RunTool({"--journal", root, "crashes", "--group"}, "/dev/null").wall);
    list.push_back(RunTool({"--journal", root, "crashes"}, "/dev/null").wall);
  }
  auto show = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) out += fmt::format(" {:.3f}", x);
    return out;
  };
  fmt::print("{} runs, wall seconds (median; every run):\n", runs);
  fmt::print("  replay --json --type crash  {:.3f} ({} )\n", Median(replay), show(replay));
  fmt::print("  crashes --group             {:.3f} ({} )  {:.2f}x replay\n", Median(group),
             show(group), Median(group) / Median(replay));
  fmt::print("  crashes                     {:.3f} ({} )  {:.2f}x replay\n", Median(list),
             show(list), Median(list) / Median(replay));
}

// CPU seconds (user + system) of a live process, from /proc/PID/stat.
double LiveCpuSeconds(pid_t pid) {
  std::FILE* f = std::fopen(fmt::format("/proc/{}/stat", pid).c_str(), "r");
  if (f == nullptr) return 0;
  char buf[1024] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  // Fields after the command (in parentheses, which may hold spaces).
  const char* p = std::strrchr(buf, ')');
  if (n == 0 || p == nullptr) return 0;
  unsigned long utime = 0, stime = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) !=
      2) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// One --follow measurement: percent of one core the follower used.
double FollowCpuPercent(const std::string& dir, bool ring, double seconds, int rate) {
  const std::string root = dir + (ring ? "/follow-ring" : "/follow-direct");
  std::filesystem::remove_all(root);
  blackbox::JournalOptions options;
  options.ring_bytes = ring ? 4 << 20 : 0;
  auto journal = blackbox::Journal::Open(root, "app", options);
  if (!journal.ok()) Die(journal.status().ToString());
  auto append = [&](uint64_t i) {
    blackbox::fb::GaugeT g;
    g.name = "active_positions";
    g.value = static_cast<double>(i);
    blackbox::fb::EventT e;
    e.time_ns = kT0 + static_cast<int64_t>(i);
    e.mono_ns = static_cast<int64_t>(i) + 1;
    e.pid = 4242;
    e.stream = "app";
    e.payload.Set(std::move(g));
    const std::string bytes = blackbox::EncodeEvent(std::move(e));
    if (!(*journal)->Append(blackbox::Bytes(bytes), blackbox::Durability::kBuffered).ok()) {
      Die("append failed");
    }
  };
  append(0);
  std::vector<std::string> argv{BLACKBOX_TOOL, "--journal", root, "replay", "--follow"};
  std::vector<char*> p;
  for (auto& a : argv) p.push_back(a.data());
  p.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    execv(p[0], p.data());
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // start-up is not measured
  const double cpu0 = LiveCpuSeconds(pid);
  const auto start = Clock::now();
  const auto period = std::chrono::nanoseconds(1'000'000'000 / rate);
  uint64_t i = 1;
  for (auto next = start; next < start + std::chrono::duration<double>(seconds); next += period) {
    std::this_thread::sleep_until(next);
    append(i++);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = LiveCpuSeconds(pid) - cpu0;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  return 100.0 * cpu / elapsed;
}

void CompareFollow(const std::string& dir, double seconds, int rate, int runs) {
  std::vector<double> direct, ring;
  fmt::print("replay --follow over a writer of {} buffered events/s, {} s per run:\n", rate,
             seconds);
  for (int r = 0; r < runs; ++r) {
    direct.push_back(FollowCpuPercent(dir, false, seconds, rate));
    ring.push_back(FollowCpuPercent(dir, true, seconds, rate));
    fmt::print("  run {}: direct writer {:.1f}% of a core, ring-mode writer {:.1f}%\n", r + 1,
               direct.back(), ring.back());
  }
  fmt::print("medians: direct {:.1f}%, ring {:.1f}%\n", Median(direct), Median(ring));
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 1'000'000;
  uint64_t incidents = 0;
  int runs = 5;
  double follow = 0;
  int follow_rate = 600;
  std::string keep;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--events") {
      events = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--runs") {
      runs = std::atoi(argv[i + 1]);
    } else if (flag == "--incidents") {
      incidents = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--follow") {
      follow = std::strtod(argv[i + 1], nullptr);
    } else if (flag == "--rate") {
      follow_rate = std::max(1, std::atoi(argv[i + 1]));
    } else if (flag == "--keep") {
      keep = argv[i + 1];
    } else {
      Die("usage: tools_bench [--events N] [--incidents K] [--follow SECONDS [--rate R]] "
          "[--runs R] [--keep DIR]");
    }
  }
  std::string dir = keep;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tools-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp");
    dir = tmpl;
  }
  if (follow > 0) {
    CompareFollow(dir, follow, follow_rate, runs);
    if (keep.empty()) std::filesystem::remove_all(dir);
    return 0;
  }
  std::string root = dir + "/journal";
  if (!std::filesystem::exists(root + "/app")) {
    auto start = Clock::now();
    if (incidents > 0) {
      WriteIncidentJournal(root, events, incidents);
    } else {
      WriteJournal(root, events);
    }
    fmt::print("wrote {} events in {:.1f} s ({:.1f} MB on disk)\n", events,
               std::chrono::duration<double>(Clock::now() - start).count(),
               static_cast<double>(blackbox::DirectorySize(root)) / (1 << 20));
  }
  if (incidents > 0) {
    CompareCrashes(root, runs);
    if (keep.empty()) std::filesystem::remove_all(dir);
    return 0;
  }

  std::vector<Timing> raw, exp, json, human;
  std::string jsonl = dir + "/history.jsonl";
  for (int r = 0; r < runs; ++r) {
    raw.push_back(RawIteration(root, events));
    exp.push_back(RunTool({"--journal", root, "export", "--history", jsonl}, "/dev/null"));
    json.push_back(RunTool({"--journal", root, "replay", "--json"}, "/dev/null"));
    human.push_back(RunTool({"--journal", root, "replay"}, "/dev/null"));
  }
  auto rate = [&](const std::vector<Timing>& t, double Timing::*field) {
    std::vector<double> v;
    for (const Timing& x : t) v.push_back(x.*field);
    return static_cast<double>(events) / Median(v);
  };
  double base_wall = rate(raw, &Timing::wall);
  double base_cpu = rate(raw, &Timing::cpu);
  fmt::print("{} events, {} runs, medians:\n", events, runs);
  fmt::print("{:<34} {:>14} {:>8} {:>16} {:>8}\n", "", "events/s wall", "x raw", "events/CPU-s",
             "x raw");
  auto row = [&](const char* name, const std::vector<Timing>& t) {
    double wall = rate(t, &Timing::wall);
    double cpu = rate(t, &Timing::cpu);
    fmt::print("{:<34} {:>14.0f} {:>8.3f} {:>16.0f} {:>8.3f}\n", name, wall, wall / base_wall, cpu,
               cpu / base_cpu);
  };
  row("raw RocksDB iteration", raw);
  row("blackbox export --history (JSONL)", exp);
  row("blackbox replay --json >/dev/null", json);
  row("blackbox replay >/dev/null", human);
  if (keep.empty()) std::filesystem::remove_all(dir);
  return 0;
}
