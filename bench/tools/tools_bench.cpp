// Throughput of `blackbox export --history` and `blackbox replay` beside a raw
// RocksDB iteration of the same journal, measured in the same run.
//
//   tools_bench [--events N] [--runs R] [--keep DIR]
//
// Writes a journal of N events (default 1,000,000: a mix of health samples,
// gauges, errors, callbacks and log lines), then, R times (default 5) in
// turn: iterates it with a bare RocksDB iterator (keys and values touched,
// nothing decoded), runs `blackbox export --history FILE`, `blackbox replay
// --json > /dev/null` and `blackbox replay > /dev/null`. Prints the median
// events/s of each (by wall clock, and per CPU second) and its ratio to the
// raw iteration.
#include <fcntl.h>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
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

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 1'000'000;
  int runs = 5;
  std::string keep;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--events") {
      events = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--runs") {
      runs = std::atoi(argv[i + 1]);
    } else if (flag == "--keep") {
      keep = argv[i + 1];
    } else {
      Die("usage: tools_bench [--events N] [--runs R] [--keep DIR]");
    }
  }
  std::string dir = keep;
  if (dir.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tools-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp");
    dir = tmpl;
  }
  std::string root = dir + "/journal";
  if (!std::filesystem::exists(root + "/app")) {
    auto start = Clock::now();
    WriteJournal(root, events);
    fmt::print("wrote {} events in {:.1f} s ({:.1f} MB on disk)\n", events,
               std::chrono::duration<double>(Clock::now() - start).count(),
               static_cast<double>(blackbox::DirectorySize(root)) / (1 << 20));
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
