// Checks for the fuzz targets. A failed check prints what broke and aborts, so
// that libFuzzer records the input as a crash: every finding is a broken
// promise of the code under test, never a quirk of the harness.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace blackbox::fuzz {

[[noreturn]] inline void Fail(const char* file, int line, const char* what,
                              std::string_view detail) {
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  if (!detail.empty()) {
    std::fprintf(stderr, "  %.*s\n", static_cast<int>(detail.size()), detail.data());
  }
  std::abort();
}

}  // namespace blackbox::fuzz

// FUZZ_CHECK(cond) / FUZZ_CHECK_MSG(cond, detail): abort with a message when
// `cond` does not hold. `detail` is anything convertible to std::string_view.
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : ::blackbox::fuzz::Fail(__FILE__, __LINE__, #cond, {}))
#define FUZZ_CHECK_MSG(cond, detail) \
  ((cond) ? (void)0 : ::blackbox::fuzz::Fail(__FILE__, __LINE__, #cond, (detail)))
