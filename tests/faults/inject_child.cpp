// One run of a fault-injection scenario (fault_injection_test.cpp), in a
// process of its own so that an abort is seen by the test as a signal.
//
//   faults_inject_child SCENARIO ROOT ACKS KIND N BURST
//
// installs a FaultFileSystem under the journal (fault_fs.h), arms it to fail
// the N-th operation of KIND (append, sync, rename, dirsync, create; "none"
// fails nothing) and BURST-1 more (0: all from the N-th on), runs SCENARIO on
// the journal root ROOT and exits 0. Every append that was acknowledged is
// written to the file ACKS as "<stream> <seq> <D|B> <payload>" right away
// (one write(2) each, so the file is complete even if the process dies).
// The last line on stdout is
//   ops append=<n> sync=<n> rename=<n> dirsync=<n> create=<n> injected=<n>
//   attempts=<appends tried> acked=<n> failed=<failed_appends() summed>
//
// Scenarios, each appending from several threads:
//   app       the recovery manager's use of the journal, on Journal directly:
//             durable errors and buffered gauges from 3 threads, a snapshot
//             every 8 events, Sync, Compact, close and reopen, more appends;
//   manager   the real RecoveryManager: a crash spill ingested at start, 2
//             threads reporting exceptions and setting gauges, snapshots,
//             graceful shutdown, a second start on the same journal;
//   watchdog  the watchdog's JournalWriter: a queue of durable and buffered
//             events from 2 submitting threads, closed, reopened, once more;
//   sync      2 threads appending while 3 others call Sync() 100 times each
//             as fast as they can, so that a failing write meets a sync in
//             flight.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/journal.h"
#include "blackbox/recovery.h"
#include "fault_fs.h"
#include "file_system_hook.h"
#include "journal_writer.h"

namespace blackbox::faults {
namespace {

class AckLog {
 public:
  explicit AckLog(const std::string& path)
      : fd_(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) {
    if (fd_ < 0) throw std::runtime_error("cannot open " + path);
  }
  ~AckLog() { close(fd_); }
  void Add(const std::string& stream, uint64_t seq, Durability d, const std::string& payload) {
    std::string line =
        fmt::format("{} {} {} {}\n", stream, seq, d == Durability::kDurable ? 'D' : 'B', payload);
    acked_.fetch_add(1);
    if (write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(3);
  }
  uint64_t acked() const { return acked_.load(); }

 private:
  int fd_;
  std::atomic<uint64_t> acked_{0};
};

struct Totals {
  std::atomic<uint64_t> attempts{0};
  std::atomic<uint64_t> failed{0};
};

std::string ErrorEvent(const std::string& stream, const std::string& message) {
  fb::ErrorT e;
  e.context = "inject";
  e.message = message;
  fb::EventT event;
  event.stream = stream;
  event.severity = fb::Severity::Error;
  event.payload.Set(std::move(e));
  return EncodeEvent(std::move(event));
}

// Appends `message` as an Error event; records the ack.
void AppendOne(Journal& j, const std::string& message, Durability d, AckLog& acks, Totals& t) {
  const std::string bytes = ErrorEvent(j.stream(), message);
  t.attempts.fetch_add(1);
  Result<uint64_t> seq = j.Append(Bytes(bytes), d);
  if (seq.ok()) acks.Add(j.stream(), *seq, d, message);
}

void AppScenario(const std::string& root, AckLog& acks, Totals& totals) {
  for (int round = 0; round < 2; ++round) {
    auto opened = Journal::Open(root, "app");
    if (!opened.ok()) {
      // A reopen that fails on the faulty disk is what a restart would see.
      fmt::print(stderr, "open: {}\n", opened.status().ToString());
      continue;
    }
    Journal& j = **opened;
    std::vector<std::thread> threads;
    const int per_thread = round == 0 ? 40 : 16;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          const Durability d = (i + t) % 2 == 0 ? Durability::kDurable : Durability::kBuffered;
          AppendOne(j, fmt::format("r{}t{}i{}", round, t, i), d, acks, totals);
          if (t == 0 && i % 8 == 7) {
            const std::string snapshot = fmt::format("snapshot r{} i{}", round, i);
            j.PutSnapshot(j.last_seq(), Bytes(snapshot)).ok();
          }
          if (t == 1 && i % 13 == 12) j.Sync().ok();
          if (t == 2 && i == per_thread / 2)
            j.Compact(Retention{.keep_events = 10, .keep_ns = std::nullopt}).ok();
        }
      });
    }
    for (auto& th : threads) th.join();
    j.Sync().ok();
    totals.failed.fetch_add(j.failed_appends());
  }
}

void SyncScenario(const std::string& root, AckLog& acks, Totals& totals) {
  auto opened = Journal::Open(root, "app");
  if (!opened.ok()) {
    fmt::print(stderr, "open: {}\n", opened.status().ToString());
    return;
  }
  Journal& j = **opened;
  std::atomic<int> appending{2};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        const Durability d = i % 3 == 0 ? Durability::kDurable : Durability::kBuffered;
        AppendOne(j, fmt::format("t{}i{}", t, i), d, acks, totals);
      }
      appending.fetch_sub(1);
    });
  }
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100 && appending.load() > 0; ++i) j.Sync().ok();
    });
  }
  for (auto& th : threads) th.join();
  totals.failed.fetch_add(j.failed_appends());
}

void ManagerScenario(const std::string& root) {
  // A crash spill from a previous run, ingested at the first start.
  const std::string spill = root + "/app.crash";
  mkdir(root.c_str(), 0700);
  const std::string text =
      "BLACKBOX-CRASH 1\norigin signal\nsignal 11\nfault_address 0x10\npid 4242\n"
      "time_ns 1700000000000000000\nframes 1\n/bin/app(main+0x10) [0x1234]\nend\n";
  int fd = open(spill.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    if (write(fd, text.data(), text.size()) < 0) std::_Exit(3);
    close(fd);
  }
  for (int round = 0; round < 2; ++round) {
    RecoveryOptions options;
    options.journal_dir = root;
    options.snapshot_every = 8;
    options.handle_signals = false;
    options.state_file = "";
    options.capture_crashes = round == 0;
    options.health_check_interval = std::chrono::milliseconds(5);
    RecoveryManager rm(options);
    rm.start_health_monitoring();
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&rm, t, round] {
        for (int i = 0; i < 20; ++i) {
          rm.report_exception(
              "inject",
              std::make_exception_ptr(std::runtime_error(fmt::format("r{}t{}i{}", round, t, i))));
          rm.set_gauge(fmt::format("g{}", t), i);
        }
      });
    }
    for (auto& th : threads) th.join();
    rm.graceful_shutdown();
  }
}

void WatchdogScenario(const std::string& root, AckLog& acks, Totals& totals) {
  for (int round = 0; round < 2; ++round) {
    auto opened = Journal::Open(root, "watchdog");
    if (!opened.ok()) {
      fmt::print(stderr, "open: {}\n", opened.status().ToString());
      continue;
    }
    Journal& j = **opened;
    {
      // As the watchdog's writer thread does, with every result recorded.
      watchdog::JournalWriter writer(
          j.stream(),
          [&](std::span<const uint8_t> event, Durability d) {
            totals.attempts.fetch_add(1);
            Result<uint64_t> seq = j.Append(event, d);
            if (!seq.ok()) return seq.status();
            const fb::Event* e = flatbuffers::GetRoot<fb::Event>(event.data());
            const fb::Error* error = e->payload_as_Error();
            acks.Add(j.stream(), *seq, d,
                     error != nullptr && error->message() ? error->message()->str() : "-");
            return Status::Ok();
          },
          {.capacity = 16});
      std::vector<std::thread> threads;
      for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
          for (int i = 0; i < 50; ++i) {
            const Durability d = i % 3 == 0 ? Durability::kDurable : Durability::kBuffered;
            writer.Submit(ErrorEvent(j.stream(), fmt::format("r{}t{}i{}", round, t, i)), d);
          }
        });
      }
      for (auto& th : threads) th.join();
    }  // drains the queue
    totals.failed.fetch_add(j.failed_appends());
  }
}

}  // namespace
}  // namespace blackbox::faults

int main(int argc, char** argv) {
  using namespace blackbox::faults;
  if (argc != 7) {
    fmt::print(stderr, "usage: {} SCENARIO ROOT ACKS KIND N BURST\n", argv[0]);
    return 2;
  }
  const std::string scenario = argv[1], root = argv[2];
  auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default());
  blackbox::internal::SetBaseFileSystemForTesting(fs);
  FaultKind kind{};
  if (std::string(argv[4]) != "none") {
    if (!ParseFaultKind(argv[4], &kind)) {
      fmt::print(stderr, "unknown fault kind {}\n", argv[4]);
      return 2;
    }
    fs->Arm(kind, std::strtoull(argv[5], nullptr, 10), std::strtoull(argv[6], nullptr, 10));
  }
  AckLog acks(argv[3]);
  Totals totals;
  if (scenario == "app") {
    AppScenario(root, acks, totals);
  } else if (scenario == "manager") {
    ManagerScenario(root);
  } else if (scenario == "watchdog") {
    WatchdogScenario(root, acks, totals);
  } else if (scenario == "sync") {
    SyncScenario(root, acks, totals);
  } else {
    fmt::print(stderr, "unknown scenario {}\n", scenario);
    return 2;
  }
  fs->Disarm();
  fmt::print("ops");
  for (int k = 0; k < kFaultKinds; ++k) {
    fmt::print(" {}={}", FaultKindName(static_cast<FaultKind>(k)),
               fs->count(static_cast<FaultKind>(k)));
  }
  fmt::print(" injected={} attempts={} acked={} failed={}\n", fs->injected(),
             totals.attempts.load(), acks.acked(), totals.failed.load());
  return 0;
}
