// The crashing program of the two-builds signature test
// (incidents_process_test.cpp). It is built twice from this file:
// signature_crasher_a as it is, and signature_crasher_b with
// SIGNATURE_CRASHER_MOVED, which adds a function above the crashing ones, so
// that their code, addresses and source lines move and the build ID differs.
//   signature_crasher <mode> <journal_dir>
// Modes: parse (dies of SIGSEGV in orders::parse_order), settle (in
// orders::settle_trade, another function), run (starts, journals the
// previous run's crash, and stops cleanly).
#include <cstdio>
#include <cstring>
#include <string>

#include "blackbox/recovery.h"

namespace orders {

#ifdef SIGNATURE_CRASHER_MOVED
// Only in the second build: moves everything below it.
__attribute__((noinline)) unsigned checksum(const char* text) {
  unsigned sum = 0;
  for (const char* p = text; *p != '\0'; ++p) sum = sum * 31 + static_cast<unsigned char>(*p);
  std::printf("checksum %u\n", sum);
  return sum;
}
// As if the function had a hundred lines: every line below moves too.
#line 150
#endif

// Not instrumented by UBSan, which would stop at the null store before the
// SIGSEGV the test is about.
__attribute__((noinline, no_sanitize("undefined"))) void parse_order(volatile int* book) {
  *book = 1;
}

__attribute__((noinline, no_sanitize("undefined"))) void settle_trade(volatile int* book) {
  *book = 2;
}

}  // namespace orders

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: signature_crasher parse|settle|run JOURNAL_DIR\n");
    return 2;
  }
  blackbox::RecoveryOptions options;
  options.journal_dir = argv[2];
  options.state_file = std::string(argv[2]) + "/../system_state.json";
  blackbox::initialize_recovery_manager(options);
#ifdef SIGNATURE_CRASHER_MOVED
  orders::checksum(argv[1]);
#endif
  volatile int* volatile book = nullptr;
  if (std::strcmp(argv[1], "parse") == 0) orders::parse_order(book);
  if (std::strcmp(argv[1], "settle") == 0) orders::settle_trade(book);
  return 0;
}
