// A ring-mode journal writer whose drain is held (journal/src/drain_hook.h),
// for the tests of readers that read a writer's ring: what it appends stays
// in <stream>/RING, not in the database, for as long as it lives.
//
//   ring_hold_child ROOT STREAM RING_BYTES [held|draining]
//
// Opens ROOT/STREAM with ring_bytes = RING_BYTES, holds the drain (unless
// "draining": then it runs as in any ring-mode writer), then reads
// lines from stdin: "N" appends N buffered gauge events named "held" (values
// 0, 1, 2, … across lines) and answers "<seq of the last one>\n" once they
// returned; "D N" appends N durable ones the same way (the drain must be let
// go first: they wait for it); "release" lets the drain go and "hold" holds
// it again, each answering "0\n"; "norelease" makes the drain write without
// releasing (SkipRingReleaseForTesting), answering "0\n". With
// BLACKBOX_TEST_RING_LANES=N the journal has N ring lanes; a buffered append
// into a lane answers 0 for its seq. At end of input it exits at once (_Exit:
// closing the journal would wait for a held drain), leaving the records in
// the ring, as kill -9 does.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "blackbox/journal.h"
#include "drain_hook.h"

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    fmt::print(stderr, "usage: {} ROOT STREAM RING_BYTES [held|draining]\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1], stream = argv[2];
  blackbox::JournalOptions options;
  options.ring_bytes = std::strtoul(argv[3], nullptr, 10);
  if (const char* lanes = std::getenv("BLACKBOX_TEST_RING_LANES")) {
    options.ring_lanes = std::strtoul(lanes, nullptr, 10);
  }
  blackbox::internal::HoldRingDrainForTesting(argc == 4 || std::string(argv[4]) == "held");
  auto journal = blackbox::Journal::Open(root, stream, options);
  if (!journal.ok()) {
    fmt::print(stderr, "ring_hold_child: {}\n", journal.status().ToString());
    return 1;
  }
  double value = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    auto durability = blackbox::Durability::kBuffered;
    long n = 0;
    if (line == "norelease") {
      blackbox::internal::SkipRingReleaseForTesting(true);
    } else if (line == "release" || line == "hold") {
      blackbox::internal::HoldRingDrainForTesting(line == "hold");
      // A drain that read "not held" just before finishes its pass.
      if (line == "hold") ::usleep(20'000);
    } else if (line.rfind("D ", 0) == 0) {
      durability = blackbox::Durability::kDurable;
      n = std::atol(line.c_str() + 2);
    } else {
      n = std::atol(line.c_str());
    }
    uint64_t last = 0;
    for (long i = 0; i < n; ++i, ++value) {
      flatbuffers::FlatBufferBuilder fbb(128);
      auto g = blackbox::fb::CreateGaugeDirect(fbb, "held", value);
      blackbox::FinishEvent(fbb, stream, blackbox::fb::Severity::Info, blackbox::fb::Payload::Gauge,
                            g.Union());
      auto seq = (*journal)->Append(blackbox::Bytes(fbb), durability);
      if (!seq.ok()) {
        fmt::print(stderr, "append failed: {}\n", seq.status().ToString());
        std::_Exit(1);
      }
      last = *seq;
    }
    const std::string reply = fmt::format("{}\n", last);
    if (write(STDOUT_FILENO, reply.data(), reply.size()) != static_cast<ssize_t>(reply.size())) {
      std::_Exit(1);
    }
  }
  std::_Exit(0);
}
