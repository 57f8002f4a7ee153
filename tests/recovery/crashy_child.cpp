// A small application for the process tests: it links the recovery manager
// and then misbehaves in the way its first argument names.
//   crashy_child <mode> <journal_dir> [marker_file]
// Modes: run, handled_error (one failing exception_handler), handled_error_3 (the same with
// three recovery callbacks), returned (one failing exception_handler with three callbacks, then
// "returned" on stdout and a wait to be killed), killed_in_callback (SIGKILL from the second of
// three recovery callbacks of a failing exception_handler), segv, segv_local (in a function local
// to this file), segv_local_bare_name (the same, started as plain "crashy_child"), terminate, hang,
// sigterm, recover_fail, overflow (stack overflow on the main thread), thread_overflow (on a thread
// the application started and prepared with RecoveryManager::prepare_thread), leak (health samples
// every 50 ms, forecast against a 400 MB limit, while the process grows by 2 MB every 50 ms for 3
// s; then a clean exit). "ready" is printed on stdout once the manager is initialized.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blackbox/recovery.h"

// Named, not inlined, exported (-rdynamic): the crash record must name it.
// Not instrumented by UBSan, which would abort on the null store before the
// SIGSEGV this test is about.
extern "C++" __attribute__((noinline, no_sanitize("undefined"))) void crash_in_named_function(
    volatile int* p) {
  *p = 42;
}

namespace {
// Local to this file: not in the dynamic symbol table, so the crash handler
// cannot name it; the next start names it from the file.
__attribute__((noinline, no_sanitize("undefined"))) void crash_in_local_function(volatile int* p) {
  *p = 7;
}
}  // namespace

__attribute__((noinline)) void throw_order_error() {
  throw std::runtime_error("order book corrupted");
}

// Recurses until the stack is gone. The frame is used after the call, so the
// recursion cannot become a loop.
__attribute__((noinline)) int recurse_forever(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  if (depth < 0) return 0;  // never: the stack ends first
  return recurse_forever(depth + 1) + frame[0];
}

// An exception that leaves a noexcept function ends in std::terminate.
__attribute__((noinline)) void throw_through_noexcept() noexcept { throw_order_error(); }

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: crashy_child <mode> <journal_dir> [marker_file]\n");
    return 2;
  }
  std::string mode = argv[1];
  if (mode == "segv_local_bare_name") {
    // Runs segv_local with argv[0] a bare name, as after a PATH lookup: the
    // name the crash handler sees for this executable's frames is not a path.
    std::vector<char*> args = {const_cast<char*>("crashy_child"), const_cast<char*>("segv_local")};
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    args.push_back(nullptr);
    execv("/proc/self/exe", args.data());
    std::perror("execv");
    return 127;
  }
  blackbox::RecoveryOptions options;
  options.journal_dir = argv[2];
  options.state_file = std::string(argv[2]) + "/../system_state.json";
  options.restart_delay = std::chrono::milliseconds(0);
  if (mode == "leak") {
    options.health_check_interval = std::chrono::milliseconds(50);
    options.forecast_memory_limit_bytes = uint64_t{400} << 20;
  }
  std::string marker = argc > 3 ? argv[3] : "";
  auto& rm = blackbox::initialize_recovery_manager(options);
  rm.register_cleanup_callback("write_marker", [marker] {
    if (!marker.empty()) std::ofstream(marker) << "cleanup ran\n";
  });
  std::printf("ready\n");
  std::fflush(stdout);

  if (mode == "run") return 0;
  if (mode == "leak") {
    rm.start_health_monitoring();
    std::vector<std::unique_ptr<char[]>> leaked;
    for (int i = 0; i < 60; ++i) {
      leaked.emplace_back(new char[2 << 20]);
      std::memset(leaked.back().get(), 1, 2 << 20);  // resident, not just reserved
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }
  if (mode == "handled_error" || mode == "handled_error_3") {
    // One failing exception_handler between two marker system calls, so that
    // a tracer can count the fsyncs it makes: access(2) of <dir>/begin and
    // <dir>/end (files that do not exist).
    if (mode == "handled_error_3") {
      for (const char* name : {"reconnect", "reload", "resync"}) {
        rm.register_recovery_callback(name, [] {});
      }
    }
    const std::string dir = std::string(argv[2]) + "/..";
    access((dir + "/begin").c_str(), F_OK);
    try {
      rm.exception_handler("handled", [] { throw_order_error(); });
    } catch (const std::runtime_error&) {
    }
    access((dir + "/end").c_str(), F_OK);
    return 0;
  }
  if (mode == "returned" || mode == "killed_in_callback") {
    const bool kill_in_second = mode == "killed_in_callback";
    rm.register_recovery_callback("reconnect", [] {});
    rm.register_recovery_callback("reload", [kill_in_second] {
      if (kill_in_second) raise(SIGKILL);
    });
    rm.register_recovery_callback("resync", [] {});
    try {
      rm.exception_handler("handled", [] { throw_order_error(); });
    } catch (const std::runtime_error&) {
    }
    std::printf("returned\n");
    std::fflush(stdout);
    while (true) pause();
  }
  if (mode == "segv") {
    volatile int* volatile null_pointer = nullptr;
    crash_in_named_function(null_pointer);
  }
  if (mode == "segv_local") {
    volatile int* volatile null_pointer = nullptr;
    crash_in_local_function(null_pointer);
    return 0;
  }
  if (mode == "terminate") throw_through_noexcept();
  if (mode == "overflow") return recurse_forever(0);
  if (mode == "thread_overflow") {
    std::thread worker([] {
      blackbox::RecoveryManager::prepare_thread();
      recurse_forever(0);
    });
    worker.join();
    return 0;
  }
  if (mode == "hang" || mode == "sigterm") {
    while (true) pause();
  }
  if (mode == "recover_fail") {
    rm.register_recovery_callback("reconnect", [] { throw std::runtime_error("broker refused"); });
    for (int i = 0; i < 10; ++i) {
      try {
        rm.exception_handler("order_execution", [] { throw std::runtime_error("order failed"); });
      } catch (const std::runtime_error&) {
      }
    }
    return 0;  // not reached: the manager gives up after max_recovery_attempts
  }
  std::fprintf(stderr, "crashy_child: unknown mode %s\n", mode.c_str());
  return 2;
}
