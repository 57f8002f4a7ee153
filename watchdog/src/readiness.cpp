#include "readiness.h"

namespace blackbox::watchdog {

void Readiness::Start(int64_t now_ns) {
  started_ns_ = now_ns;
  ready_ = false;
  ready_journaled_ = false;
  service_stopping_ = false;
  service_stopping_ns_ = 0;
  last_heartbeat_ns_ = now_ns;
  pending_status_.clear();
}

Readiness::Actions Readiness::OnMessage(const NotifyMessage& message, int64_t now_ns) {
  Actions a;
  if (message.status && *message.status != status_text_) {
    status_text_ = *message.status;
    if (now_ns - last_status_journaled_ns_ >= kStatusIntervalNs) {
      last_status_journaled_ns_ = now_ns;
      pending_status_.clear();
      // Before READY=1 a --type notify child is still starting.
      a.journal.push_back({StatusPhase(), status_text_, false});
    } else {
      // Coalesced: the latest text is journaled when the second since the
      // last one is over (a timer armed only while a status waits).
      if (pending_status_.empty()) {
        a.status_timer =
            static_cast<double>(last_status_journaled_ns_ + kStatusIntervalNs - now_ns) / 1e9;
      }
      pending_status_ = status_text_;
    }
  }
  // READY=1 is journaled also when the child was counted as running at its
  // spawn: it says when the service itself was ready. Its event carries the
  // latest status, so a status waiting for the rate limit goes with it.
  if (message.ready && !ready_journaled_) {
    ready_ = true;
    ready_journaled_ = true;
    a.journal.push_back({fb::Phase::Running, status_text_.empty() ? "ready" : status_text_, true});
    if (!status_text_.empty()) {
      pending_status_.clear();
      last_status_journaled_ns_ = now_ns;
      a.status_timer = 0;
    }
  }
  if (message.watchdog) {
    if (!ready_) {
      ready_ = true;
      a.journal.push_back({fb::Phase::Running, status_text_, true});
    }
    last_heartbeat_ns_ = now_ns;
    // After STOPPING=1 the timer bounds the stop instead.
    if (!service_stopping_) a.heartbeat_timer = options_.watchdog_timeout;
  }
  if (message.stopping && !service_stopping_) {
    // The heartbeat no longer applies, but the stop is bounded, as systemd's
    // TimeoutStopSec bounds it: still running --stop-timeout after
    // STOPPING=1 is a hang.
    service_stopping_ = true;
    service_stopping_ns_ = now_ns;
    a.journal.push_back({fb::Phase::Stopping, "the service reported STOPPING=1", false});
    a.heartbeat_timer = StopBound();
  }
  a.triggered = message.watchdog_trigger;
  return a;
}

std::optional<Readiness::Record> Readiness::FlushStatus(int64_t now_ns) {
  if (pending_status_.empty()) return std::nullopt;
  Record r{StatusPhase(), std::move(pending_status_), false};
  pending_status_.clear();
  last_status_journaled_ns_ = now_ns;
  return r;
}

Readiness::Silence Readiness::SilenceAt(int64_t now_ns, bool triggered) const {
  Silence s;
  s.stop_overran = service_stopping_ && !triggered;
  s.since_ns = now_ns - (s.stop_overran ? service_stopping_ns_ : last_heartbeat_ns_);
  s.never_spoke = !triggered && !s.stop_overran && !ready_ && last_heartbeat_ns_ == started_ns_;
  return s;
}

}  // namespace blackbox::watchdog
