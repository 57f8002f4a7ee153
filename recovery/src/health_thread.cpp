// The health monitoring thread (start_health_monitoring) and the sample
// behind get_system_info().
#include <time.h>
#include <unistd.h>

#include "crash_capture.h"
#include "recovery_manager_impl.h"

namespace blackbox {

void RecoveryManager::Impl::StartHealth() {
  std::lock_guard lock(threads_mu_);
  if (health_running_) return;
  health_running_ = true;
  health_thread_ = std::thread([this] { HealthLoop(); });
}

void RecoveryManager::Impl::StopHealth() {
  std::thread t;
  {
    std::lock_guard lock(threads_mu_);
    if (!health_running_) return;
    health_running_ = false;
    t = std::move(health_thread_);
  }
  threads_cv_.notify_all();
  if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  if (t.joinable()) t.detach();  // stopped from inside a health check: it ends on its own
}

void RecoveryManager::Impl::HealthLoop() {
  EnsureAltStackForThisThread();
  HealthSampler sampler(root_);  // CPU baseline: the first sample covers one interval
  HealthForecasts forecasts(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.forecast_horizon).count(),
      options_.forecast_memory_limit_bytes);
  std::unique_lock lock(threads_mu_);
  while (true) {
    threads_cv_.wait_for(lock, options_.health_check_interval,
                         [this] { return !health_running_ || stopping_threads_; });
    if (!health_running_ || stopping_threads_) return;
    lock.unlock();
    HealthCheck(sampler, &forecasts);
    lock.lock();
  }
}

void RecoveryManager::Impl::HealthCheck(HealthSampler& sampler, HealthForecasts* forecasts) {
  HealthSample s = sampler.Sample();
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  fb::HealthT h;
  h.rss_bytes = s.rss_bytes;
  h.cpu_percent = s.cpu_percent;
  h.memory_percent = s.memory_percent;
  h.disk_percent = s.disk_percent;
  h.threads = s.threads;
  h.open_fds = s.open_fds;
  h.sampled_pid = getpid();
  h.over_threshold = s.memory_percent > options_.memory_warning_percent ||
                     s.cpu_percent > options_.cpu_warning_percent ||
                     s.disk_percent > options_.disk_warning_percent;
  fb::Severity severity = h.over_threshold ? fb::Severity::Warning : fb::Severity::Info;
  Record(std::move(h), severity, Durability::kBuffered);
  std::vector<ResourceForecast> due;
  if (forecasts != nullptr) {
    due = forecasts->Observe(int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec, s);
  }
  for (ResourceForecast& f : due) {
    fb::ForecastT event;
    event.resource = std::move(f.resource);
    event.current = f.event.current;
    event.slope_per_s = f.event.slope_per_s;
    event.limit = f.event.limit;
    event.seconds_to_limit = f.event.seconds_to_limit;
    event.cleared = f.event.cleared;
    event.message = std::move(f.event.message);
    Record(std::move(event), f.event.cleared ? fb::Severity::Info : fb::Severity::Warning,
           Durability::kBuffered);
  }
  WriteStateFile();
}

SystemInfo RecoveryManager::Impl::Info() const {
  HealthSample s;
  {
    std::lock_guard lock(info_mu_);
    s = info_sampler_.Sample();
  }
  SystemInfo info;
  info.pid = getpid();
  info.memory_usage_mb = static_cast<double>(s.rss_bytes) / (1024.0 * 1024.0);
  info.cpu_percent = s.cpu_percent;
  info.memory_percent = s.memory_percent;
  info.disk_percent = s.disk_percent;
  info.threads = s.threads;
  info.open_fds = s.open_fds;
  std::lock_guard lock(mu_);
  if (state_.run_started_ns != 0) {
    info.uptime_seconds = static_cast<double>(WallNowNs() - state_.run_started_ns) / 1e9;
  }
  info.status = std::string(SeedStatusName(state_.status));
  info.restart_count = state_.restart_count;
  info.recovery_attempts = state_.recovery_attempts;
  if (state_.last_error) info.last_error = state_.last_error->message;
  return info;
}

}  // namespace blackbox
