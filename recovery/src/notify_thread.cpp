// WATCHDOG=1 to the supervisor (systemd or blackbox-watchdog) at half its
// interval, for as long as the application itself beats.
#include "recovery_manager_impl.h"

namespace blackbox {

void RecoveryManager::Impl::PingLoop() {
  auto full = notify_.watchdog_interval();
  auto half = std::chrono::duration_cast<std::chrono::milliseconds>(full / 2);
  if (half.count() == 0) half = std::chrono::milliseconds(1);
  std::unique_lock lock(threads_mu_);
  while (!threads_cv_.wait_for(lock, half, [this] { return stopping_threads_; })) {
    int64_t last = last_heartbeat_mono_.load();
    // Once the app beats, only its beats keep us alive: a hung loop must look hung.
    bool alive =
        last == 0 ||
        MonoNowNs() - last < std::chrono::duration_cast<std::chrono::nanoseconds>(full).count();
    if (alive) notify_.Send("WATCHDOG=1");
  }
}

}  // namespace blackbox
