// A journal writer process for the process-level tests (kill -9, live reads).
//
//   journal_writer_child ROOT STREAM THREADS PER_THREAD MODE [RING_BYTES]
//
// THREADS threads append gauge events whose value encodes (thread, index) as
// thread * 1e6 + index; PER_THREAD = 0 means "until killed". MODE is durable,
// buffered, mixed (every third append durable) or split (thread 0 mixed,
// the others buffered: they are not held up by fsyncs). After each append returns the child writes
// one line
// "<seq> <D|B> <value>" to stdout with a single write(2), so a line that
// reached the pipe was acknowledged by the journal. With RING_BYTES the
// journal runs in ring mode (JournalOptions::ring_bytes); a buffered append
// refused because the ring was full is not acknowledged, and the thread goes
// on. With BLACKBOX_TEST_RING_LANES=N the journal has N ring lanes
// (JournalOptions::ring_lanes): a buffered append into a lane prints seq 0.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/journal.h"

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    fmt::print(
        stderr,
        "usage: {} ROOT STREAM THREADS PER_THREAD durable|buffered|mixed|split [RING_BYTES]\n",
        argv[0]);
    return 2;
  }
  const std::string root = argv[1], stream = argv[2], mode = argv[5];
  const int threads = std::atoi(argv[3]);
  const long per_thread = std::atol(argv[4]);
  blackbox::JournalOptions options;
  if (argc == 7) options.ring_bytes = std::strtoul(argv[6], nullptr, 10);
  if (const char* lanes = std::getenv("BLACKBOX_TEST_RING_LANES")) {
    options.ring_lanes = std::strtoul(lanes, nullptr, 10);
  }
  auto journal = blackbox::Journal::Open(root, stream, options);
  if (!journal.ok()) {
    fmt::print(stderr, "journal_writer_child: {}\n", journal.status().ToString());
    return 1;
  }
  blackbox::Journal& j = **journal;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (long i = 0; per_thread == 0 || i < per_thread; ++i) {
        bool durable = mode == "durable" || (mode == "mixed" && i % 3 == 0) ||
                       (mode == "split" && t == 0 && i % 3 == 0);
        double value = t * 1e6 + static_cast<double>(i);
        flatbuffers::FlatBufferBuilder fbb(128);
        auto g = blackbox::fb::CreateGaugeDirect(fbb, "torture", value);
        blackbox::FinishEvent(fbb, stream, blackbox::fb::Severity::Info,
                              blackbox::fb::Payload::Gauge, g.Union());
        auto seq = j.Append(blackbox::Bytes(fbb), durable ? blackbox::Durability::kDurable
                                                          : blackbox::Durability::kBuffered);
        if (!seq.ok() && !durable && options.ring_bytes != 0 && j.dropped_appends() > 0) {
          continue;  // dropped: the ring was full
        }
        if (!seq.ok()) {
          fmt::print(stderr, "append failed: {}\n", seq.status().ToString());
          std::_Exit(1);
        }
        std::string line = fmt::format("{} {} {:.0f}\n", *seq, durable ? 'D' : 'B', value);
        if (write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          std::_Exit(1);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return 0;
}
