// Drives tests/journal/ring_hold_child: a ring-mode journal writer that
// appends buffered events on command, its drain "held" (what it appends
// stays in its RING, nowhere else) or "draining". Shared by the journal's
// reader tests and the tool's live-writer tests.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "process.h"

namespace blackbox::testing {

class RingHoldWriter {
 public:
  // Starts `child` (the ring_hold_child binary) on ROOT/STREAM with a
  // 64 KiB ring. Killed and reaped by the destructor.
  RingHoldWriter(const std::string& child, const std::string& root, const std::string& stream,
                 const std::string& mode, const RunOptions& options = {});
  ~RingHoldWriter();
  RingHoldWriter(const RingHoldWriter&) = delete;
  RingHoldWriter& operator=(const RingHoldWriter&) = delete;

  // Appends n buffered events; the seq of the last one once they returned
  // (0 on failure).
  uint64_t Append(int n);
  // Sends one command line of ring_hold_child ("D 10", "hold", "release");
  // its answer (a seq, 0 for those without one); 0 on failure too.
  uint64_t Command(const std::string& line);
  void Kill();

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

}  // namespace blackbox::testing
