#include "metrics_server.h"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "blackbox/event.h"
#include "http_module.h"
#include "metrics_exposition.h"

namespace blackbox::metrics {
namespace {

// Threads answering requests, at most. A slow client holds one of them for
// at most the timeouts below per byte it sends; the event loop is never one
// of them. Each thread exists only while there is a connection to serve
// (http_module.cpp): idle, the server is its accepting thread alone.
constexpr int kServerThreads = 4;
constexpr int kTimeoutSeconds = 2;
constexpr size_t kMaxRequestBody = 4096;

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
  std::string error;
  const watchdog::HttpApi* api = watchdog::LoadHttpModule(&error);
  if (api == nullptr) return Status::InvalidArgument(error);
  auto core = std::make_shared<Core>(std::move(journal_root));
  watchdog::HttpServerOptions http;
  http.host = where.host;
  http.port = where.port;
  http.path = "/metrics";
  http.content_type = std::string(kExpositionContentType);
  Core* raw = core.get();  // the handlers run on the thread that keeps `core` alive
  http.render = [raw] { return raw->Render(); };
  http.max_threads = kServerThreads;
  http.timeout_seconds = kTimeoutSeconds;
  http.max_request_body = kMaxRequestBody;
  watchdog::HttpBound bound = api->bind(http);
  if (bound.server == nullptr) {
    return Status::InvalidArgument(fmt::format("cannot listen on {}: {}", listen, bound.error));
  }
  const int port = bound.port;
  core->http = std::move(bound.server);
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
    core->http->ListenAfterBind();
    core->finished = true;
  });
}

void MetricsServer::Stop() {
  if (!core_) return;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->write_failures = nullptr;  // never called again once Stop returns
  }
  core_->http->Stop();
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
