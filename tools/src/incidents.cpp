#include "incidents.h"

#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <set>

#include "human_format.h"

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

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Libraries whose frames are never the application's.
bool IsSystemModule(std::string_view module) {
  for (std::string_view prefix :
       {"libc.so", "libc-", "libm.so", "libpthread", "libstdc++", "libgcc_s", "ld-linux", "ld-musl",
        "ld.so", "linux-vdso", "libunwind"}) {
    if (module.starts_with(prefix)) return true;
  }
  return false;
}

// The entry stub, the C library's start and blackbox's own crash handler
// (recovery/src/crash_capture.cpp, linked into the application).
bool IsSkippedFunction(std::string_view f) {
  for (std::string_view name : {"_start", "__libc_start_main", "__libc_start_call_main",
                                "__restore_rt", "abort", "raise", "std::terminate()"}) {
    if (f == name) return true;
  }
  if (f.starts_with("blackbox::")) {
    for (std::string_view handler :
         {"OnFatalSignal(", "OnTerminate(", "WriteFrames(", "WaitForRecord(", "WriteHeader("}) {
      if (f.find(handler) != std::string_view::npos) return true;
    }
  }
  return f.starts_with("__cxa_") || f.starts_with("__gnu_cxx::__verbose_terminate_handler") ||
         f.starts_with("_Unwind_") || f.starts_with("__cxxabiv1::");
}

// "f.cold", "f.part.0", "f.isra.1", "f.constprop.2", "f [clone .cold]" -> "f".
void StripCloneSuffix(std::string& f) {
  if (size_t clone = f.find(" [clone "); clone != std::string::npos) f.erase(clone);
  for (;;) {
    size_t dot = f.rfind('.');
    if (dot == std::string::npos || dot == 0) return;
    std::string_view tail = std::string_view(f).substr(dot + 1);
    if (tail == "cold") {
      f.erase(dot);
      continue;
    }
    if (IsDigits(tail)) {
      size_t dot2 = f.rfind('.', dot - 1);
      if (dot2 != std::string::npos) {
        std::string_view kind = std::string_view(f).substr(dot2 + 1, dot - dot2 - 1);
        if (kind == "part" || kind == "isra" || kind == "constprop" || kind == "lto_priv") {
          f.erase(dot2);
          continue;
        }
      }
    }
    return;
  }
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

std::string FrameFunction(std::string_view frame) {
  std::string f(frame);
  // Python's faulthandler, as the capture writes it: "x.py:4 in f" -> "x.py in f".
  if (size_t in = f.find(" in "); in != std::string::npos && f.find(" (") == std::string::npos) {
    size_t colon = f.rfind(':', in);
    if (colon != std::string::npos &&
        IsDigits(std::string_view(f).substr(colon + 1, in - colon - 1))) {
      return f.substr(0, colon) + f.substr(in);
    }
  }
  // " at file:line"
  if (size_t at = f.rfind(" at "); at != std::string::npos) {
    size_t colon = f.rfind(':');
    if (colon != std::string::npos && colon > at &&
        IsDigits(std::string_view(f).substr(colon + 1))) {
      f.erase(at);
    }
  }
  // " (module)"
  if (f.ends_with(')')) {
    if (size_t open = f.rfind(" ("); open != std::string::npos) {
      std::string module = f.substr(open + 2, f.size() - open - 3);
      if (module.find('(') == std::string::npos) {
        if (IsSystemModule(module)) return "";
        f.erase(open);
      }
    }
  }
  // " +0x1a", " [inlined]"
  if (f.ends_with(" [inlined]")) f.erase(f.size() - std::string_view(" [inlined]").size());
  if (size_t plus = f.rfind(" +0x"); plus != std::string::npos) f.erase(plus);
  // No symbol: "app+0x1234", "0x7f12..." or "?": nothing that survives a rebuild.
  if (f.empty() || f == "?" || f.starts_with("0x") || f.find("+0x") != std::string::npos) {
    return "";
  }
  StripCloneSuffix(f);
  if (IsSkippedFunction(f)) return "";
  return f;
}

std::vector<std::string> SignatureFrames(const std::vector<std::string>& frames, size_t n) {
  std::vector<std::string> out;
  for (const std::string& frame : frames) {
    if (out.size() >= n) break;
    std::string f = FrameFunction(frame);
    if (!f.empty()) out.push_back(std::move(f));
  }
  return out;
}

std::string IncidentSignature(const Incident& i) {
  if (i.frames.empty() && i.exception_type.empty()) return "";
  std::string key = !i.exception_type.empty() ? i.exception_type
                    : i.signal != 0           ? SignalName(i.signal)
                                              : std::string("-");
  for (const std::string& f : SignatureFrames(i.frames)) {
    key += '\n';
    key += f;
  }
  return fmt::format("{:012x}", Fnv1a64(key) & 0xffff'ffff'ffffULL);
}

std::vector<SignatureGroup> GroupBySignature(const std::vector<const Incident*>& incidents) {
  std::vector<SignatureGroup> groups;
  std::map<std::string_view, size_t> index;
  for (const Incident* i : incidents) {
    if (i->signature.empty()) continue;
    auto [it, fresh] = index.emplace(i->signature, groups.size());
    if (fresh) groups.push_back({.first = i, .last = i, .count = 0, .builds = {}});
    SignatureGroup& g = groups[it->second];
    g.last = i;
    ++g.count;
    if (!i->build_id.empty() &&
        std::find(g.builds.begin(), g.builds.end(), i->build_id) == g.builds.end()) {
      g.builds.push_back(i->build_id);
    }
  }
  return groups;
}

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
    case fb::Payload::Config: {
      const auto* c = e.payload_as_Config();
      if (from_watchdog || !c || !c->entries() || e.pid() == 0 || !c->component() ||
          c->component()->string_view() != "recovery") {
        break;
      }
      for (const fb::ConfigEntry* entry : *c->entries()) {  // not trusted to be sorted
        if (entry && entry->key() && entry->value() && entry->key()->string_view() == "build_id") {
          build_id_[e.pid()] = entry->value()->str();
        }
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
    if (auto id = build_id_.find(i.pid); id != build_id_.end()) i.build_id = id->second;
  }
  std::set<std::string> seen;
  for (Incident& i : out) {
    i.signature = IncidentSignature(i);
    i.first_seen = !i.signature.empty() && seen.insert(i.signature).second;
  }
  return out;
}

}  // namespace blackbox::tools
