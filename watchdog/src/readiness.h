// The notify protocol's view of the current child (sd_notify(3)): whether it
// is ready or still starting, its latest STATUS=, its last heartbeat, and
// whether it said STOPPING=1. Pure: messages and the time go in, what the
// loop must journal and which timers it must arm come out. The supervisor
// only moves datagrams and timers. Unit-tested in
// tests/watchdog/readiness_test.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "blackbox/event.h"
#include "notify_socket.h"

namespace blackbox::watchdog {

class Readiness {
 public:
  // A STATUS= change within this long of the last journaled one is
  // coalesced: the latest text is journaled when the interval is over.
  static constexpr int64_t kStatusIntervalNs = 1'000'000'000;

  struct Options {
    double watchdog_timeout = 0;  // seconds; 0: no heartbeat expected
    double stop_timeout = 0;      // seconds; bounds a stop after STOPPING=1
  };
  // One lifecycle event of the child to journal.
  struct Record {
    fb::Phase phase = fb::Phase::Running;
    std::string reason;
    bool durable = false;
  };
  // What the loop does after a message, in this order: journal, arm timers
  // (a value of 0 disarms), and on `triggered` treat the child as hung.
  struct Actions {
    std::vector<Record> journal;
    std::optional<double> status_timer;
    std::optional<double> heartbeat_timer;
    bool triggered = false;  // WATCHDOG=trigger
  };
  // At a heartbeat timeout: how long the child was silent, and why that is a
  // hang.
  struct Silence {
    int64_t since_ns = 0;
    bool stop_overran = false;  // still running --stop-timeout after STOPPING=1
    bool never_spoke = false;   // no READY=1 nor WATCHDOG=1 since its start
  };

  explicit Readiness(Options options) : options_(options) {}

  // A new child started at `now_ns`; everything of the last one is forgotten.
  void Start(int64_t now_ns);
  // The child is counted as running from its start (it does not speak the
  // notify protocol).
  void MarkRunning() { ready_ = true; }

  Actions OnMessage(const NotifyMessage& message, int64_t now_ns);
  // The coalesced status, if one waits (its timer fired, or a health tick).
  std::optional<Record> FlushStatus(int64_t now_ns);
  bool status_pending() const { return !pending_status_.empty(); }

  // `triggered`: the child sent WATCHDOG=trigger.
  Silence SilenceAt(int64_t now_ns, bool triggered) const;

  bool ready() const { return ready_; }
  bool service_stopping() const { return service_stopping_; }
  int64_t last_heartbeat_ns() const { return last_heartbeat_ns_; }

 private:
  fb::Phase StatusPhase() const { return ready_ ? fb::Phase::Running : fb::Phase::Starting; }
  double StopBound() const { return options_.stop_timeout > 0 ? options_.stop_timeout : 1e-9; }

  Options options_;
  int64_t started_ns_ = 0;
  bool ready_ = false;
  bool ready_journaled_ = false;  // READY=1 of the current child journaled
  bool service_stopping_ = false;
  int64_t service_stopping_ns_ = 0;
  int64_t last_heartbeat_ns_ = 0;
  std::string status_text_;
  std::string pending_status_;  // a STATUS= not yet journaled (rate limit)
  int64_t last_status_journaled_ns_ = 0;
};

}  // namespace blackbox::watchdog
