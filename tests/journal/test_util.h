// Helpers shared by the journal tests.
#pragma once

#include <string>

#include "blackbox/event.h"

namespace blackbox::testing {

// A fresh, empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// A small gauge event with the given name/value and explicit times.
fb::EventT GaugeEvent(std::string_view name, double value, int64_t time_ns = 0);

}  // namespace blackbox::testing
