// The fold: one event in, the next state out. See state.h for the rules.
#include <charconv>
#include <cstdlib>
#include <string_view>

#include "blackbox/journal.h"  // StreamOrigin
#include "blackbox/state.h"

namespace blackbox {
namespace {

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

CrashInfo ToCrashInfo(const fb::Event& event, const fb::Crash& crash, std::string_view stream) {
  CrashInfo info;
  info.time_ns = crash.crash_time_ns() != 0 ? crash.crash_time_ns() : event.time_ns();
  info.stream = std::string(stream);
  info.origin = crash.origin();
  info.signal = crash.signal();
  info.crashed_pid = crash.crashed_pid() != 0 ? crash.crashed_pid() : event.pid();
  info.exit_code = crash.exit_code();
  info.exception_type = Str(crash.exception_type());
  info.exception_message = Str(crash.exception_message());
  if (crash.frames() != nullptr && crash.frames()->size() > 0) {
    info.first_frame = Str(crash.frames()->Get(0));
  }
  return info;
}

// The app's capture of a death and the watchdog's record of it are one crash.
constexpr int64_t kSameCrashWindowNs = 120LL * 1'000'000'000;

void FoldCrash(SystemState& state, const fb::Event& event, std::string_view stream) {
  const fb::Crash* crash = event.payload_as_Crash();
  if (crash == nullptr) {
    state.crash_count += 1;
    return;
  }
  CrashInfo info = ToCrashInfo(event, *crash, stream);
  const std::optional<CrashInfo>& last = state.last_crash;
  const bool same_death = last && last->crashed_pid == info.crashed_pid && info.crashed_pid != 0 &&
                          std::llabs(last->time_ns - info.time_ns) <= kSameCrashWindowNs;
  if (!same_death) {
    state.crash_count += 1;
    state.last_crash = std::move(info);
    return;
  }
  // The record that says more (frames or an exception: the app's capture) is
  // the one kept; the other adds what it alone knows.
  const bool detailed = !info.first_frame.empty() || !info.exception_type.empty();
  const bool had_detail = !last->first_frame.empty() || !last->exception_type.empty();
  if (detailed && !had_detail) {
    if (info.exit_code < 0) info.exit_code = last->exit_code;
    state.last_crash = std::move(info);
  } else if (state.last_crash->exit_code < 0) {
    state.last_crash->exit_code = info.exit_code;
  }
}

// Events the watchdog wrote about itself and its child. They never touch the
// application's own fields: the app's view of itself comes from its stream.
void FoldWatchdog(SystemState& state, const fb::Event& event, std::string_view stream) {
  WatchdogInfo& w = state.watchdog;
  // Every event of the watchdog stream is written by the watchdog itself.
  w.watchdog_pid = event.pid();
  switch (event.payload_type()) {
    case fb::Payload::Lifecycle: {
      const fb::Lifecycle* l = event.payload_as_Lifecycle();
      const fb::Phase previous_phase = w.phase;
      w.phase = l->phase();
      if (l->child_pid() == 0) {
        if (l->phase() == fb::Phase::Starting) {
          w.started_ns = event.time_ns();
          w.restart_count = 0;
        }
        break;
      }
      // A Starting with a text, of the child that is starting already, is the
      // STATUS= of a --type notify child that has not said READY=1 yet; any
      // other Starting is a spawn.
      const bool has_text = l->reason() != nullptr && l->reason()->size() > 0;
      const bool spawn = l->phase() == fb::Phase::Starting &&
                         !(has_text && previous_phase == fb::Phase::Starting &&
                           l->child_pid() == w.child_pid && w.child_started_ns != 0);
      w.child_pid = l->child_pid();
      if (spawn) {
        w.child_started_ns = event.time_ns();
        w.status_text.clear();   // the STATUS= of the child before: this one has said nothing
        w.forecast_seconds = 0;  // the child it was about is gone
        w.forecast_message.clear();
      }
      if (l->phase() == fb::Phase::Running) w.last_heartbeat_ns = event.time_ns();
      if (has_text &&
          (l->phase() == fb::Phase::Running || (l->phase() == fb::Phase::Starting && !spawn))) {
        w.status_text = l->reason()->str();
      }
      if (l->exit_code() >= 0 || l->signal() > 0) {
        w.forecast_seconds = 0;  // the child it was about has ended
        w.forecast_message.clear();
        w.has_last_exit = true;
        w.last_exit_code = l->exit_code();
        w.last_exit_signal = l->signal();
      }
      break;
    }
    case fb::Payload::Restart: {
      const fb::Restart* r = event.payload_as_Restart();
      w.restart_count = r->attempt();
      w.total_restarts += 1;
      w.last_restart_reason = r->reason();
      if (r->child_pid() != 0) w.child_pid = r->child_pid();
      w.child_started_ns = 0;  // the next child's Starting sets it
      break;
    }
    case fb::Payload::Health: {
      const fb::Health* h = event.payload_as_Health();
      w.child_rss_bytes = h->rss_bytes();
      w.child_cpu_percent = h->cpu_percent();
      if (h->over_threshold()) state.health_warnings += 1;
      break;
    }
    case fb::Payload::Crash:
      FoldCrash(state, event, stream);
      break;
    case fb::Payload::Error:
      state.error_count += 1;
      break;
    case fb::Payload::Forecast: {
      const fb::Forecast* f = event.payload_as_Forecast();
      w.forecast_seconds = f->cleared() ? 0 : f->seconds_to_limit();
      w.forecast_message = f->cleared() || f->message() == nullptr ? "" : f->message()->str();
      break;
    }
    case fb::Payload::Config: {
      const fb::Config* c = event.payload_as_Config();
      if (c->component() == nullptr || c->component()->string_view() != "watchdog") break;
      w.metrics_address.clear();
      if (c->entries() == nullptr) break;
      for (const fb::ConfigEntry* e : *c->entries()) {  // not sorted: no LookupByKey
        if (e != nullptr && e->key() != nullptr && e->value() != nullptr &&
            e->key()->string_view() == "metrics_address") {
          w.metrics_address = e->value()->str();
        }
      }
      break;
    }
    default:
      break;
  }
}

void ClearRunFields(SystemState& state) {
  state.memory_usage_mb = 0;
  state.cpu_usage = 0;
  state.memory_percent = 0;
  state.disk_percent = 0;
  state.threads = 0;
  state.open_fds = 0;
  state.gauges.clear();
  state.forecasts.clear();
  state.recovery_attempts = 0;
}

void FoldConfig(SystemState& state, const fb::Config& config) {
  if (config.component() == nullptr || config.component()->string_view() != "recovery") return;
  if (config.entries() == nullptr) return;
  for (const fb::ConfigEntry* entry : *config.entries()) {
    if (entry == nullptr || entry->key() == nullptr || entry->value() == nullptr) continue;
    std::string_view value = entry->value()->string_view();
    int parsed = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (ec != std::errc() || end != value.data() + value.size()) continue;
    std::string_view key = entry->key()->string_view();
    if (key == "max_restarts") state.max_restarts = parsed;
    if (key == "max_recovery_attempts") state.max_recovery_attempts = parsed;
  }
}

void FoldApp(SystemState& state, const fb::Event& event, std::string_view stream) {
  switch (event.payload_type()) {
    case fb::Payload::Lifecycle: {
      const fb::Lifecycle* l = event.payload_as_Lifecycle();
      if (l->phase() == fb::Phase::Starting) {
        state.pid = event.pid();
        state.run_started_ns = event.time_ns();
        ClearRunFields(state);
      }
      // A forecast is about a process that runs: an end clears it.
      if (l->phase() == fb::Phase::Stopped || l->phase() == fb::Phase::Failed) {
        state.forecasts.clear();
      }
      if (l->phase() == fb::Phase::Running && state.status == fb::Phase::Recovering) {
        state.recovery_attempts = 0;  // a fully successful recovery
      }
      state.status = l->phase();
      break;
    }
    case fb::Payload::Error: {
      const fb::Error* e = event.payload_as_Error();
      state.last_error = ErrorInfo{event.time_ns(), Str(e->context()), Str(e->exception_type()),
                                   Str(e->message())};
      state.error_count += 1;
      state.status = fb::Phase::Error;
      break;
    }
    case fb::Payload::Callback: {
      const fb::Callback* c = event.payload_as_Callback();
      if (c->kind() == fb::CallbackKind::Recovery && !c->ok() &&
          state.status == fb::Phase::Recovering) {
        state.recovery_attempts += 1;
        state.status = fb::Phase::Error;
      }
      break;
    }
    case fb::Payload::Restart:
      state.restart_count += 1;
      break;
    case fb::Payload::Gauge: {
      const fb::Gauge* g = event.payload_as_Gauge();
      if (g->name() != nullptr) state.gauges[g->name()->str()] = g->value();
      break;
    }
    case fb::Payload::Health: {
      const fb::Health* h = event.payload_as_Health();
      state.memory_usage_mb = static_cast<double>(h->rss_bytes()) / (1024.0 * 1024.0);
      state.cpu_usage = h->cpu_percent();
      state.memory_percent = h->memory_percent();
      state.disk_percent = h->disk_percent();
      state.threads = h->threads();
      state.open_fds = h->open_fds();
      if (h->over_threshold()) state.health_warnings += 1;
      break;
    }
    case fb::Payload::Forecast: {
      const fb::Forecast* f = event.payload_as_Forecast();
      std::string resource = Str(f->resource());
      if (f->cleared()) {
        state.forecasts.erase(resource);
      } else {
        state.forecasts[std::move(resource)] = {f->seconds_to_limit(), Str(f->message())};
      }
      break;
    }
    case fb::Payload::Config:
      FoldConfig(state, *event.payload_as_Config());
      break;
    case fb::Payload::Crash:
      FoldCrash(state, event, stream);
      break;
    default:
      break;  // LogLine, Limit and payloads this build does not know: counted only.
  }
}

}  // namespace

void Fold(SystemState& state, const fb::Event& event, std::string_view stream, uint64_t seq) {
  // A stream set aside as damaged continues as the stream it came from: the
  // fresh one is numbered above it, so one position covers both.
  stream = StreamOrigin(stream);
  auto it = state.covered.find(stream);
  if (it == state.covered.end()) {
    state.covered.emplace(std::string(stream), seq);
  } else if (seq > it->second) {
    it->second = seq;
  }
  state.event_count += 1;
  if (event.time_ns() > state.timestamp_ns) state.timestamp_ns = event.time_ns();
  // A verified event may still carry a payload type without a table; nothing to fold then.
  if (event.payload() == nullptr) return;
  if (stream == kWatchdogStream) {
    FoldWatchdog(state, event, stream);
  } else {
    FoldApp(state, event, stream);
  }
}

double SystemState::uptime_seconds() const {
  if (run_started_ns == 0 || timestamp_ns < run_started_ns) return 0;
  // In __int128: arbitrary (e.g. imported) times must not overflow.
  return static_cast<double>(static_cast<__int128>(timestamp_ns) - run_started_ns) / 1e9;
}

double SystemState::gauge(std::string_view name) const {
  auto it = gauges.find(name);
  return it == gauges.end() ? 0.0 : it->second;
}

}  // namespace blackbox
