// The C++ side of bench/python/bench_python.py: the same calls from C++,
// timed the same way. Prints one JSON object: nanoseconds per call.
//
//   python_bench_cpp JOURNAL_DIR GAUGES ERRORS
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "blackbox/recovery.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    fmt::print(stderr, "usage: python_bench_cpp JOURNAL_DIR GAUGES ERRORS\n");
    return 2;
  }
  blackbox::RecoveryOptions o;
  o.journal_dir = argv[1];
  o.state_file = "";
  o.handle_signals = false;
  o.capture_crashes = false;
  o.max_recovery_attempts = 1 << 30;
  const long gauges = std::atol(argv[2]);
  const long errors = std::atol(argv[3]);
  blackbox::RecoveryManager rm(o);
  using Clock = std::chrono::steady_clock;
  auto per_call = [](Clock::time_point start, long n) {
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
           static_cast<double>(n);
  };
  auto start = Clock::now();
  for (long i = 0; i < gauges; ++i) rm.set_gauge("active_positions", static_cast<double>(i));
  double gauge_ns = per_call(start, gauges);
  start = Clock::now();
  for (long i = 0; i < errors; ++i) {
    try {
      rm.exception_handler("x", [] { throw std::runtime_error("v"); });
    } catch (const std::runtime_error&) {
    }
  }
  double error_ns = per_call(start, errors);
  fmt::print("{{\"set_gauge_ns\": {:.1f}, \"handled_error_ns\": {:.1f}}}\n", gauge_ns, error_ns);
  return 0;
}
