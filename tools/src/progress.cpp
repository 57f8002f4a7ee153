#include "progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace blackbox::tools {

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), enabled_(isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (drawn_) fmt::print(stderr, "\r\033[K");
}

void Progress::Draw(uint64_t done, bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  if (total_ == 0) {
    fmt::print(stderr, "\r{} {}\033[K", label_, done);
  } else {
    constexpr int kWidth = 30;
    double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
    int filled = static_cast<int>(fraction * kWidth);
    fmt::print(stderr, "\r{} [{:=<{}}{:<{}}] {:3.0f}% {}/{}\033[K", label_, "", filled, "",
               kWidth - filled, fraction * 100, done, total_);
  }
  std::fflush(stderr);
}

}  // namespace blackbox::tools
