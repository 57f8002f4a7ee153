// blackbox serve: the journal as a page in the browser, and the JSON API the
// page reads (serve_api.h). Read-only: no endpoint writes, and nothing is
// answered but what the journal holds.
//
// Security: loopback by default. Any other address requires --token-file; a
// request then needs "Authorization: Bearer TOKEN", or once "?token=TOKEN",
// which sets an HttpOnly cookie for the rest. Tokens are compared in constant
// time.
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "command.h"
#include "journal_access.h"
#include "metrics_server.h"
#include "serve_api.h"
#include "serve_model.h"
#include "serve_page.h"
#include "tool_error.h"

namespace blackbox::tools {
namespace {

constexpr size_t kServerThreads = 4;
constexpr time_t kTimeoutSeconds = 5;
constexpr std::string_view kCookieName = "blackbox_token";

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string token_file;
};

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Equal length and bytes, in time that depends only on the lengths.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

std::string ReadToken(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) BadArgument(fmt::format("--token-file {}: {}", path, std::strerror(errno)));
  std::string token;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) token.append(buf, static_cast<size_t>(n));
  ::close(fd);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.size() < 16) {
    BadArgument(fmt::format("--token-file {}: the token must be at least 16 characters", path));
  }
  return token;
}

std::string CookieToken(const httplib::Request& request) {
  std::string cookies = request.get_header_value("Cookie");
  std::string key = std::string(kCookieName) + "=";
  size_t at = 0;
  while ((at = cookies.find(key, at)) != std::string::npos) {
    if (at == 0 || cookies[at - 1] == ' ' || cookies[at - 1] == ';') {
      size_t end = cookies.find(';', at);
      return cookies.substr(at + key.size(),
                            end == std::string::npos ? end : end - at - key.size());
    }
    at += key.size();
  }
  return "";
}

// Sends `body` as it is. A body given with set_content would be compressed
// by httplib whenever the browser accepts it, with brotli at its slowest
// setting: seconds for the page's half a megabyte of events, on a loopback
// connection that gains nothing from it. A body of known length from a
// content provider is sent uncompressed.
void SendUncompressed(httplib::Response& response, std::string body, const char* type) {
  auto shared = std::make_shared<const std::string>(std::move(body));
  response.set_content_provider(shared->size(), type,
                                [shared](size_t offset, size_t length, httplib::DataSink& sink) {
                                  return sink.write(shared->data() + offset, length);
                                });
}

void SendJson(httplib::Response& response, int status, const Json& body) {
  response.status = status;
  response.set_header("Cache-Control", "no-store");
  SendUncompressed(response, body.dump(), "application/json");
}

void SendError(httplib::Response& response, int status, const std::string& reason) {
  Json body = Json::object();
  body["error"] = reason;
  SendJson(response, status, body);
}

QueryParams Params(const httplib::Request& request) {
  return QueryParams(request.params.begin(), request.params.end());
}

// Runs `answer`, turning ToolError into 400 (bad parameter) or 500.
template <typename Fn>
void Answer(httplib::Response& response, Fn answer) {
  try {
    SendJson(response, 200, answer());
  } catch (const ToolError& e) {
    SendError(response, e.exit_code() == kExitUsage ? 400 : 500, e.what());
  } catch (const std::exception& e) {
    SendError(response, 500, e.what());
  }
  // Each answer opens the journal and may fold all of it; give the memory
  // that freed back to the system, or the process keeps its peak (each of
  // the pool's threads has its own malloc arena).
  malloc_trim(0);
}

int Serve(const GlobalOptions& global, const ServeOptions& o) {
  metrics::ListenAddress where;
  if (auto error = metrics::ParseListenAddress(o.listen, &where)) {
    BadArgument(fmt::format("--listen: {}", *error));
  }
  std::string token;
  if (!o.token_file.empty()) {
    token = ReadToken(o.token_file);
  } else if (!IsLoopback(where.host)) {
    BadArgument(fmt::format(
        "--listen {}: not a loopback address; anyone who can reach it would read the journal. "
        "Give --token-file FILE (a secret of 16 characters or more) to require it",
        o.listen));
  }
  OpenJournal(global.journal);  // refuse at start a root that cannot be read

  httplib::Server http;
  http.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  http.set_read_timeout(kTimeoutSeconds, 0);
  http.set_write_timeout(kTimeoutSeconds, 0);
  http.set_payload_max_length(4096);
  http.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  });
  http.set_pre_routing_handler(
      [&token](const httplib::Request& request, httplib::Response& response) {
        response.set_header("X-Content-Type-Options", "nosniff");
        response.set_header("Referrer-Policy", "no-referrer");
        if (token.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string auth = request.get_header_value("Authorization");
        constexpr std::string_view kBearer = "Bearer ";
        if (auth.rfind(kBearer, 0) == 0 && SameSecret(auth.substr(kBearer.size()), token)) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        if (SameSecret(CookieToken(request), token))
          return httplib::Server::HandlerResponse::Unhandled;
        if (request.has_param("token") && SameSecret(request.get_param_value("token"), token)) {
          response.set_header("Set-Cookie", fmt::format("{}={}; HttpOnly; SameSite=Strict; Path=/",
                                                        kCookieName, token));
          return httplib::Server::HandlerResponse::Unhandled;
        }
        SendError(response, 401, "a token is required (Authorization: Bearer TOKEN, or ?token=)");
        return httplib::Server::HandlerResponse::Handled;
      });
  const std::string& root = global.journal;
  http.Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_header("Cache-Control", "no-store");
    response.set_header("Content-Security-Policy",
                        "default-src 'self'; script-src 'unsafe-inline'; style-src "
                        "'unsafe-inline'; img-src 'self' data:");
    SendUncompressed(response, std::string(ServePage()), "text/html; charset=utf-8");
  });
  http.Get("/api/events", [&root](const httplib::Request& request, httplib::Response& response) {
    Answer(response, [&] { return ServeEvents(root, Params(request)); });
  });
  http.Get("/api/state", [&root](const httplib::Request& request, httplib::Response& response) {
    Answer(response, [&] { return ServeState(root, Params(request)); });
  });
  http.Get("/api/crashes", [&root](const httplib::Request&, httplib::Response& response) {
    Answer(response, [&] { return ServeCrashes(root); });
  });
  http.Get(R"(/api/crashes/([^/]+))",
           [&root](const httplib::Request& request, httplib::Response& response) {
             Answer(response, [&] { return ServeCrash(root, request.matches[1].str()); });
           });
  http.Get("/api/health", [&root](const httplib::Request& request, httplib::Response& response) {
    Answer(response, [&] { return ServeHealth(root, Params(request)); });
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (response.status == 404 && response.body.empty()) SendError(response, 404, "not found");
  });

  errno = 0;
  int port = where.port;
  bool bound = false;
  if (where.port == 0) {
    port = http.bind_to_any_port(where.host);
    bound = port > 0;
  } else {
    bound = http.bind_to_port(where.host, where.port);
  }
  if (!bound) {
    Trouble(fmt::format("cannot listen on {}: {}", o.listen,
                        errno != 0 ? std::strerror(errno) : "not an address of this host"));
  }
  std::string host =
      where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host;
  fmt::print("http://{}:{}/\n", host, port);
  std::fflush(stdout);
  // Read the journal now rather than at the first request; a failure is
  // reported by the requests, which try again.
  std::jthread warm_up([&global] {
    try {
      JournalModel& model = ModelFor(global.journal);
      std::lock_guard lock(model.mu);
      model.CatchUp();
    } catch (const std::exception&) {
    }
    malloc_trim(0);
  });
  if (!http.listen_after_bind()) Trouble(fmt::format("serving {} failed", o.listen));
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, const GlobalOptions& global, CommandBody& body) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd =
      app.add_subcommand("serve", "Serve the journal as a page in the browser, with a JSON API");
  cmd->add_option("--listen", o->listen,
                  "HOST:PORT to listen on (port 0: any free port; the URL is printed)")
      ->capture_default_str();
  cmd->add_option("--token-file", o->token_file,
                  "A secret every request must carry (required off loopback)");
  cmd->footer(
      "Examples:\n"
      "  blackbox serve --journal /var/lib/app/journal\n"
      "  blackbox serve --listen 127.0.0.1:0");
  cmd->callback([&body, &global, o] { body = [&global, o] { return Serve(global, *o); }; });
}

}  // namespace blackbox::tools
