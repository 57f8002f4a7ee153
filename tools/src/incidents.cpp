#include "incidents.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>

namespace blackbox::tools {
namespace {

std::string Str(const flatbuffers::String* s) { return s ? s->str() : ""; }

// Limit reasons are the most specific: the watchdog knows why it stopped the run.
bool IsLimitReason(std::string_view r) { return r == "hang" || r == "memory" || r == "cpu"; }

void SetReason(Incident& i, std::string_view reason) {
  if (IsLimitReason(i.reason)) return;
  if (i.reason == "terminate" && !IsLimitReason(reason)) return;
  i.reason = std::string(reason);
}

}  // namespace

std::string_view ReasonForSignal(int signal) {
  switch (signal) {
    case SIGSEGV:
      return "segfault";
    case SIGABRT:
      return "abort";
    case SIGBUS:
      return "bus";
    case SIGFPE:
      return "fpe";
    case SIGILL:
      return "illegal";
    case SIGKILL:
      return "unclean";
    default:
      return "signal";
  }
}

Incident& IncidentBuilder::ForDeath(int32_t pid, int64_t time_ns) {
  for (auto it = incidents_.rbegin(); it != incidents_.rend(); ++it) {
    if (it->pid == pid && std::llabs(it->time_ns - time_ns) <= kSameDeathWindowNs) {
      it->time_ns = std::min(it->time_ns, time_ns);
      return *it;
    }
  }
  Incident& i = incidents_.emplace_back();
  i.pid = pid;
  i.time_ns = time_ns;
  return i;
}

void IncidentBuilder::Add(std::string_view stream, uint64_t seq, const fb::Event& e) {
  const bool from_watchdog = stream == kWatchdogStream;
  auto source = [&](Incident& i, std::string_view kind) {
    i.sources.push_back({std::string(stream), seq, std::string(kind)});
    if (i.primary_stream.empty()) {
      i.primary_stream = std::string(stream);
      i.primary_seq = seq;
    }
  };
  switch (e.payload_type()) {
    case fb::Payload::Lifecycle: {
      const auto* l = e.payload_as_Lifecycle();
      if (!l || l->phase() != fb::Phase::Starting) break;
      if (from_watchdog) {
        if (l->child_pid() != 0) {
          watchdog_child_ = l->child_pid();
          started_ns_.try_emplace(l->child_pid(), e.time_ns());
        }
      } else if (e.pid() != 0 && e.pid() != app_pid_) {
        started_ns_.try_emplace(e.pid(), e.time_ns());
        previous_app_pid_ = app_pid_;
        app_pid_ = e.pid();
      }
      break;
    }
    case fb::Payload::Crash: {
      const auto* c = e.payload_as_Crash();
      if (!c) break;
      int64_t t = c->crash_time_ns() != 0 ? c->crash_time_ns() : e.time_ns();
      Incident& i = ForDeath(c->crashed_pid(), t);
      if (c->origin() == fb::CrashOrigin::Watchdog) {
        source(i, "watchdog");
        if (c->signal() != 0) i.signal = c->signal();
        if (c->exit_code() >= 0) i.exit_code = c->exit_code();
        i.core_dumped = i.core_dumped || c->core_dumped();
      } else {
        source(i, "capture");
        i.has_capture = true;
        i.primary_stream = std::string(stream);  // the capture is the crash shown
        i.primary_seq = seq;
        if (c->signal() != 0) i.signal = c->signal();
        i.fault_address = c->fault_address();
        i.exception_type = Str(c->exception_type());
        i.exception_message = Str(c->exception_message());
        i.frames.clear();
        if (c->frames()) {
          for (const auto* f : *c->frames()) i.frames.push_back(Str(f));
        }
      }
      if (c->origin() == fb::CrashOrigin::Terminate) {
        SetReason(i, "terminate");
      } else if (i.signal != 0) {
        SetReason(i, ReasonForSignal(i.signal));
      } else if (i.exit_code > 0) {
        SetReason(i, "exit");
      }
      break;
    }
    case fb::Payload::Limit: {
      const auto* l = e.payload_as_Limit();
      if (!l || l->action() == fb::LimitAction::Warn) break;
      Incident& i = ForDeath(l->child_pid(), e.time_ns());
      source(i, "limit");
      i.reason = l->kind() == fb::LimitKind::Heartbeat ? "hang"
                 : l->kind() == fb::LimitKind::Memory  ? "memory"
                                                       : "cpu";
      break;
    }
    case fb::Payload::Restart: {
      const auto* r = e.payload_as_Restart();
      if (!r) break;
      if (from_watchdog) {
        // A clean exit, a restart asked for by the service or by a person
        // (blackbox-watchdog --restart NAME): no death.
        if (r->reason() == fb::RestartReason::Exit || r->reason() == fb::RestartReason::Requested ||
            r->reason() == fb::RestartReason::Manual) {
          break;
        }
        int32_t dead = watchdog_child_;
        Incident& i = ForDeath(dead, e.time_ns());
        source(i, "restart");
        i.restart_time_ns = e.time_ns();
        i.restart_attempt = r->attempt();
        i.restart_delay_ms = r->delay_ms();
        i.restart_pid = r->child_pid();
        if (i.exit_code < 0) i.exit_code = r->exit_code();
        if (i.reason.empty()) {
          i.reason = r->reason() == fb::RestartReason::Hang     ? "hang"
                     : r->reason() == fb::RestartReason::Memory ? "memory"
                     : r->reason() == fb::RestartReason::Cpu    ? "cpu"
                     : r->signal() != 0 ? std::string(ReasonForSignal(r->signal()))
                                        : "exit";
        }
      } else if (r->reason() == fb::RestartReason::Unclean && previous_app_pid_ != 0) {
        // Seen at the next start, however long after the death that was: any
        // record of the previous run's death is this one.
        Incident* seen = nullptr;
        auto start = started_ns_.find(previous_app_pid_);
        for (auto it = incidents_.rbegin(); it != incidents_.rend() && !seen; ++it) {
          if (it->pid == previous_app_pid_ &&
              (start == started_ns_.end() || it->time_ns >= start->second)) {
            seen = &*it;
          }
        }
        Incident& i = seen ? *seen : ForDeath(previous_app_pid_, e.time_ns());
        source(i, "unclean");
        if (i.reason.empty()) i.reason = "unclean";
      }
      break;
    }
    default:
      break;
  }
}

std::vector<Incident> IncidentBuilder::Finish() {
  std::vector<Incident> out = std::move(incidents_);
  incidents_.clear();
  std::stable_sort(out.begin(), out.end(),
                   [](const Incident& a, const Incident& b) { return a.time_ns < b.time_ns; });
  for (size_t n = 0; n < out.size(); ++n) {
    Incident& i = out[n];
    i.number = n + 1;
    if (i.reason.empty()) i.reason = "signal";
    auto start = started_ns_.find(i.pid);
    if (start != started_ns_.end() && start->second <= i.time_ns) {
      i.lived_ns = i.time_ns - start->second;
    }
  }
  return out;
}

}  // namespace blackbox::tools
