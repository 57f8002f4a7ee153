// A separate process that appends to a journal while the tool reads it.
//   tools_test_writer ROOT STREAM COUNT PAUSE_US [--print-seqs]
// Appends COUNT health events (times 1 ms apart from the fixture's start),
// pausing PAUSE_US after each, then exits 0. Exits 1 on any journal error.
// With --print-seqs, prints "seq N" for each acknowledged append, and each
// warning of the open as "warning TEXT".
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "blackbox/journal.h"

int main(int argc, char** argv) {
  const bool print_seqs = argc == 6 && std::string(argv[5]) == "--print-seqs";
  if (argc != 5 && !print_seqs) {
    std::fprintf(stderr, "usage: tools_test_writer ROOT STREAM COUNT PAUSE_US [--print-seqs]\n");
    return 2;
  }
  constexpr int64_t kT0 = 1768473000LL * 1'000'000'000;
  const int count = std::atoi(argv[3]);
  const int pause_us = std::atoi(argv[4]);
  auto journal = blackbox::Journal::Open(argv[1], argv[2]);
  if (!journal.ok()) {
    std::fprintf(stderr, "open: %s\n", journal.status().ToString().c_str());
    return 1;
  }
  if (print_seqs) {
    for (const std::string& w : (*journal)->TakeWarnings()) std::printf("warning %s\n", w.c_str());
  }
  for (int i = 0; i < count; ++i) {
    blackbox::fb::EventT e;
    e.time_ns = kT0 + int64_t{i} * 1'000'000;
    e.mono_ns = int64_t{i} + 1;
    e.pid = getpid();
    blackbox::fb::HealthT h;
    h.rss_bytes = 1000 + static_cast<uint64_t>(i);
    h.sampled_pid = getpid();
    e.payload.Set(std::move(h));
    auto seq = (*journal)->Append(std::move(e), blackbox::Durability::kBuffered);
    if (!seq.ok()) {
      std::fprintf(stderr, "append: %s\n", seq.status().ToString().c_str());
      return 1;
    }
    if (print_seqs) std::printf("seq %llu\n", static_cast<unsigned long long>(*seq));
    if (pause_us > 0) usleep(static_cast<useconds_t>(pause_us));
  }
  return 0;
}
