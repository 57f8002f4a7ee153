// The writer of the kill -9 torture: an application using the recovery
// manager, appending from several threads until it is SIGKILLed.
//
//   faults_torture_child JOURNAL STATE_FILE [probe|tolerate]
//
// After the manager has started it prints
//   start restart_count=<R> failures=<F>
// (probe: then exits cleanly at once). Then, until killed:
//   - 2 threads report exceptions (durable) with the message "ack <t> <n>" and
//     print "E <t> <n>" once report_exception has returned;
//   - 1 thread sets gauges (buffered) as fast as it can, unacknowledged;
//   - 2 threads append Gauge events named "t<t>" with value n straight to a
//     second stream ("torture"), alternating durable and buffered, and print
//     "D|B <seq> <t> <n>" once Append has returned.
// Health samples (every 20 ms) and snapshots (every 300 events) run too, so
// that kills also land in them. Every line goes out with one write(2): a line
// in the pipe was acknowledged before the kill. A journal failure ends the
// process (exit 1), except with `tolerate` (the disk-full torture): then the
// event is simply not acknowledged and the threads go on.
// With BLACKBOX_TORTURE_RING_BYTES set (not 0), both streams run in ring mode
// (RecoveryOptions::journal_ring_bytes, JournalOptions::ring_bytes).
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/journal.h"
#include "blackbox/recovery.h"

namespace {

void Say(const std::string& line) {
  if (write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::_Exit(3);  // the test is gone
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: {} JOURNAL STATE_FILE [probe]\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  const bool probe = argc > 3 && std::string(argv[3]) == "probe";
  const bool tolerate = argc > 3 && std::string(argv[3]) == "tolerate";

  const char* ring = std::getenv("BLACKBOX_TORTURE_RING_BYTES");
  const size_t ring_bytes = ring == nullptr ? 0 : std::strtoul(ring, nullptr, 10);

  blackbox::RecoveryOptions options;
  options.journal_ring_bytes = ring_bytes;
  options.journal_dir = root;
  options.state_file = argv[2];
  options.health_check_interval = std::chrono::milliseconds(20);
  options.snapshot_every = 300;
  // No recovery callbacks: every recovery succeeds, so the app never gives up.
  blackbox::RecoveryManager rm(options);
  Say(fmt::format("start restart_count={} failures={}\n", rm.state().restart_count,
                  rm.journal_failures()));
  if (probe) return 0;

  blackbox::JournalOptions journal_options;
  journal_options.ring_bytes = ring_bytes;
  auto journal = blackbox::Journal::Open(root, "torture", journal_options);
  if (!journal.ok()) {
    fmt::print(stderr, "faults_torture_child: {}\n", journal.status().ToString());
    return 1;
  }
  blackbox::Journal& j = **journal;
  rm.start_health_monitoring();

  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&rm, t, tolerate] {
      for (long n = 0;; ++n) {
        const uint64_t before = rm.journal_failures();
        rm.report_exception(
            "torture", std::make_exception_ptr(std::runtime_error(fmt::format("ack {} {}", t, n))));
        // Any failure meanwhile (this thread's or another's) and the event is
        // not acknowledged: an acknowledgement must never be wrong.
        if (rm.journal_failures() != before) {
          if (tolerate) continue;
          fmt::print(stderr, "journal failure while reporting ack {} {}\n", t, n);
          std::_Exit(1);
        }
        Say(fmt::format("E {} {}\n", t, n));
      }
    });
  }
  threads.emplace_back([&rm] {
    for (long n = 0;; ++n) {
      rm.set_gauge(fmt::format("g{}", n % 4), static_cast<double>(n));
      // Leave the two cores to the durable writers and the test.
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&j, t, tolerate] {
      flatbuffers::FlatBufferBuilder fbb(128);
      for (long n = 0;; ++n) {
        const bool durable = n % 2 == 0;
        fbb.Clear();
        auto g = blackbox::fb::CreateGaugeDirect(fbb, fmt::format("t{}", t).c_str(),
                                                 static_cast<double>(n));
        blackbox::FinishEvent(fbb, "torture", blackbox::fb::Severity::Info,
                              blackbox::fb::Payload::Gauge, g.Union());
        auto seq = j.Append(blackbox::Bytes(fbb), durable ? blackbox::Durability::kDurable
                                                          : blackbox::Durability::kBuffered);
        // On a small disk the journal must not fill it by itself for good.
        if (tolerate) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (!seq.ok() && tolerate) continue;
        if (!seq.ok()) {
          fmt::print(stderr, "append failed: {}\n", seq.status().ToString());
          std::_Exit(1);
        }
        Say(fmt::format("{} {} {} {}\n", durable ? 'D' : 'B', *seq, t, n));
      }
    });
  }
  for (auto& th : threads) th.join();  // never: the test kills us
  return 0;
}
