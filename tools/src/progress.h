// A progress bar on stderr for long work (export, import, compact, verify).
// Drawn only when stderr is a terminal: pipes and log files get nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace blackbox::tools {

class Progress {
 public:
  // `total` is the expected amount of work (0 when unknown: a counter is shown).
  Progress(std::string label, uint64_t total);
  // Erases the bar, so that what follows starts on a clean line.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Cheap enough to call for every event: redraws at most ten times a second.
  void Update(uint64_t done) {
    if (enabled_ && (done & 1023) == 0) Draw(done, false);
  }
  void set_total(uint64_t total) { total_ = total; }

 private:
  void Draw(uint64_t done, bool force);

  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace blackbox::tools
