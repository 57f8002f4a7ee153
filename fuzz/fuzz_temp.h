// The temporary directories of the fuzz targets that write journals: one per
// fuzzing process, under $TMPDIR (or /tmp), removed at exit (a crash leaves
// it for inspection), and a fresh root inside it for each input.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace blackbox::fuzz {

inline std::filesystem::path& TempBase() {
  static std::filesystem::path base;
  return base;
}

// Makes <tmp>/blackbox-fuzz-<name>-XXXXXX; from LLVMFuzzerInitialize.
inline void MakeTempBase(const char* name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/blackbox-fuzz-" + name + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  TempBase() = pattern;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(TempBase(), ec);
  });
}

// A root for the next input, not created yet.
inline std::string NextRoot() {
  static uint64_t run = 0;
  return (TempBase() / std::to_string(run++)).string();
}

inline void RemoveRoot(const std::string& root) {
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
}

}  // namespace blackbox::fuzz
