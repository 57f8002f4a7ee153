// The Prometheus text exposition (format 0.0.4) of folded metrics. Pure: the
// caller passes the clock and whatever only the running watchdog knows.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "metrics_fold.h"

namespace blackbox::metrics {

// The Content-Type of the exposition.
inline constexpr std::string_view kExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

struct ExpositionInputs {
  int64_t now_ns = 0;  // for the restart budget's window
  // Appends that failed, by stream, when known (the running watchdog knows
  // its own writer's; nothing journals a failure it could not write).
  std::optional<std::map<std::string, uint64_t, std::less<>>> write_failures;
};

// Every metric with its HELP and TYPE lines, in a fixed order; label values
// escaped as the format requires (\\, \", \n).
std::string Exposition(const MetricsState& state, const ExpositionInputs& inputs);

// "SIGSEGV" for 11; "other" for the bucket of signals past 64.
std::string SignalLabel(int signal);

}  // namespace blackbox::metrics
