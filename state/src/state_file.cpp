// The seed's system_state.json: its exact shape, and an atomic writer for it.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "blackbox/state_io.h"

namespace blackbox {
namespace {

using Json = nlohmann::ordered_json;

// "2024-01-15T10:30:00", local time, like Python's datetime.now().isoformat()
// without the microseconds.
std::string LocalIsoTime(int64_t time_ns) {
  std::time_t secs = static_cast<std::time_t>(time_ns / 1'000'000'000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf, n);
}

// "2024-01-15T10:30:00.123456789Z": RFC 3339 in UTC with nanoseconds, the
// form of every time in the tool's JSON (replay --json, stats --json) except
// the seed's own "timestamp" key.
std::string UtcTime(int64_t time_ns) {
  int64_t secs = time_ns / 1'000'000'000;
  int64_t frac = time_ns % 1'000'000'000;
  if (frac < 0) {  // floor, for times before 1970
    frac += 1'000'000'000;
    --secs;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%09lldZ", static_cast<long long>(frac));
  return buf;
}

// One decimal, like the seed's figures.
double Round1(double v) { return std::round(v * 10.0) / 10.0; }

Json OrNull(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// Closes on every path out of WriteStateFileAtomically.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string_view SeedStatusName(fb::Phase phase) {
  switch (phase) {
    case fb::Phase::Initializing:
    case fb::Phase::Starting:
      return "initializing";
    case fb::Phase::Running:
      return "running";
    case fb::Phase::Error:
      return "error";
    case fb::Phase::Recovering:
      return "recovering";
    case fb::Phase::Stopping:
      return "stopping";
    case fb::Phase::Stopped:
      return "stopped";
    case fb::Phase::Failed:
      return "failed";
    case fb::Phase::Backoff:
      return "backoff";
  }
  return "unknown";
}

std::string SystemStateJson(const SystemState& s, int indent) {
  Json j;
  // The seed's keys, in the seed's order.
  j["timestamp"] = LocalIsoTime(s.timestamp_ns);
  j["status"] = SeedStatusName(s.status);
  j["uptime"] = Round1(s.uptime_seconds());
  j["memory_usage"] = Round1(s.memory_usage_mb);
  j["cpu_usage"] = Round1(s.cpu_usage);
  j["active_connections"] = std::llround(s.gauge("active_connections"));
  j["active_positions"] = std::llround(s.gauge("active_positions"));
  j["last_error"] = s.last_error ? Json(s.last_error->message) : Json(nullptr);
  j["restart_count"] = s.restart_count;
  j["max_restarts"] = s.max_restarts;
  j["recovery_attempts"] = s.recovery_attempts;
  j["max_recovery_attempts"] = s.max_recovery_attempts;

  // Extras: new consumers may use them, old ones ignore them.
  j["gauges"] = Json::object();
  for (const auto& [name, value] : s.gauges) j["gauges"][name] = value;
  j["pid"] = s.pid;
  j["memory_percent"] = Round1(s.memory_percent);
  j["disk_percent"] = Round1(s.disk_percent);
  j["threads"] = s.threads;
  j["open_fds"] = s.open_fds;
  j["error_count"] = s.error_count;
  j["crash_count"] = s.crash_count;
  j["health_warnings"] = s.health_warnings;
  j["event_count"] = s.event_count;
  if (s.last_error) {
    j["last_error_detail"] = {{"time", UtcTime(s.last_error->time_ns)},
                              {"time_ns", s.last_error->time_ns},
                              {"context", OrNull(s.last_error->context)},
                              {"exception_type", OrNull(s.last_error->exception_type)},
                              {"message", OrNull(s.last_error->message)}};
  } else {
    j["last_error_detail"] = nullptr;
  }
  if (s.last_crash) {
    const CrashInfo& c = *s.last_crash;
    j["last_crash"] = {{"time", UtcTime(c.time_ns)},
                       {"time_ns", c.time_ns},
                       {"stream", c.stream},
                       {"origin", CrashOriginName(c.origin)},
                       {"signal", c.signal},
                       {"crashed_pid", c.crashed_pid},
                       {"exit_code", c.exit_code},
                       {"exception_type", OrNull(c.exception_type)},
                       {"exception_message", OrNull(c.exception_message)},
                       {"first_frame", OrNull(c.first_frame)}};
  } else {
    j["last_crash"] = nullptr;
  }
  j["forecasts"] = Json::object();
  for (const auto& [resource, f] : s.forecasts) {
    j["forecasts"][resource] = {{"seconds_to_limit", f.seconds_to_limit}, {"message", f.message}};
  }
  const WatchdogInfo& w = s.watchdog;
  if (w.watchdog_pid != 0 || w.child_pid != 0) {
    j["watchdog"] = {
        {"watchdog_pid", w.watchdog_pid},
        {"child_pid", w.child_pid},
        {"phase", SeedStatusName(w.phase)},
        {"restart_count", w.restart_count},
        {"total_restarts", w.total_restarts},
        {"last_exit_code", w.has_last_exit ? Json(w.last_exit_code) : Json(nullptr)},
        {"last_exit_signal", w.has_last_exit ? Json(w.last_exit_signal) : Json(nullptr)},
        {"child_rss_mb", Round1(static_cast<double>(w.child_rss_bytes) / 1048576.0)},
        {"child_cpu_percent", Round1(w.child_cpu_percent)},
        {"status_text", OrNull(w.status_text)},
        {"forecast", w.forecast_seconds > 0 ? Json({{"seconds_to_limit", w.forecast_seconds},
                                                    {"message", w.forecast_message}})
                                            : Json(nullptr)}};
  } else {
    j["watchdog"] = nullptr;
  }
  j["covered"] = Json::object();
  for (const auto& [stream, seq] : s.covered) j["covered"][stream] = seq;
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Status WriteStateFileAtomically(const std::string& path, const SystemState& state) {
  namespace fs = std::filesystem;
  std::string text = SystemStateJson(state) + "\n";
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // Unique per writer: two threads of one process may write the file at once.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = (dir / fmt::format(".{}.tmp.{}.{}", target.filename().string(), ::getpid(),
                                       counter.fetch_add(1)))
                        .string();
  {
    // O_EXCL | O_NOFOLLOW: never write through a file or link planted under
    // the temp name.
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
    if (f.fd < 0) return Status::IOError(Errno("cannot create", tmp));
    // O_CREAT's mode is filtered by the umask and ignored for an existing file.
    if (::fchmod(f.fd, 0600) != 0) return Status::IOError(Errno("cannot chmod", tmp));
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
      ssize_t n = ::write(f.fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        Status st = errno == ENOSPC ? Status::NoSpace(Errno("cannot write", tmp))
                                    : Status::IOError(Errno("cannot write", tmp));
        ::unlink(tmp.c_str());
        return st;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    if (::fsync(f.fd) != 0) {
      Status st = Status::IOError(Errno("cannot fsync", tmp));
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::IOError(Errno("cannot rename onto", path));
    ::unlink(tmp.c_str());
    return st;
  }
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0 || ::fsync(d.fd) != 0) {
    return Status::IOError(Errno("cannot fsync directory", dir.string()));
  }
  return Status::Ok();
}

}  // namespace blackbox
