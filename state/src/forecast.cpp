#include "blackbox/forecast.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace blackbox {
namespace {

constexpr double kNsPerS = 1e9;
constexpr double kMb = 1024.0 * 1024.0;

double Median(std::vector<double>& v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  const double lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return (lower + upper) / 2;
}

}  // namespace

TrendFit FitTrend(std::span<const int64_t> t_ns, std::span<const double> values) {
  const size_t n = values.size();
  std::vector<double> slopes;
  slopes.reserve(n * (n - 1) / 2);
  int64_t s = 0;  // Mann–Kendall S: rising pairs minus falling pairs
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      const double dv = values[j] - values[i];
      const double dt = static_cast<double>(t_ns[j] - t_ns[i]) / kNsPerS;
      slopes.push_back(dv / dt);
      s += (dv > 0) - (dv < 0);
    }
  }
  TrendFit fit;
  fit.slope_per_s = Median(slopes);
  std::vector<double> intercepts(n);
  const int64_t t0 = t_ns[0];
  for (size_t i = 0; i < n; ++i) {
    intercepts[i] = values[i] - fit.slope_per_s * static_cast<double>(t_ns[i] - t0) / kNsPerS;
  }
  const double intercept = Median(intercepts);
  fit.rise = fit.slope_per_s * static_cast<double>(t_ns[n - 1] - t0) / kNsPerS;
  fit.fitted_now = intercept + fit.rise;
  for (double& r : intercepts) r = std::abs(r - intercept);  // residuals
  fit.spread = 1.4826 * Median(intercepts);
  // Variance of S without the ties' correction: ties only lower it, so the
  // z is a little conservative when values repeat.
  const double dn = static_cast<double>(n);
  const double sd = std::sqrt(dn * (dn - 1) * (2 * dn + 5) / 18);
  if (s > 0) fit.z = static_cast<double>(s - 1) / sd;
  if (s < 0) fit.z = static_cast<double>(s + 1) / sd;
  return fit;
}

std::string ForecastMessage(std::string_view resource, double current, double slope_per_s,
                            double limit, double seconds_to_limit) {
  return fmt::format("{} {:.0f} MB rising {:.3g} MB/s; reaches the {:.0f} MB limit in ~{:.0f} s",
                     resource, current / kMb, slope_per_s / kMb, limit / kMb, seconds_to_limit);
}

std::optional<ForecastEvent> Forecaster::Observe(int64_t t_ns, double value) {
  if (options_.horizon_ns <= 0 || options_.limit <= 0) return std::nullopt;
  if (!times_.empty() && t_ns <= times_.back()) return std::nullopt;  // out of order: ignored
  times_.push_back(t_ns);
  values_.push_back(value);
  while (times_.size() > std::max<size_t>(options_.window, 2)) {
    times_.pop_front();
    values_.pop_front();
  }
  if (times_.size() < std::max<size_t>(options_.min_samples, 2)) return std::nullopt;

  const std::vector<int64_t> t(times_.begin(), times_.end());
  const std::vector<double> v(values_.begin(), values_.end());
  const TrendFit fit = FitTrend(t, v);
  const double horizon_s = static_cast<double>(options_.horizon_ns) / kNsPerS;
  const bool rising = fit.z >= options_.min_z && fit.slope_per_s > 0 &&
                      fit.rise > options_.min_rise_to_noise * fit.spread;
  const double to_limit =
      rising ? std::max(0.0, (options_.limit - fit.fitted_now) / fit.slope_per_s) : 0;

  if (rising && to_limit < horizon_s) {
    const bool due = !active_ || t_ns - last_warning_ns_ >= options_.horizon_ns;
    active_ = true;
    seconds_to_limit_ = to_limit;
    if (!due) return std::nullopt;
    last_warning_ns_ = t_ns;
    return ForecastEvent{false,
                         fit.fitted_now,
                         fit.slope_per_s,
                         options_.limit,
                         to_limit,
                         ForecastMessage(options_.resource, fit.fitted_now, fit.slope_per_s,
                                         options_.limit, to_limit)};
  }
  // Hysteresis: a projection between one and two horizons keeps the warning.
  if (active_ && (!rising || to_limit > 2 * horizon_s)) {
    active_ = false;
    seconds_to_limit_ = 0;
    return ForecastEvent{
        true,
        fit.fitted_now,
        fit.slope_per_s,
        options_.limit,
        0,
        fmt::format("{} {:.0f} MB no longer rising toward the {:.0f} MB limit", options_.resource,
                    fit.fitted_now / kMb, options_.limit / kMb)};
  }
  return std::nullopt;
}

void Forecaster::Reset() {
  times_.clear();
  values_.clear();
  active_ = false;
  last_warning_ns_ = 0;
  seconds_to_limit_ = 0;
}

}  // namespace blackbox
