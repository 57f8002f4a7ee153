// Small builders for events in tests: explicit times and pids, so folds are
// deterministic and assertions can name exact values.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "blackbox/event.h"
#include "blackbox/state.h"

namespace blackbox::testing {

inline constexpr int64_t kSecond = 1'000'000'000;

// An encoded event that keeps its bytes alive beside the verified view.
struct TestEvent {
  std::string bytes;
  const fb::Event* event() const { return VerifyEvent(Bytes(bytes)); }
};

template <class PayloadT>
TestEvent Make(std::string_view stream, int64_t time_ns, int pid, PayloadT payload,
               fb::Severity severity = fb::Severity::Info) {
  fb::EventT e;
  e.time_ns = time_ns;
  e.mono_ns = time_ns;
  e.pid = pid;
  e.stream = std::string(stream);
  e.severity = severity;
  e.payload.Set(std::move(payload));
  return TestEvent{EncodeEvent(std::move(e))};
}

inline fb::LifecycleT Lifecycle(fb::Phase phase, int child_pid = 0, std::string reason = {}) {
  fb::LifecycleT l;
  l.phase = phase;
  l.child_pid = child_pid;
  l.reason = std::move(reason);
  return l;
}

inline fb::ErrorT Error(std::string context, std::string type, std::string message) {
  fb::ErrorT e;
  e.context = std::move(context);
  e.exception_type = std::move(type);
  e.message = std::move(message);
  return e;
}

inline fb::CallbackT Callback(fb::CallbackKind kind, std::string name, bool ok) {
  fb::CallbackT c;
  c.kind = kind;
  c.name = std::move(name);
  c.ok = ok;
  if (!ok) c.error = "failed";
  return c;
}

inline fb::GaugeT Gauge(std::string name, double value) {
  fb::GaugeT g;
  g.name = std::move(name);
  g.value = value;
  return g;
}

inline fb::RestartT Restart(fb::RestartReason reason, int attempt = 1) {
  fb::RestartT r;
  r.reason = reason;
  r.attempt = attempt;
  return r;
}

// Folds events in order, numbering each stream's events from 1.
class Folder {
 public:
  template <class PayloadT>
  Folder& Add(std::string_view stream, int64_t time_ns, int pid, PayloadT payload) {
    TestEvent e = Make(stream, time_ns, pid, std::move(payload));
    uint64_t seq = ++seqs_[std::string(stream)];
    Fold(state, *e.event(), stream, seq);
    return *this;
  }
  SystemState state;

 private:
  std::map<std::string, uint64_t> seqs_;
};

}  // namespace blackbox::testing
