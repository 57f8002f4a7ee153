#include "metrics_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "blackbox/event.h"
#include "metrics_exposition.h"

namespace blackbox::metrics {
namespace {

// Threads answering requests, at most. A slow client holds one of them for
// at most the timeouts below per byte it sends; the event loop is never one
// of them.
constexpr size_t kServerThreads = 4;
constexpr time_t kTimeoutSeconds = 2;
constexpr size_t kMaxRequestBody = 4096;

// httplib's task queue with threads that exist only while there is a
// connection to serve, up to `max` of them; the rest wait in order. Idle, the
// server is the accepting thread alone: each idle thread of a pool made every
// restart of the child measurably slower (bench/watchdog/bench_monitoring.py:
// 1.003x the crash-to-restart time without a server with one pooled thread,
// 1.08x with two, 1.12x with four; 1.03x with these).
class OnDemandThreads final : public httplib::TaskQueue {
 public:
  explicit OnDemandThreads(size_t max) : max_(max) {}
  ~OnDemandThreads() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    ReapFinished();  // every worker left is serving
    if (workers_.size() >= max_) {
      pending_.push_back(std::move(fn));
      return;
    }
    Worker& w = workers_.emplace_back();
    w.thread = std::thread([this, &w, fn = std::move(fn)]() mutable { Work(w, std::move(fn)); });
  }

  // Serves what is queued, then joins every thread. Idempotent.
  void shutdown() override {
    std::list<Worker> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      workers.swap(workers_);
    }
    for (Worker& w : workers) {
      if (w.thread.joinable()) w.thread.join();
    }
  }

 private:
  struct Worker {
    std::thread thread;
    bool finished = false;  // guarded by mu_
  };

  void Work(Worker& self, std::function<void()> fn) {
    while (true) {
      fn();
      fn = nullptr;
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_.empty()) {
        // Joined by the next enqueue or by shutdown, never touched after this.
        self.finished = true;
        return;
      }
      fn = std::move(pending_.front());
      pending_.pop_front();
    }
  }

  // REQUIRES: mu_ held.
  void ReapFinished() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->finished) {
        it->thread.join();  // it has returned or is returning from Work
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  const size_t max_;
  std::mutex mu_;
  std::list<Worker> workers_;                  // guarded by mu_
  std::deque<std::function<void()>> pending_;  // guarded by mu_
};

}  // namespace

std::optional<std::string> ParseListenAddress(std::string_view text, ListenAddress* out) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return fmt::format("expected HOST:PORT (e.g. 127.0.0.1:9464), got '{}'", text);
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return fmt::format("expected [IPV6]:PORT, got '{}'", text);
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return fmt::format("an IPv6 address goes in brackets ([::1]:9464), got '{}'", text);
  }
  int value = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value < 0 ||
      value > 65535) {
    return fmt::format("expected a port from 0 to 65535 after the ':', got '{}'", text);
  }
  out->host = std::string(host);
  out->port = value;
  return std::nullopt;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Bind(std::string_view listen,
                                                           std::string journal_root) {
  ListenAddress where;
  if (auto error = ParseListenAddress(listen, &where)) return Status::InvalidArgument(*error);
  auto core = std::make_shared<Core>(std::move(journal_root));
  auto http = std::make_unique<httplib::Server>();
  http->new_task_queue = [] { return new OnDemandThreads(kServerThreads); };
  http->set_read_timeout(kTimeoutSeconds, 0);
  http->set_write_timeout(kTimeoutSeconds, 0);
  http->set_keep_alive_timeout(kTimeoutSeconds);
  http->set_payload_max_length(kMaxRequestBody);
  http->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  });
  Core* raw = core.get();  // the handlers run on the thread that keeps `core` alive
  http->Get("/metrics", [raw](const httplib::Request&, httplib::Response& response) {
    response.set_content(raw->Render(), std::string(kExpositionContentType));
  });
  errno = 0;
  int port = where.port;
  bool bound = false;
  if (where.port == 0) {
    port = http->bind_to_any_port(where.host);
    bound = port > 0;
  } else {
    bound = http->bind_to_port(where.host, where.port);
  }
  if (!bound) {
    return Status::InvalidArgument(
        fmt::format("cannot listen on {}: {}", listen,
                    errno != 0 ? std::strerror(errno) : "not an address of this host"));
  }
  core->http = std::move(http);
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(core)));
  server->address_ = where.host.find(':') != std::string::npos
                         ? fmt::format("[{}]:{}", where.host, port)
                         : fmt::format("{}:{}", where.host, port);
  return server;
}

MetricsServer::Core::Core(std::string root) : follower(std::move(root)) {}
MetricsServer::Core::~Core() = default;

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Start(std::function<uint64_t()> write_failures) {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->write_failures = std::move(write_failures);
  }
  thread_ = std::thread([core = core_] {
    core->http->listen_after_bind();
    core->finished = true;
  });
}

void MetricsServer::Stop() {
  if (!core_) return;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->write_failures = nullptr;  // never called again once Stop returns
  }
  core_->http->stop();
  if (thread_.joinable()) {
    for (int i = 0; i < 50 && !core_->finished; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (core_->finished) {
      thread_.join();
    } else {
      thread_.detach();  // holds its own reference to core_
    }
  }
  core_.reset();
}

std::string MetricsServer::Core::Render() {
  std::lock_guard<std::mutex> lock(mu);
  // What could not be read now (a stream being created) is read at the next
  // scrape; what was folded is served meanwhile.
  [[maybe_unused]] Status st = follower.CatchUp();
  ExpositionInputs inputs;
  inputs.now_ns = WallNowNs();
  if (write_failures) {
    inputs.write_failures.emplace();
    (*inputs.write_failures)[std::string(kWatchdogStream)] = write_failures();
  }
  return Exposition(follower.state(), inputs);
}

}  // namespace blackbox::metrics
