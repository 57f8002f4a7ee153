// A scratch directory for tests, shared by every test suite.
#pragma once

#include <string>
#include <string_view>

namespace blackbox::testing {

// A fresh directory (mode 0700, from mkdtemp) under $TMPDIR, else /tmp,
// removed with everything in it on destruction.
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

}  // namespace blackbox::testing
