#include "metrics_fold.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace blackbox::metrics {
namespace {

void CountDeath(MetricsState& s, std::map<int, uint64_t>& deaths, const fb::Event& event) {
  const fb::Crash* crash = event.payload_as_Crash();
  if (crash->signal() <= 0) return;  // an exit status, not a death by signal
  // Signals are 1..64 on Linux; anything else is one bounded bucket.
  deaths[crash->signal() <= 64 ? crash->signal() : 0] += 1;
  const int64_t when = crash->crash_time_ns() != 0 ? crash->crash_time_ns() : event.time_ns();
  s.last_crash_ns = std::max(s.last_crash_ns, when);
}

void FoldWatchdogConfig(MetricsState& s, const fb::Config& config) {
  if (config.component() == nullptr || config.component()->string_view() != "watchdog") return;
  if (config.entries() == nullptr) return;
  for (const fb::ConfigEntry* entry : *config.entries()) {
    if (entry == nullptr || entry->key() == nullptr || entry->value() == nullptr) continue;
    const std::string_view key = entry->key()->string_view();
    const std::string_view value = entry->value()->string_view();
    const char* end = value.data() + value.size();
    if (key == "max_restarts") {
      int parsed = 0;
      auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
      if (ec == std::errc() && ptr == end) s.max_restarts = parsed;
    } else if (key == "restart_window") {
      double seconds = 0;
      auto [ptr, ec] = std::from_chars(value.data(), end, seconds);
      if (ec == std::errc() && ptr == end && std::isfinite(seconds) && seconds >= 0 &&
          seconds < 1e9) {
        s.restart_window_ns = static_cast<int64_t>(seconds * 1e9);
      }
    }
  }
}

void FoldWatchdog(MetricsState& s, const fb::Event& event) {
  s.has_watchdog = true;
  switch (event.payload_type()) {
    case fb::Payload::Config:
      FoldWatchdogConfig(s, *event.payload_as_Config());
      break;
    case fb::Payload::Lifecycle: {
      const fb::Lifecycle* l = event.payload_as_Lifecycle();
      const fb::Phase phase = l->phase();
      if (l->child_pid() == 0) {
        if (phase == fb::Phase::Starting) s.restart_ns.clear();
        if (phase == fb::Phase::Starting || phase == fb::Phase::Stopped ||
            phase == fb::Phase::Failed) {
          s.child_running = false;
        }
        break;
      }
      if (phase == fb::Phase::Starting) {
        // A Starting with a text of a child already started is its STATUS=
        // before READY=1 (--type notify), not a new start.
        const bool status = l->reason() != nullptr && l->reason()->size() > 0 && s.child_running &&
                            s.child_started_ns != 0;
        s.child_running = true;
        if (!status) {
          s.child_started_ns = event.time_ns();
          s.memory_exhaustion_ns = 0;
        }
      } else if (phase == fb::Phase::Running) {
        s.child_running = true;
      } else if (phase == fb::Phase::Backoff || phase == fb::Phase::Stopped ||
                 phase == fb::Phase::Failed) {
        s.child_running = false;
        s.child_ended_ns = std::max(s.child_ended_ns, event.time_ns());
      }
      break;
    }
    case fb::Payload::Forecast: {
      const fb::Forecast* f = event.payload_as_Forecast();
      s.memory_exhaustion_ns =
          f->cleared() ? 0 : event.time_ns() + static_cast<int64_t>(f->seconds_to_limit() * 1e9);
      break;
    }
    case fb::Payload::Restart: {
      s.restarts[std::string(RestartReasonName(event.payload_as_Restart()->reason()))] += 1;
      s.restart_ns.push_back(event.time_ns());
      // Only the newest max_restarts + 1 can still count against the budget.
      const size_t keep = static_cast<size_t>(std::max(s.max_restarts, 0)) + 1;
      while (s.restart_ns.size() > keep) s.restart_ns.pop_front();
      break;
    }
    case fb::Payload::Crash:
      CountDeath(s, s.watchdog_deaths, event);
      break;
    case fb::Payload::Health: {
      const fb::Health* h = event.payload_as_Health();
      s.child_rss_bytes = h->rss_bytes();
      s.child_cpu_percent = h->cpu_percent();
      if (h->over_threshold()) s.health_warnings += 1;
      break;
    }
    default:
      break;
  }
}

void FoldAppForecast(MetricsState& s, const fb::Event& event) {
  const fb::Forecast* f = event.payload_as_Forecast();
  if (f->resource() == nullptr) return;
  const std::string_view resource = f->resource()->string_view();
  if (resource != "rss" && resource != "disk") return;  // bounded labels
  if (f->cleared() || !std::isfinite(f->seconds_to_limit()) || f->seconds_to_limit() < 0 ||
      f->seconds_to_limit() > 1e9) {
    if (auto it = s.app_forecasts.find(resource); it != s.app_forecasts.end()) {
      s.app_forecasts.erase(it);
    }
    return;
  }
  s.app_forecasts[std::string(resource)] = {
      .given_ns = event.time_ns(),
      .exhaustion_ns = event.time_ns() + static_cast<int64_t>(f->seconds_to_limit() * 1e9)};
}

void FoldApp(MetricsState& s, const fb::Event& event) {
  switch (event.payload_type()) {
    case fb::Payload::Lifecycle: {
      const fb::Phase phase = event.payload_as_Lifecycle()->phase();
      if (phase == fb::Phase::Starting) s.gauges.clear();
      if (phase == fb::Phase::Starting || phase == fb::Phase::Stopped ||
          phase == fb::Phase::Failed) {
        s.app_forecasts.clear();
      }
      break;
    }
    case fb::Payload::Forecast:
      FoldAppForecast(s, event);
      break;
    case fb::Payload::Error:
      s.errors += 1;
      break;
    case fb::Payload::Gauge: {
      const fb::Gauge* g = event.payload_as_Gauge();
      if (g->name() == nullptr) break;
      auto it = s.gauges.find(g->name()->string_view());
      if (it != s.gauges.end()) {
        it->second = g->value();
      } else if (s.gauges.size() < kMaxGauges) {
        s.gauges.emplace(g->name()->str(), g->value());
      } else {
        s.gauges_dropped += 1;
      }
      break;
    }
    case fb::Payload::Crash:
      CountDeath(s, s.app_deaths, event);
      break;
    case fb::Payload::Health:
      if (event.payload_as_Health()->over_threshold()) s.health_warnings += 1;
      break;
    default:
      break;
  }
}

}  // namespace

int MetricsState::RestartBudgetRemaining(int64_t now_ns) const {
  int inside = 0;
  for (int64_t t : restart_ns) {
    if (restart_window_ns == 0 || now_ns - t < restart_window_ns) ++inside;
  }
  return std::max(max_restarts - inside, 0);
}

const MetricsState::AppForecast* MetricsState::HoldingAppForecast(std::string_view resource) const {
  auto it = app_forecasts.find(resource);
  if (it == app_forecasts.end()) return nullptr;
  if (has_watchdog && (!child_running || it->second.given_ns <= child_ended_ns)) return nullptr;
  return &it->second;
}

void FoldMetrics(MetricsState& s, const fb::Event& event, std::string_view stream) {
  auto it = s.events.find(stream);
  if (it != s.events.end()) {
    it->second += 1;
  } else if (s.events.size() < kMaxStreams) {
    s.events.emplace(std::string(stream), 1);
  }
  if (event.payload() == nullptr) return;
  if (stream == kWatchdogStream) {
    FoldWatchdog(s, event);
  } else {
    FoldApp(s, event);
  }
}

}  // namespace blackbox::metrics
