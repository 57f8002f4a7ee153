// --metrics-listen: GET /metrics for Prometheus, served by a thread of its
// own, never by the event loop. What it serves is folded from the journal
// (both streams, read-only; metrics_follower.h), so counters keep counting
// across restarts of the watchdog and of the service.
//
// Nothing here can delay a restart: the loop never calls into this class
// after Start(); a client that never reads, or sends a byte a second, holds
// up one of the server's threads, not the loop.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "blackbox/status.h"
#include "metrics_follower.h"

namespace blackbox::watchdog {
class HttpServer;
}

namespace blackbox::metrics {

// HOST:PORT, the host an IPv4 address, a name, or a bracketed IPv6 address.
struct ListenAddress {
  std::string host;
  int port = 0;
};
// Parses "127.0.0.1:9464", "[::1]:0", "localhost:9100". Returns an error
// message, or nullopt with *out set.
std::optional<std::string> ParseListenAddress(std::string_view text, ListenAddress* out);

class MetricsServer {
 public:
  // Binds `listen` (port 0: the kernel picks a free one) without serving
  // yet. Fails, with a one-line reason, when the address is malformed or
  // cannot be bound (in use, not local), or the HTTP module cannot be
  // loaded (http_module.h).
  static Result<std::unique_ptr<MetricsServer>> Bind(std::string_view listen,
                                                     std::string journal_root);
  // Stop().
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The address actually bound, HOST:PORT ("[::1]:PORT" for IPv6).
  const std::string& address() const { return address_; }

  // Starts the serving thread. `write_failures`, when set, returns the
  // watchdog writer's failed appends (called on the server's thread).
  // REQUIRES: the caller's signal mask is the one the thread should have.
  void Start(std::function<uint64_t()> write_failures = {});
  // Stops accepting and joins the thread. A request still being received
  // (a client sending a byte a second) would hold the thread for as long as
  // it keeps sending, so after 0.5 s the thread is left to end with the
  // process, and never calls back into the caller again. Idempotent.
  void Stop();

 private:
  // What the serving thread uses. Shared with that thread, which keeps it
  // alive when Stop() has to leave the thread behind (see there).
  struct Core {
    explicit Core(std::string root);
    ~Core();  // where HttpServer is complete
    std::string Render();
    std::unique_ptr<watchdog::HttpServer> http;
    std::mutex mu;                             // one scrape folds at a time
    JournalFollower follower;                  // guarded by mu
    std::function<uint64_t()> write_failures;  // guarded by mu
    std::atomic<bool> finished{false};         // listen_after_bind returned
  };
  explicit MetricsServer(std::shared_ptr<Core> core) : core_(std::move(core)) {}

  std::shared_ptr<Core> core_;
  std::string address_;
  std::thread thread_;
};

}  // namespace blackbox::metrics
