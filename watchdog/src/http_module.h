// The watchdog's HTTP: the /metrics server and the Alertmanager client's
// POST, in a module of their own (libblackbox_watchdog_http.so) that the
// watchdog loads only when --metrics-listen or --alertmanager asks for it.
//
// Why a module: Debian's cpp-httplib is built with TLS, so linking it maps
// OpenSSL's libcrypto and libssl into every watchdog, about 3.5 MB of its
// RSS, whether it serves anything or not (bench/watchdog/README.md). A
// watchdog without monitoring should not carry them.
//
// Contract:
//   - LoadHttpModule() looks for the module only beside the watchdog's own
//     executable (/proc/self/exe) and in the library directory it was
//     installed with (kInstalledModuleDir, relative to the executable): never
//     in LD_LIBRARY_PATH or the working directory, so that the environment
//     cannot substitute it. Loaded once per process, never unloaded.
//   - The module is built from the same tree as the executable: the API is
//     plain C++ across the boundary, checked by kHttpModuleVersion.
//   - Nothing here throws across the boundary; failures are return values.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace blackbox::watchdog {

inline constexpr int kHttpModuleVersion = 1;

// A bound HTTP server that answers GET on one path.
class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Serves until Stop(); returns when it has stopped. Call once, on a thread
  // of the caller's.
  virtual void ListenAfterBind() = 0;
  // Makes ListenAfterBind return. Safe from any thread.
  virtual void Stop() = 0;
};

struct HttpServerOptions {
  std::string host;
  int port = 0;  // 0: the kernel picks a free one
  std::string path;
  std::string content_type;
  std::function<std::string()> render;  // the body of each GET of `path`
  int max_threads = 4;                  // threads that answer at once, at most
  int timeout_seconds = 2;              // read, write and keep-alive timeouts
  size_t max_request_body = 4096;
};

struct HttpBound {
  std::unique_ptr<HttpServer> server;  // null on failure
  int port = 0;                        // the port bound
  std::string error;                   // why not, on failure
};

struct HttpPostResult {
  int status = 0;     // the HTTP status; 0 when no answer came
  std::string body;   // of the answer
  std::string error;  // why no answer came (connection refused, timeout…)
};

// What the module provides.
struct HttpApi {
  int version = 0;  // kHttpModuleVersion
  HttpBound (*bind)(const HttpServerOptions& options) = nullptr;
  // POSTs `body` as application/json to origin ("http://HOST:PORT") + path,
  // with a 1 s connection and 2 s read/write timeout, no keep-alive.
  HttpPostResult (*post_json)(const std::string& origin, const std::string& path,
                              const std::string& body) = nullptr;
};

// The module's API, loaded on first call; nullptr with `*error` set when it
// cannot be found or loaded.
const HttpApi* LoadHttpModule(std::string* error);

}  // namespace blackbox::watchdog

// The one symbol the module exports.
extern "C" const blackbox::watchdog::HttpApi* blackbox_watchdog_http_api();
