// blackbox-demo: a fake order router that uses the whole recovery API, with
// switches to misbehave so each path can be seen end to end.
//
//   blackbox-demo [--journal DIR] [--orders N] [--interval-ms MS]
//                 [--segfault-after N] [--throw-uncaught-after N]
//                 [--hang-after N] [--leak-mb-per-order MB] [--error-every N]
//                 [--tour]
//
// --tour picks the misbehaviour from how many times this service has already
// been restarted after an unclean end (folded from its journal), so that under
// blackbox-watchdog one run shows every path in turn: handled errors and a
// segfault, then an uncaught exception, then a hang, then a memory leak.
//
// It works under systemd (Type=notify, WatchdogSec=) and under
// blackbox-watchdog alike: READY=1 after init, WATCHDOG=1 while the order
// loop keeps beating, STOPPING=1 on SIGTERM.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "blackbox/recovery.h"

// Not in an anonymous namespace: functions with external linkage are in the
// dynamic symbol table (-rdynamic), so crash frames can name them.
namespace demo {

struct Broker {
  bool connected = true;
  void reconnect() { connected = true; }
};

// Named and not inlined, so a crash record names it.
__attribute__((noinline, no_sanitize("undefined"))) void route_order_with_corrupt_book(int order) {
  volatile int* volatile book = nullptr;
  *book = order;
}

__attribute__((noinline)) void route_order(Broker& broker, int order, int error_every) {
  if (error_every > 0 && order % error_every == 0) {
    broker.connected = false;
    throw std::runtime_error(fmt::format("broker rejected order {}", order));
  }
}

}  // namespace demo

using demo::Broker;
using demo::route_order;
using demo::route_order_with_corrupt_book;

int main(int argc, char** argv) {
  CLI::App app("blackbox-demo: a fake order router for the blackbox recovery manager");
  std::string journal;
  int orders = 0;  // 0 = forever
  int interval_ms = 200;
  int segfault_after = 0, throw_after = 0, hang_after = 0, error_every = 0;
  int leak_mb = 0;
  app.add_option("--journal", journal,
                 "journal root (default: $BLACKBOX_JOURNAL or ./blackbox-journal)");
  app.add_option("--orders", orders, "stop after N orders (0 = run until SIGTERM)");
  app.add_option("--interval-ms", interval_ms, "time between orders")->check(CLI::PositiveNumber);
  app.add_option("--segfault-after", segfault_after, "segfault on order N");
  app.add_option("--throw-uncaught-after", throw_after, "throw an uncaught exception on order N");
  app.add_option("--hang-after", hang_after, "stop heartbeats and hang on order N");
  app.add_option("--leak-mb-per-order", leak_mb, "leak this many MB per order");
  app.add_option("--error-every", error_every, "a handled broker error every N orders");
  bool tour = false;
  app.add_flag("--tour", tour, "misbehave differently on each restart (see the README's demo)");
  CLI11_PARSE(app, argc, argv);

  blackbox::RecoveryOptions options;
  options.journal_dir = journal;
  options.health_check_interval = std::chrono::seconds(5);
  auto& rm = blackbox::initialize_recovery_manager(options);
  if (tour) {
    const int restarts = rm.state().restart_count;
    switch (restarts) {
      case 0:
        error_every = 3;
        segfault_after = 8;
        break;
      case 1:
        throw_after = 5;
        break;
      case 2:
        hang_after = 5;
        break;
      default:
        leak_mb = 8;
        break;
    }
    fmt::print("blackbox-demo: restart_count {} -> {}\n", restarts,
               segfault_after ? "handled errors, then a segfault"
               : throw_after  ? "an uncaught exception"
               : hang_after   ? "a hang"
                              : "a memory leak");
    std::fflush(stdout);
  }

  Broker broker;
  std::atomic<bool> running{true};
  rm.register_recovery_callback("reconnect_broker", [&] { broker.reconnect(); });
  rm.register_cleanup_callback("close_positions", [&] { rm.set_gauge("active_positions", 0); });
  rm.register_cleanup_callback("disconnect", [&] { broker.connected = false; });
  // Let the loop finish its current order before the manager shuts down.
  rm.on_shutdown_request([&](int) { running = false; });
  rm.start_health_monitoring();
  rm.set_gauge("active_connections", 1);

  std::vector<std::unique_ptr<char[]>> leaked;
  int positions = 0;
  for (int order = 1; running && (orders == 0 || order <= orders); ++order) {
    rm.heartbeat();
    if (order == segfault_after) route_order_with_corrupt_book(order);
    if (order == throw_after) throw std::logic_error(fmt::format("unroutable order {}", order));
    if (order == hang_after) {
      fmt::print("order {}: hanging (no more heartbeats)\n", order);
      std::fflush(stdout);
      while (true) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    if (leak_mb > 0) {
      auto block = std::make_unique<char[]>(static_cast<size_t>(leak_mb) << 20);
      for (size_t i = 0; i < (static_cast<size_t>(leak_mb) << 20); i += 4096) block[i] = 1;
      leaked.push_back(std::move(block));
    }
    try {
      rm.exception_handler("order_execution", [&] { route_order(broker, order, error_every); });
      positions = (positions + 1) % 5;
      rm.set_gauge("active_positions", positions);
    } catch (const std::exception& e) {
      fmt::print(stderr, "ERROR order {}: {} (recovered: {})\n", order, e.what(),
                 broker.connected ? "yes" : "no");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  blackbox::SystemInfo info = rm.get_system_info();
  fmt::print("stopping: status {}, memory {:.1f} MB, cpu {:.1f} %, restarts {}\n", info.status,
             info.memory_usage_mb, info.cpu_percent, info.restart_count);
  rm.graceful_shutdown();
  return 0;
}
