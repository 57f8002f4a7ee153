// --alertmanager URL: the watchdog's alerts as Prometheus Alertmanager
// alerts (POST URL/api/v2/alerts), the way Prometheus itself sends them.
//
// Contract:
//   - Every URL is a peer of one Alertmanager cluster and gets every alert
//     (Alertmanager deduplicates; it does not forward between peers).
//   - A firing alert is re-posted every `resend_seconds` while it fires, with
//     endsAt a few resends ahead, so that an Alertmanager that stops hearing
//     from a dead watchdog resolves it by itself; Resolve() posts each one
//     once more with endsAt = now.
//   - Labels are bounded: alertname (BlackboxCrash, BlackboxHang,
//     BlackboxMemory, BlackboxCpu, BlackboxGaveUp), service, instance (the
//     host name), severity. Free text (summary, frame) goes in annotations.
//   - Never blocks its caller: Fire/Resolve only update the state and wake a
//     thread of its own, which posts with short timeouts. A URL that cannot
//     be reached is retried with a doubling backoff (1 s to 30 s); its outage
//     is journaled once when it starts and once when it ends.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "alerts.h"
#include "blackbox/event.h"

namespace blackbox::watchdog {

// The alertname of a kind ("BlackboxCrash", …); empty for kRecovered. A
// forecast of the journal's disk (`resource` "disk") is BlackboxDiskForecast.
std::string_view AlertmanagerName(AlertKind kind, std::string_view resource = {});

// Checks an --alertmanager URL: http://HOST:PORT with an optional path
// prefix (Alertmanager's --web.route-prefix). Returns what is wrong, or
// nothing.
std::optional<std::string> CheckAlertmanagerUrl(std::string_view url);

struct AlertmanagerOptions {
  std::vector<std::string> urls;
  std::string instance;  // the instance label: the host name
  double resend_seconds = 30;
};

class AlertmanagerClient {
 public:
  // `journal` records a delivery or an outage (called on the client's thread).
  AlertmanagerClient(AlertmanagerOptions options, std::function<void(fb::CallbackT)> journal);
  ~AlertmanagerClient();  // Close()
  AlertmanagerClient(const AlertmanagerClient&) = delete;
  AlertmanagerClient& operator=(const AlertmanagerClient&) = delete;

  // Starts (or updates) the firing alert of `alert.kind`.
  void Fire(const Alert& alert, std::string_view summary, std::string_view frame);
  // Resolves every firing alert.
  void Resolve();
  // Makes one last attempt to post what is pending (bounded by the post
  // timeouts), then stops the thread. Idempotent.
  void Close();

 private:
  struct Firing {
    std::string labels_json;       // {"alertname":…,…}
    std::string annotations_json;  // {"summary":…,…}
    std::string starts_at;         // RFC 3339
    std::string ends_at;           // set when resolved
  };
  struct Peer {
    std::string url;
    std::chrono::steady_clock::time_point due{};  // next post
    std::chrono::seconds backoff{1};
    bool down = false;
    std::vector<Firing> resolved;  // still to be posted to this peer
  };
  void Run();
  std::string Body(const Peer& peer) const;  // REQUIRES: mu_ held
  void Post(Peer& peer, std::unique_lock<std::mutex>& lock);

  const AlertmanagerOptions options_;
  const std::function<void(fb::CallbackT)> journal_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, Firing> firing_;  // by alertname; guarded by mu_
  std::vector<Peer> peers_;               // guarded by mu_
  bool closing_ = false;                  // guarded by mu_
  std::thread thread_;
};

}  // namespace blackbox::watchdog
