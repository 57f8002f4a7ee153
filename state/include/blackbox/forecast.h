// Forecasts a resource running out: a robust trend over recent samples, and
// when the projected time to the limit falls under a horizon, one warning.
// Pure: the caller passes each sample's time; nothing here reads a clock.
//
// Shared by the watchdog (its child's RSS against --max-memory) and the
// recovery manager's health monitor (its own RSS against the memory the
// system has left, the journal's filesystem filling up): it lives beside the
// fold, which both link, and depends on nothing but the standard library and
// {fmt}.
//
// The fit:
// - slope: Theil–Sen, the median of the pairwise slopes over the window. A
//   few outliers (a spike, a page-cache blip) move a median little, where
//   they drag a least-squares line.
// - significance: the Mann–Kendall test on the same window. A rise is
//   trusted only when its z score reaches `min_z`; steady memory with noise
//   gives a z near 0 whatever the noise's size.
// - the window spans `window` samples, longer than a garbage collector's
//   sawtooth period, so that the sawtooth's rise and drop cancel in the
//   median and the test sees no monotone trend. Until two of its periods fit
//   in the samples, a sawtooth's first rise is a leak as far as any fit can
//   tell: `min_samples` (20) is what lets a period of up to ~10 samples pass.
// - size: the fitted rise over the window must also exceed
//   `min_rise_to_noise` robust spreads of the residuals. A window of noise
//   now and then passes the test by chance (hundreds of windows are tested),
//   but its fitted rise stays small against its own scatter; a sawtooth's
//   scatter is its whole amplitude.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace blackbox {

struct ForecastOptions {
  int64_t horizon_ns = int64_t{600} * 1'000'000'000;  // warn when the limit is nearer; 0 disables
  double limit = 0;                                   // the value that must not be reached (> 0)
  size_t window = 60;                                 // samples the fit looks at
  size_t min_samples = 20;                            // no verdict before this many
  double min_z = 3.0;                                 // Mann–Kendall z a rise must reach
  double min_rise_to_noise = 2.0;  // the fitted rise over the window, in residual spreads
  std::string resource = "rss";    // the message's first word
};

struct TrendFit {
  double slope_per_s = 0;  // Theil–Sen slope
  double fitted_now = 0;   // the fitted line at the newest sample
  double z = 0;            // Mann–Kendall z (positive: rising)
  double rise = 0;         // the fitted line's rise from the oldest to the newest sample
  double spread = 0;       // robust spread of the residuals (1.4826 × their median |r|)
};

// The Theil–Sen / Mann–Kendall fit of (t_ns, value) pairs. REQUIRES: the
// spans have the same size, at least 2, and times strictly increase.
TrendFit FitTrend(std::span<const int64_t> t_ns, std::span<const double> values);

struct ForecastEvent {
  bool cleared = false;  // true: the forecast no longer holds
  double current = 0;    // fitted value now
  double slope_per_s = 0;
  double limit = 0;
  double seconds_to_limit = 0;  // 0 on a clear
  std::string message;
};

// Feeds samples in time order; says when to journal a warning or a clear.
// - A warning when a significant rise projects the limit under the horizon;
//   repeated at most once per horizon while that holds.
// - A clear, once, when a warning was given and the rise stops being
//   significant or the projection moves beyond twice the horizon.
class Forecaster {
 public:
  explicit Forecaster(ForecastOptions options) : options_(std::move(options)) {}

  // One sample at `t_ns`. Returns the event to journal, if any.
  std::optional<ForecastEvent> Observe(int64_t t_ns, double value);

  // A warning holds (given and not cleared).
  bool active() const { return active_; }
  // The last warning's projected seconds to the limit, while active.
  double seconds_to_limit() const { return seconds_to_limit_; }

  // Forgets the samples (a new run of the child starts from its own memory).
  void Reset();

  // A limit that moves (the memory the system has left): used from the next
  // Observe on.
  void set_limit(double limit) { options_.limit = limit; }

 private:
  ForecastOptions options_;
  std::deque<int64_t> times_;
  std::deque<double> values_;
  bool active_ = false;
  int64_t last_warning_ns_ = 0;
  double seconds_to_limit_ = 0;
};

// "rss 143 MB rising 40 MB/s; reaches the 1024 MB limit in ~22 s"
std::string ForecastMessage(std::string_view resource, double current, double slope_per_s,
                            double limit, double seconds_to_limit);

}  // namespace blackbox
