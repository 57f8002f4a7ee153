#include "alertmanager.h"

#include <fmt/format.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "http_module.h"

namespace blackbox::watchdog {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kMaxBackoff{30};

// "2026-12-02T22:30:00.123Z"
std::string Rfc3339(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

// Splits "http://host:port/prefix" into "http://host:port" and "/prefix".
struct Url {
  std::string origin;
  std::string prefix;
};
std::optional<Url> SplitUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return std::nullopt;
  const size_t slash = url.find('/', kScheme.size());
  Url u;
  u.origin = std::string(url.substr(0, slash));
  if (slash != std::string_view::npos) u.prefix = std::string(url.substr(slash));
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  return u;
}

}  // namespace

std::string_view AlertmanagerName(AlertKind kind, std::string_view resource) {
  switch (kind) {
    case AlertKind::kCrash:
      return "BlackboxCrash";
    case AlertKind::kHang:
      return "BlackboxHang";
    case AlertKind::kMemory:
      return "BlackboxMemory";
    case AlertKind::kCpu:
      return "BlackboxCpu";
    case AlertKind::kGaveUp:
      return "BlackboxGaveUp";
    case AlertKind::kRecovered:
      return "";
    case AlertKind::kForecast:
      return resource == "disk" ? "BlackboxDiskForecast" : "BlackboxMemoryForecast";
  }
  return "";
}

std::optional<std::string> CheckAlertmanagerUrl(std::string_view url) {
  std::optional<Url> u = SplitUrl(url);
  if (!u) return fmt::format("'{}' is not an http:// URL", url);
  const std::string_view authority = std::string_view(u->origin).substr(7);
  const size_t colon = authority.rfind(':');
  const bool bracketed = authority.starts_with('[');
  if (authority.empty() || colon == std::string_view::npos ||
      (bracketed && authority.find(']') > colon)) {
    return fmt::format("'{}' has no port (http://HOST:PORT)", url);
  }
  const std::string_view host = authority.substr(0, colon);
  const std::string_view port = authority.substr(colon + 1);
  if (host.empty() || port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535) {
    return fmt::format("'{}' has no valid host and port (http://HOST:PORT)", url);
  }
  if (host.find_first_of(" \t/?#@") != std::string_view::npos) {
    return fmt::format("'{}' has a malformed host", url);
  }
  return std::nullopt;
}

AlertmanagerClient::AlertmanagerClient(AlertmanagerOptions options,
                                       std::function<void(fb::CallbackT)> journal)
    : options_(std::move(options)), journal_(std::move(journal)) {
  for (const std::string& url : options_.urls) {
    Peer peer;
    peer.url = url;
    peers_.push_back(std::move(peer));
  }
  thread_ = std::thread([this] { Run(); });
}

AlertmanagerClient::~AlertmanagerClient() { Close(); }

void AlertmanagerClient::Fire(const Alert& alert, std::string_view summary,
                              std::string_view frame) {
  const std::string_view name = AlertmanagerName(alert.kind, alert.resource);
  if (name.empty()) return;
  nlohmann::json labels = {
      {"alertname", name},
      {"service", alert.service},
      {"instance", options_.instance},
      {"severity", alert.kind == AlertKind::kGaveUp ? "critical" : "warning"},
  };
  nlohmann::json annotations = {
      {"summary", summary},
      {"signal", alert.signal > 0 ? SignalName(alert.signal) : ""},
      {"frame", frame},
      {"restarts", std::to_string(alert.restarts)},
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    Firing& f = firing_[std::string(name)];
    if (f.starts_at.empty()) f.starts_at = Rfc3339(std::chrono::system_clock::now());
    f.labels_json = labels.dump();
    f.annotations_json = annotations.dump();
    for (Peer& p : peers_) p.due = Clock::now();
  }
  wake_.notify_one();
}

void AlertmanagerClient::Resolve() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (firing_.empty()) return;
    const std::string now = Rfc3339(std::chrono::system_clock::now());
    for (auto& [name, f] : firing_) {
      f.ends_at = now;
      for (Peer& p : peers_) p.resolved.push_back(f);
    }
    firing_.clear();
    for (Peer& p : peers_) p.due = Clock::now();
  }
  wake_.notify_one();
}

void AlertmanagerClient::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::string AlertmanagerClient::Body(const Peer& peer) const {
  // Prometheus sets endsAt a few resend intervals ahead of a firing alert:
  // the alert resolves by itself when the sender is gone.
  const std::string ends_ahead =
      Rfc3339(std::chrono::system_clock::now() +
              std::chrono::milliseconds(static_cast<int64_t>(4 * options_.resend_seconds * 1000)));
  std::string body = "[";
  auto add = [&](const Firing& f, const std::string& ends_at) {
    if (body.size() > 1) body += ',';
    body += fmt::format(R"({{"labels":{},"annotations":{},"startsAt":"{}","endsAt":"{}"}})",
                        f.labels_json, f.annotations_json, f.starts_at, ends_at);
  };
  for (const auto& [name, f] : firing_) add(f, ends_ahead);
  for (const Firing& f : peer.resolved) add(f, f.ends_at);
  body += ']';
  return body;
}

void AlertmanagerClient::Post(Peer& peer, std::unique_lock<std::mutex>& lock) {
  const std::string body = Body(peer);
  const size_t resolved = peer.resolved.size();
  const std::optional<Url> url = SplitUrl(peer.url);
  lock.unlock();
  std::string error;
  if (!url) {
    error = "not an http:// URL";
  } else {
    std::string load_error;
    const HttpApi* api = LoadHttpModule(&load_error);
    HttpPostResult r;
    if (api == nullptr) {
      r.error = load_error;
    } else {
      r = api->post_json(url->origin, url->prefix + "/api/v2/alerts", body);
    }
    if (r.status == 0) {
      error = r.error;
    } else if (r.status != 200) {
      error = fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200));
    }
  }
  lock.lock();
  fb::CallbackT note;
  note.kind = fb::CallbackKind::Alert;
  note.name = fmt::format("alertmanager {}", peer.url);
  if (error.empty()) {
    // Only the resolved alerts this body carried: Resolve() may have added
    // more meanwhile.
    peer.resolved.erase(peer.resolved.begin(),
                        peer.resolved.begin() + static_cast<std::ptrdiff_t>(resolved));
    peer.backoff = std::chrono::seconds(1);
    peer.due = Clock::now() +
               std::chrono::milliseconds(static_cast<int64_t>(options_.resend_seconds * 1000));
    if (peer.down) {
      peer.down = false;
      note.ok = true;
      note.error = "reachable again";
      lock.unlock();
      journal_(std::move(note));
      lock.lock();
    }
    return;
  }
  peer.due = Clock::now() + peer.backoff;
  peer.backoff = std::min(peer.backoff * 2, kMaxBackoff);
  if (!peer.down) {
    peer.down = true;
    note.ok = false;
    note.error = fmt::format("cannot post alerts: {} (retrying)", error);
    lock.unlock();
    journal_(std::move(note));
    lock.lock();
  }
}

void AlertmanagerClient::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  auto pending = [&](const Peer& p) { return !firing_.empty() || !p.resolved.empty(); };
  while (!closing_) {
    auto next = Clock::time_point::max();
    for (const Peer& p : peers_) {
      if (pending(p)) next = std::min(next, p.due);
    }
    if (next == Clock::time_point::max()) {
      wake_.wait(lock);
    } else if (next > Clock::now()) {
      wake_.wait_until(lock, next);
    }
    if (closing_) break;
    for (Peer& p : peers_) {
      if (pending(p) && p.due <= Clock::now()) Post(p, lock);
    }
  }
  // A last attempt for what a peer has not had yet (the gave-up alert of a
  // watchdog that is exiting).
  for (Peer& p : peers_) {
    if (pending(p) && p.due <= Clock::now()) Post(p, lock);
  }
}

}  // namespace blackbox::watchdog
