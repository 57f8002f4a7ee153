// libblackbox_watchdog_http.so: the watchdog's HTTP on cpp-httplib
// (http_module.h has the why and the contract).
#include "http_module.h"

#include <fcntl.h>
#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

namespace blackbox::watchdog {
namespace {

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

class Server final : public HttpServer {
 public:
  explicit Server(std::unique_ptr<httplib::Server> http) : http_(std::move(http)) {}
  void ListenAfterBind() override { http_->listen_after_bind(); }
  void Stop() override { http_->stop(); }

 private:
  std::unique_ptr<httplib::Server> http_;
};

HttpBound Bind(const HttpServerOptions& o) {
  HttpBound out;
  try {
    auto http = std::make_unique<httplib::Server>();
    const size_t threads = static_cast<size_t>(o.max_threads > 0 ? o.max_threads : 1);
    http->new_task_queue = [threads] { return new OnDemandThreads(threads); };
    http->set_read_timeout(o.timeout_seconds, 0);
    http->set_write_timeout(o.timeout_seconds, 0);
    http->set_keep_alive_timeout(o.timeout_seconds);
    http->set_payload_max_length(o.max_request_body);
    http->set_socket_options([](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      ::fcntl(sock, F_SETFD, FD_CLOEXEC);
    });
    http->Get(o.path, [render = o.render, type = o.content_type](const httplib::Request&,
                                                                 httplib::Response& response) {
      response.set_content(render(), type);
    });
    errno = 0;
    bool bound = false;
    if (o.port == 0) {
      out.port = http->bind_to_any_port(o.host);
      bound = out.port > 0;
    } else {
      bound = http->bind_to_port(o.host, o.port);
      out.port = o.port;
    }
    if (!bound) {
      out.error = errno != 0 ? std::strerror(errno) : "not an address of this host";
      return out;
    }
    out.server = std::make_unique<Server>(std::move(http));
  } catch (const std::exception& e) {  // never across the module's boundary
    out.server.reset();
    out.error = e.what();
  }
  return out;
}

HttpPostResult PostJson(const std::string& origin, const std::string& path,
                        const std::string& body) {
  HttpPostResult out;
  try {
    httplib::Client client(origin);
    client.set_connection_timeout(1, 0);
    client.set_read_timeout(2, 0);
    client.set_write_timeout(2, 0);
    client.set_keep_alive(false);
    httplib::Result r = client.Post(path, body, "application/json");
    if (!r) {
      out.error = httplib::to_string(r.error());
    } else {
      out.status = r->status;
      out.body = r->body;
    }
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

constexpr HttpApi kApi{kHttpModuleVersion, &Bind, &PostJson};

}  // namespace
}  // namespace blackbox::watchdog

extern "C" const blackbox::watchdog::HttpApi* blackbox_watchdog_http_api() {
  return &blackbox::watchdog::kApi;
}
