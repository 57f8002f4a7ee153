// Side-by-side measurements of the recovery manager (medians of repeated runs).
//   recovery_bench costs   set_gauge and a failing exception_handler beside raw
//                          RocksDB Put (buffered WAL, and fsync'd), same run
//   recovery_bench parts   where a handled error's time goes: the raw Put, the
//                          journal's write of the same three events, the throw
//                          and rethrow alone, the handler; each call timed alone
//   recovery_bench startup manager start with 1k vs 1M journaled events
//   recovery_bench health  CPU time of the process with and without health
//                          monitoring at a 1 s interval
// Every figure is printed with what it was compared against.
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/journal.h"
#include "blackbox/recovery.h"

namespace fs = std::filesystem;
using blackbox::RecoveryManager;
using blackbox::RecoveryOptions;

namespace {

double NowSec() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double CpuSec(clockid_t clock = CLOCK_PROCESS_CPUTIME_ID) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

RecoveryOptions Quiet(const fs::path& dir) {
  RecoveryOptions o;
  o.journal_dir = (dir / "journal").string();
  o.state_file = "";
  o.handle_signals = false;
  o.capture_crashes = false;
  return o;
}

// Median microseconds per call of fn over `rounds` rounds of `n` calls.
template <class F>
double PerCallUs(int rounds, int n, F&& fn) {
  std::vector<double> r;
  for (int k = 0; k < rounds; ++k) {
    double t0 = NowSec();
    for (int i = 0; i < n; ++i) fn(i);
    r.push_back((NowSec() - t0) * 1e6 / n);
  }
  return Median(r);
}

// RocksDB's filesystem, with write-ahead logs preallocated with their size
// (FileOptions::fallocate_with_keep_size = false), as the journal's are
// (journal/src/owner_only_fs.cpp): a raw Put on the journal's footing.
class SizedLogs : public rocksdb::FileSystemWrapper {
 public:
  SizedLogs() : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "SizedLogs"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    rocksdb::FileOptions sized = o;
    if (f.ends_with(".log")) sized.fallocate_with_keep_size = false;
    return target()->NewWritableFile(f, sized, r, d);
  }
};

// The failing exception_handler with 0 and with 3 recovery callbacks, beside
// a raw fsync'd RocksDB Put, interleaved round by round so that every ratio
// compares figures of the same moment of a shared machine.
void Costs(const fs::path& dir, int rounds) {
  RecoveryOptions none = Quiet(dir / "none");
  none.stream = "none";
  RecoveryManager rm0(none);
  RecoveryOptions three = Quiet(dir / "three");
  three.stream = "three";
  RecoveryManager rm3(three);
  for (const char* name : {"reconnect", "reload", "resync"}) {
    rm3.register_recovery_callback(name, [] {});
  }
  // The same handler with the stream in ring mode: its events go into the
  // ring and the handler's own thread writes and fsyncs them in one batch.
  RecoveryOptions ring = Quiet(dir / "ring-handler");
  ring.stream = "ring_handler";
  ring.journal_ring_bytes = 4 << 20;
  RecoveryManager rm_ring(ring);
  auto open_raw = [&](const char* name, rocksdb::Env* env) {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options ro;
    ro.create_if_missing = true;
    if (env != nullptr) ro.env = env;
    if (!rocksdb::DB::Open(ro, (dir / name).string(), &raw).ok()) {
      throw std::runtime_error("open");
    }
    return std::unique_ptr<rocksdb::DB>(raw);
  };
  std::unique_ptr<rocksdb::DB> db = open_raw("raw", nullptr);
  std::unique_ptr<rocksdb::Env> sized_env = rocksdb::NewCompositeEnv(std::make_shared<SizedLogs>());
  std::unique_ptr<rocksdb::DB> sized_db = open_raw("raw-sized", sized_env.get());
  std::string value(64, 'x');
  auto put_into = [&](rocksdb::DB& into, bool sync) {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    return [&into, &value, wo](int i) { into.Put(wo, fmt::format("{:016}", i), value); };
  };
  auto put = [&](bool sync) { return put_into(*db, sync); };
  auto failing = [](RecoveryManager& rm) {
    return [&rm](int) {
      try {
        rm.exception_handler("bench", [] { throw std::runtime_error("x"); });
      } catch (const std::runtime_error&) {
      }
    };
  };
  // In a journal of its own: the flushes that its 140k events cause must not
  // fall into the handler's rounds. Besides the wall time per call: the
  // calling thread's CPU per call (what the application's hot path pays)
  // and the whole process's (the drain thread and RocksDB's flushes too),
  // over the same 140k calls.
  struct GaugeCost {
    double wall_us = 0, thread_cpu_us = 0, process_cpu_us = 0;
    uint64_t refused = 0;
  };
  // burst > 0: the 140k calls in bursts of that many, 20 ms apart (the
  // pauses are not timed), as a service below the drain's rate makes them.
  auto gauge_cost = [&](const char* stream, size_t ring_bytes, int burst = 0) {
    RecoveryOptions o = Quiet(dir / stream);
    o.stream = stream;
    o.journal_ring_bytes = ring_bytes;
    GaugeCost c;
    {
      RecoveryManager rm(o);
      const double thread0 = CpuSec(CLOCK_THREAD_CPUTIME_ID);
      const double process0 = CpuSec(CLOCK_PROCESS_CPUTIME_ID);
      auto set = [&](int i) { rm.set_gauge("active_positions", i); };
      if (burst == 0) {
        c.wall_us = PerCallUs(7, 20000, set);
      } else {
        std::vector<double> r;
        for (int k = 0; k < 140000 / burst; ++k) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          r.push_back(PerCallUs(1, burst, set));
        }
        c.wall_us = Median(r);
      }
      c.thread_cpu_us = (CpuSec(CLOCK_THREAD_CPUTIME_ID) - thread0) * 1e6 / 140000;
      c.process_cpu_us = (CpuSec(CLOCK_PROCESS_CPUTIME_ID) - process0) * 1e6 / 140000;
      c.refused = rm.journal_failures();
    }
    return c;
  };
  const GaugeCost direct_gauge = gauge_cost("gauge", 0);
  const double gauge = direct_gauge.wall_us;
  // The same with the stream in ring mode (4 MiB): the journal's part of a
  // buffered event is a copy into the mapped ring. Refused events (the ring
  // full because the loop outran the drain) are counted.
  const GaugeCost ring_gauge = gauge_cost("ring", 4 << 20);
  const GaugeCost paced_gauge = gauge_cost("ring_paced", 4 << 20, 2000);
  double buffered = PerCallUs(7, 20000, put(false));
  std::vector<double> synced, fail0, fail3, fail_ring, ratio0, ratio3, ratio_ring;
  std::vector<double> synced_sized, ratio0_sized, ratio3_sized;
  for (int k = 0; k < rounds; ++k) {
    synced.push_back(PerCallUs(1, 50, put(true)));
    synced_sized.push_back(PerCallUs(1, 50, put_into(*sized_db, true)));
    fail0.push_back(PerCallUs(1, 50, failing(rm0)));
    fail3.push_back(PerCallUs(1, 50, failing(rm3)));
    fail_ring.push_back(PerCallUs(1, 50, failing(rm_ring)));
    // Rate ratios: raw time over handler time (>= 1 means as fast as a Put).
    ratio0.push_back(synced.back() / fail0.back());
    ratio3.push_back(synced.back() / fail3.back());
    ratio_ring.push_back(synced.back() / fail_ring.back());
    ratio0_sized.push_back(synced_sized.back() / fail0.back());
    ratio3_sized.push_back(synced_sized.back() / fail3.back());
  }
  fmt::print("set_gauge                        {:9.2f} us/call\n", gauge);
  fmt::print("set_gauge, 4 MiB ring            {:9.2f} us/call  ({:.1f}x faster; {} refused)\n",
             ring_gauge.wall_us, gauge / ring_gauge.wall_us, ring_gauge.refused);
  fmt::print("  CPU per call, calling thread: {:.2f} us direct, {:.2f} us ring ({:.1f}x less)\n",
             direct_gauge.thread_cpu_us, ring_gauge.thread_cpu_us,
             direct_gauge.thread_cpu_us / ring_gauge.thread_cpu_us);
  fmt::print("  CPU per call, whole process:  {:.2f} us direct, {:.2f} us ring\n",
             direct_gauge.process_cpu_us, ring_gauge.process_cpu_us);
  fmt::print(
      "set_gauge, ring, bursts of 2000  {:9.2f} us/call  ({:.1f}x faster; {} refused; CPU per "
      "call {:.2f} us calling thread, {:.2f} us process)\n",
      paced_gauge.wall_us, gauge / paced_gauge.wall_us, paced_gauge.refused,
      paced_gauge.thread_cpu_us, paced_gauge.process_cpu_us);
  fmt::print("raw RocksDB Put, buffered WAL    {:9.2f} us/call  (set_gauge = {:.2f}x)\n", buffered,
             gauge / buffered);
  fmt::print("medians of {} rounds of 50 calls each:\n", rounds);
  fmt::print("raw RocksDB Put, sync=true       {:9.2f} us/call\n", Median(synced));
  fmt::print("failing handler, 0 callbacks     {:9.2f} us/call  (rate = {:.2f}x the raw Put)\n",
             Median(fail0), Median(ratio0));
  fmt::print("failing handler, 3 callbacks     {:9.2f} us/call  (rate = {:.2f}x the raw Put)\n",
             Median(fail3), Median(ratio3));
  fmt::print("failing handler, 0 cb, ring      {:9.2f} us/call  (rate = {:.2f}x the raw Put)\n",
             Median(fail_ring), Median(ratio_ring));
  fmt::print(
      "raw Put, sync=true, sized log    {:9.2f} us/call  (the handler: {:.2f}x with 0 callbacks, "
      "{:.2f}x with 3)\n",
      Median(synced_sized), Median(ratio0_sized), Median(ratio3_sized));
}

// The handler with no callback is: the application's throw, the journal's
// write of three events in one durable AppendAll, the manager's own work
// (describing, encoding, folding) and the rethrow. Each part beside the raw
// fsync'd Put, interleaved call by call, each call timed alone; medians.
void Parts(const fs::path& dir, int calls) {
  RecoveryOptions o = Quiet(dir / "handler");
  o.stream = "handler";
  RecoveryManager rm(o);
  auto journal = blackbox::Journal::Open((dir / "journal").string(), "app");
  if (!journal.ok()) throw std::runtime_error(journal.status().ToString());
  // The events the handler writes: the error, the recovering and running phases.
  std::vector<std::string> events;
  auto event = [&](auto payload, blackbox::fb::Severity severity) {
    blackbox::fb::EventT e;
    e.stream = "app";
    e.severity = severity;
    e.payload.Set(std::move(payload));
    events.push_back(blackbox::EncodeEvent(std::move(e)));
  };
  blackbox::fb::ErrorT error;
  error.context = "bench";
  error.exception_type = "std::runtime_error";
  error.message = "x";
  event(error, blackbox::fb::Severity::Error);
  blackbox::fb::LifecycleT phase;
  phase.phase = blackbox::fb::Phase::Recovering;
  event(phase, blackbox::fb::Severity::Info);
  phase.phase = blackbox::fb::Phase::Running;
  phase.reason = "recovered";
  event(phase, blackbox::fb::Severity::Info);
  std::vector<std::span<const uint8_t>> spans;
  for (const std::string& e : events) spans.push_back(blackbox::Bytes(e));

  rocksdb::DB* raw = nullptr;
  rocksdb::Options ro;
  ro.create_if_missing = true;
  if (!rocksdb::DB::Open(ro, (dir / "raw").string(), &raw).ok()) throw std::runtime_error("open");
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  const std::string value(64, 'x');

  std::vector<double> put, append, rethrow, handler;
  auto time = [](std::vector<double>& into, auto&& fn) {
    const double t0 = NowSec();
    fn();
    into.push_back((NowSec() - t0) * 1e6);
  };
  for (int i = 0; i < calls; ++i) {
    time(put, [&] { db->Put(sync, fmt::format("{:016}", i % 50), value); });
    time(append, [&] { (void)journal.value()->AppendAll(spans, blackbox::Durability::kDurable); });
    time(rethrow, [] {
      try {
        try {
          throw std::runtime_error("x");
        } catch (...) {
          throw;
        }
      } catch (const std::runtime_error&) {
      }
    });
    time(handler, [&] {
      try {
        rm.exception_handler("bench", [] { throw std::runtime_error("x"); });
      } catch (const std::runtime_error&) {
      }
    });
  }
  const double own = Median(handler) - Median(append) - Median(rethrow);
  fmt::print("medians of {} calls, each timed alone:\n", calls);
  fmt::print("raw RocksDB Put, sync=true              {:9.2f} us\n", Median(put));
  fmt::print("journal AppendAll, 3 events, durable    {:9.2f} us\n", Median(append));
  fmt::print("throw and rethrow, nothing else         {:9.2f} us\n", Median(rethrow));
  fmt::print("failing handler, 0 callbacks            {:9.2f} us  (the manager's own: {:.2f} us)\n",
             Median(handler), own);
}

void Startup(const fs::path& dir, int big) {
  std::vector<std::pair<std::string, int>> sizes = {{"small", 1000}, {"big", big}};
  for (auto& [name, n] : sizes) {
    RecoveryOptions o = Quiet(dir / name);
    RecoveryManager rm(o);
    for (int i = 0; i < n; ++i) rm.set_gauge("active_positions", i);
  }
  std::vector<double> t[2];
  for (int round = 0; round < 5; ++round) {
    for (int k = 0; k < 2; ++k) {
      double t0 = NowSec();
      RecoveryManager rm(Quiet(dir / sizes[k].first));
      t[k].push_back((NowSec() - t0) * 1e3);
    }
  }
  double small = Median(t[0]), large = Median(t[1]);
  fmt::print("startup, {:>8} events  {:8.2f} ms\n", sizes[0].second, small);
  fmt::print("startup, {:>8} events  {:8.2f} ms  ({:.2f}x)\n", sizes[1].second, large,
             large / small);
}

void Health(const fs::path& dir, int seconds) {
  auto measure = [&](bool monitor) {
    RecoveryOptions o = Quiet(dir / (monitor ? "on" : "off"));
    o.health_check_interval = std::chrono::seconds(1);
    o.state_file = (dir / (monitor ? "on.json" : "off.json")).string();
    RecoveryManager rm(o);
    if (monitor) rm.start_health_monitoring();
    double c0 = CpuSec(), w0 = NowSec();
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    return 100 * (CpuSec() - c0) / (NowSec() - w0);
  };
  double off = measure(false);
  double on = measure(true);
  fmt::print("idle process, no monitoring       {:.4f} % of one core\n", off);
  fmt::print("idle process, health every 1 s    {:.4f} % of one core (overhead {:.4f} %)\n", on,
             on - off);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("blackbox recovery benchmarks");
  std::string mode;
  int big = 1'000'000;
  int seconds = 20;
  int rounds = 9;
  int calls = 2000;
  app.add_option("mode", mode, "costs | parts | startup | health")->required();
  app.add_option("--calls", calls, "calls of each part (parts)");
  app.add_option("--events", big, "events in the big journal (startup)");
  app.add_option("--seconds", seconds, "seconds per side (health)");
  app.add_option("--rounds", rounds, "interleaved rounds (costs)");
  CLI11_PARSE(app, argc, argv);
  fs::path dir = fs::temp_directory_path() / fmt::format("bb_recovery_bench_{}", getpid());
  fs::create_directories(dir);
  if (mode == "costs") {
    Costs(dir, rounds);
  } else if (mode == "parts") {
    Parts(dir, calls);
  } else if (mode == "startup") {
    Startup(dir, big);
  } else if (mode == "health") {
    Health(dir, seconds);
  } else {
    fmt::print(stderr, "recovery_bench: unknown mode {}\n", mode);
    fs::remove_all(dir);
    return 2;
  }
  fs::remove_all(dir);
  return 0;
}
