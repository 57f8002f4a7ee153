#include "metrics_exposition.h"

#include <fmt/format.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <vector>

#include "blackbox/event.h"

namespace blackbox::metrics {
namespace {

// Every restart reason of the schema, each shown from 0 so that increase()
// sees the first restart of a kind.
std::vector<std::string_view> RestartReasons() {
  std::vector<std::string_view> names;
  for (fb::RestartReason r : fb::EnumValuesRestartReason()) names.push_back(RestartReasonName(r));
  return names;
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

std::string LabelValue(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Writer {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  void Sample(std::string_view name, double value) {
    fmt::format_to(std::back_inserter(out_), "{} {}\n", name, Number(value));
  }
  void Sample(std::string_view name, std::string_view label, std::string_view label_value,
              double value) {
    fmt::format_to(std::back_inserter(out_), "{}{{{}=\"{}\"}} {}\n", name, label,
                   LabelValue(label_value), Number(value));
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string SignalLabel(int signal) {
  const char* abbrev = signal > 0 && signal <= 64 ? ::sigabbrev_np(signal) : nullptr;
  if (abbrev != nullptr) return fmt::format("SIG{}", abbrev);
  if (signal > 0 && signal <= 64) return fmt::format("SIG{}", signal);  // real-time signals
  return "other";
}

std::string Exposition(const MetricsState& s, const ExpositionInputs& in) {
  Writer w;
  w.Family("blackbox_child_running", "gauge", "1 while the supervised child runs, else 0.");
  w.Sample("blackbox_child_running", s.child_running ? 1 : 0);
  w.Family("blackbox_child_start_time_seconds", "gauge",
           "Unix time of the current child's start (0 when none runs).");
  w.Sample("blackbox_child_start_time_seconds",
           s.child_running ? static_cast<double>(s.child_started_ns) / 1e9 : 0);
  w.Family("blackbox_child_resident_memory_bytes", "gauge",
           "RSS of the child's process tree at the last health sample.");
  w.Sample("blackbox_child_resident_memory_bytes", static_cast<double>(s.child_rss_bytes));
  w.Family("blackbox_child_cpu_percent", "gauge",
           "CPU of the child's process tree at the last health sample, percent of one core.");
  w.Sample("blackbox_child_cpu_percent", s.child_cpu_percent);
  // Only while a forecast holds, so that absent() and a missing series mean
  // "no forecast". Two sources: the watchdog's forecast of its child against
  // --max-memory, and the application's own against what the system can
  // still give it.
  auto seconds_left = [&](int64_t at_ns) {
    return std::max(0.0, static_cast<double>(at_ns - in.now_ns) / 1e9);
  };
  const MetricsState::AppForecast* app_rss = s.HoldingAppForecast("rss");
  const bool child_forecast = s.memory_exhaustion_ns != 0 && s.child_running;
  if (child_forecast || app_rss != nullptr) {
    w.Family("blackbox_memory_exhaustion_seconds", "gauge",
             "Seconds until memory runs out as a trend projects, only while a forecast holds: "
             "source=\"watchdog\", the child's against --max-memory; source=\"app\", the "
             "application's own against the memory the system can still give it.");
    if (child_forecast) {
      w.Sample("blackbox_memory_exhaustion_seconds", "source", "watchdog",
               seconds_left(s.memory_exhaustion_ns));
    }
    if (app_rss != nullptr) {
      w.Sample("blackbox_memory_exhaustion_seconds", "source", "app",
               seconds_left(app_rss->exhaustion_ns));
    }
  }
  if (const MetricsState::AppForecast* disk = s.HoldingAppForecast("disk")) {
    w.Family("blackbox_disk_exhaustion_seconds", "gauge",
             "Seconds until the journal's filesystem is full as the application's trend "
             "projects, only while a forecast holds.");
    w.Sample("blackbox_disk_exhaustion_seconds", seconds_left(disk->exhaustion_ns));
  }

  w.Family("blackbox_restarts_total", "counter", "Restarts of the child by the watchdog.");
  const std::vector<std::string_view> reasons = RestartReasons();
  for (std::string_view reason : reasons) {
    auto it = s.restarts.find(reason);
    w.Sample("blackbox_restarts_total", "reason", reason,
             it == s.restarts.end() ? 0.0 : static_cast<double>(it->second));
  }
  for (const auto& [reason, count] : s.restarts) {  // "unknown", from a newer journal
    if (std::find(reasons.begin(), reasons.end(), reason) != reasons.end()) continue;
    w.Sample("blackbox_restarts_total", "reason", reason, static_cast<double>(count));
  }
  w.Family("blackbox_crashes_total", "counter", "Deaths of the service by a signal.");
  for (const auto& [signal, count] : s.deaths()) {
    w.Sample("blackbox_crashes_total", "signal", SignalLabel(signal), static_cast<double>(count));
  }
  w.Family("blackbox_last_crash_time_seconds", "gauge",
           "Unix time of the last death by a signal (0 when none).");
  w.Sample("blackbox_last_crash_time_seconds", static_cast<double>(s.last_crash_ns) / 1e9);

  w.Family("blackbox_errors_total", "counter", "Handled errors the application journaled.");
  w.Sample("blackbox_errors_total", static_cast<double>(s.errors));
  w.Family("blackbox_gauge", "gauge", "The application's set_gauge values of its current run.");
  for (const auto& [name, value] : s.gauges) w.Sample("blackbox_gauge", "name", name, value);
  w.Family("blackbox_app_values_dropped_total", "counter",
           fmt::format("set_gauge values not shown: the application used more than {} names.",
                       kMaxGauges));
  w.Sample("blackbox_app_values_dropped_total", static_cast<double>(s.gauges_dropped));
  w.Family("blackbox_health_warnings_total", "counter",
           "Health samples over a warning threshold (either stream).");
  w.Sample("blackbox_health_warnings_total", static_cast<double>(s.health_warnings));

  w.Family("blackbox_journal_events_total", "counter", "Events in the journal, by stream.");
  for (const auto& [stream, count] : s.events) {
    w.Sample("blackbox_journal_events_total", "stream", stream, static_cast<double>(count));
  }
  if (in.write_failures) {
    w.Family("blackbox_journal_write_failures_total", "counter",
             "Journal appends that failed, by stream, since this watchdog started.");
    for (const auto& [stream, count] : *in.write_failures) {
      w.Sample("blackbox_journal_write_failures_total", "stream", stream,
               static_cast<double>(count));
    }
  }
  w.Family("blackbox_restart_budget_remaining", "gauge",
           "Restarts left in the current window before the watchdog gives up.");
  w.Sample("blackbox_restart_budget_remaining", s.RestartBudgetRemaining(in.now_ns));
  return w.Take();
}

}  // namespace blackbox::metrics
