#include "options.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "alertmanager.h"
#include "instance_name.h"
#include "metrics_server.h"
#include "unique_fd.h"

namespace blackbox::watchdog {
namespace {

std::optional<long long> ParseInt(std::string_view text, long long min, long long max) {
  long long v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    return std::nullopt;
  }
  return v;
}

std::optional<double> ParseNumber(std::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::string Bad(std::string_view what, std::string_view value) {
  return fmt::format("expected {}, got '{}'", what, value);
}

std::optional<std::string> SetSeconds(double& field, std::string_view value) {
  std::optional<double> v = ParseSeconds(value);
  if (!v) return Bad("a non-negative number of seconds", value);
  field = *v;
  return std::nullopt;
}

std::optional<std::string> SetPositiveSeconds(double& field, std::string_view value) {
  std::optional<double> v = ParseSeconds(value);
  if (!v || *v <= 0) return Bad("a positive number of seconds", value);
  field = *v;
  return std::nullopt;
}

std::optional<std::string> SetCount(int& field, std::string_view value, int min) {
  std::optional<long long> v = ParseInt(value, min, 1'000'000);
  if (!v) return Bad(min == 0 ? "a non-negative integer" : "a positive integer", value);
  field = static_cast<int>(*v);
  return std::nullopt;
}

std::optional<std::string> SetPositive(double& field, std::string_view value) {
  std::optional<double> v = ParseNumber(value);
  if (!v || *v <= 0) return Bad("a positive number", value);
  field = *v;
  return std::nullopt;
}

// 0 (off) or a power of two of MiB, up to 1 GiB.
std::optional<std::string> SetRingMb(int& field, std::string_view value) {
  std::optional<long long> v = ParseInt(value, 0, 1024);
  if (!v || (*v & (*v - 1)) != 0) return Bad("0 or a power of two from 1 to 1024", value);
  field = static_cast<int>(*v);
  return std::nullopt;
}

std::optional<std::string> SetBool(bool& field, std::string_view value) {
  if (value == "true" || value == "1") {
    field = true;
  } else if (value == "false" || value == "0") {
    field = false;
  } else {
    return Bad("true or false", value);
  }
  return std::nullopt;
}

std::string Text(double v) { return fmt::format("{}", v); }

std::string TomlArray(const std::vector<std::string>& items) {
  toml::array array;
  for (const std::string& item : items) array.push_back(item);
  std::ostringstream out;
  out << array;
  return out.str();
}

}  // namespace

Options DefaultOptions() {
  Options options;
  if (const char* env = std::getenv("BLACKBOX_JOURNAL"); env != nullptr && *env != '\0') {
    options.journal = env;
  }
  return options;
}

const std::vector<std::string_view>& OptionKeys() {
  static const std::vector<std::string_view> keys = {"command",
                                                     "name",
                                                     "max_restarts",
                                                     "restart_delay",
                                                     "health_check_interval",
                                                     "max_memory_mb",
                                                     "max_cpu_percent",
                                                     "journal",
                                                     "watchdog_timeout",
                                                     "stop_timeout",
                                                     "restart",
                                                     "restart_window",
                                                     "backoff",
                                                     "backoff_max",
                                                     "limit_cycles",
                                                     "forecast_horizon",
                                                     "log_file",
                                                     "log_max_mb",
                                                     "journal_ring_mb",
                                                     "error_patterns",
                                                     "notify_access",
                                                     "type",
                                                     "metrics_listen",
                                                     "alert_exec",
                                                     "alert_timeout",
                                                     "alert_interval",
                                                     "alertmanager"};
  return keys;
}

std::string FlagName(std::string_view key) {
  if (key == "max_memory_mb") return "--max-memory";
  if (key == "max_cpu_percent") return "--max-cpu";
  if (key == "error_patterns") return "--error-pattern";
  if (key == "alert_exec") return "--alert-exec";
  std::string flag = "--";
  for (char c : key) flag += c == '_' ? '-' : c;
  return flag;
}

std::optional<double> ParseSeconds(std::string_view text) {
  std::optional<double> v = ParseNumber(text);
  if (!v || *v < 0 || *v > 1e9) return std::nullopt;
  return v;
}

std::optional<std::string> SetOption(Options& o, std::string_view key, std::string_view value) {
  if (key == "command") {
    if (value.empty() && o.command.empty()) return std::string("the program must not be empty");
    o.command.emplace_back(value);
    return std::nullopt;
  }
  if (key == "name") {
    if (auto error = CheckName(value)) return error;
    o.name = value;
    return std::nullopt;
  }
  if (key == "error_patterns") {
    if (value.empty()) return std::string("the pattern must not be empty");
    o.error_patterns.emplace_back(value);
    return std::nullopt;
  }
  if (key == "alert_exec") {
    if (value.empty()) return std::string("the program must not be empty");
    o.alert_exec.emplace_back(value);
    return std::nullopt;
  }
  if (key == "alertmanager") {
    if (auto error = CheckAlertmanagerUrl(value)) return error;
    o.alertmanager.emplace_back(value);
    return std::nullopt;
  }
  if (key == "alert_timeout") return SetPositiveSeconds(o.alert_timeout, value);
  if (key == "alert_interval") return SetSeconds(o.alert_interval, value);
  if (key == "max_restarts") return SetCount(o.max_restarts, value, 0);
  if (key == "restart_delay") return SetSeconds(o.restart_delay, value);
  if (key == "health_check_interval") return SetPositiveSeconds(o.health_check_interval, value);
  if (key == "max_memory_mb") return SetPositive(o.max_memory_mb, value);
  if (key == "max_cpu_percent") return SetPositive(o.max_cpu_percent, value);
  if (key == "watchdog_timeout") return SetSeconds(o.watchdog_timeout, value);
  if (key == "stop_timeout") return SetSeconds(o.stop_timeout, value);
  if (key == "restart_window") return SetSeconds(o.restart_window, value);
  if (key == "backoff") return SetBool(o.backoff, value);
  if (key == "backoff_max") return SetSeconds(o.backoff_max, value);
  if (key == "limit_cycles") return SetCount(o.limit_cycles, value, 1);
  if (key == "forecast_horizon") return SetSeconds(o.forecast_horizon, value);
  if (key == "log_max_mb") return SetPositive(o.log_max_mb, value);
  if (key == "journal_ring_mb") return SetRingMb(o.journal_ring_mb, value);
  if (key == "journal") {
    if (value.empty()) return std::string("the journal directory must not be empty");
    o.journal = value;
    return std::nullopt;
  }
  if (key == "log_file") {
    o.log_file = value;
    return std::nullopt;
  }
  if (key == "metrics_listen") {
    // The form only; whether it can be bound is checked at start.
    metrics::ListenAddress address;
    if (!value.empty()) {
      if (auto error = metrics::ParseListenAddress(value, &address)) return error;
    }
    o.metrics_listen = value;
    return std::nullopt;
  }
  if (key == "restart") {
    if (value == "always") {
      o.restart = RestartMode::kAlways;
    } else if (value == "on-failure") {
      o.restart = RestartMode::kOnFailure;
    } else {
      return Bad("always or on-failure", value);
    }
    return std::nullopt;
  }
  if (key == "type") {
    if (value == "simple") {
      o.notify_type = false;
    } else if (value == "notify") {
      o.notify_type = true;
    } else {
      return Bad("simple or notify", value);
    }
    return std::nullopt;
  }
  if (key == "notify_access") {
    if (value == "all") {
      o.notify_access = NotifyAccess::kAll;
    } else if (value == "main") {
      o.notify_access = NotifyAccess::kMain;
    } else {
      return Bad("main or all", value);
    }
    return std::nullopt;
  }
  return fmt::format("unknown option '{}'", key);
}

std::vector<std::pair<std::string, std::string>> OptionEntries(const Options& o) {
  return {
      {"command", TomlArray(o.command)},
      {"name", o.name},
      {"max_restarts", std::to_string(o.max_restarts)},
      {"restart_delay", Text(o.restart_delay)},
      {"health_check_interval", Text(o.health_check_interval)},
      {"max_memory_mb", Text(o.max_memory_mb)},
      {"max_cpu_percent", Text(o.max_cpu_percent)},
      {"journal", o.journal},
      {"watchdog_timeout", Text(o.watchdog_timeout)},
      {"stop_timeout", Text(o.stop_timeout)},
      {"restart", o.restart == RestartMode::kAlways ? "always" : "on-failure"},
      {"restart_window", Text(o.restart_window)},
      {"backoff", o.backoff ? "true" : "false"},
      {"backoff_max", Text(o.backoff_max)},
      {"limit_cycles", std::to_string(o.limit_cycles)},
      {"forecast_horizon", Text(o.forecast_horizon)},
      {"log_file", o.log_file},
      {"log_max_mb", Text(o.log_max_mb)},
      {"journal_ring_mb", std::to_string(o.journal_ring_mb)},
      {"error_patterns", TomlArray(o.error_patterns)},
      {"notify_access", o.notify_access == NotifyAccess::kMain ? "main" : "all"},
      {"type", o.notify_type ? "notify" : "simple"},
      {"metrics_listen", o.metrics_listen},
      {"alert_exec", TomlArray(o.alert_exec)},
      {"alert_timeout", Text(o.alert_timeout)},
      {"alert_interval", Text(o.alert_interval)},
      {"alertmanager", TomlArray(o.alertmanager)},
  };
}

std::optional<std::string> LoadOptionsFile(const std::string& path, Options& options,
                                           FileTrust trust) {
  // Read from one descriptor that was checked, not by name a second time.
  const int nofollow = trust == FileTrust::kOwnerOnly ? O_NOFOLLOW : 0;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | nofollow));
  if (!fd) {
    if (errno == ELOOP && nofollow != 0) return fmt::format("{} is a symbolic link", path);
    return fmt::format("{}: {}", path, std::strerror(errno));
  }
  struct stat st {};
  // toml++ reads a directory as an empty file; a configuration must be a file.
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return fmt::format("{}: not a regular file", path);
  }
  if (trust != FileTrust::kAny) {
    const bool owner_ok =
        st.st_uid == ::geteuid() || (trust == FileTrust::kOwnerOrRoot && st.st_uid == 0);
    if (!owner_ok) {
      return fmt::format("{} is owned by uid {}, not by the running user (uid {})", path, st.st_uid,
                         ::geteuid());
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      return fmt::format("{} is writable by other users (mode {:04o})", path, st.st_mode & 07777);
    }
  }
  std::string content;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fmt::format("{}: {}", path, std::strerror(errno));
    content.append(buf, static_cast<size_t>(n));
  }
  toml::table table;
  try {
    table = toml::parse(content, path);
  } catch (const toml::parse_error& e) {
    return fmt::format("{}:{}: {}", path, e.source().begin.line, e.description());
  }
  Options loaded = options;
  for (auto&& [raw_key, node] : table) {
    std::string key(raw_key.str());
    if (key == "app_script") key = "command";
    if (key == "max_memory") key = "max_memory_mb";
    if (key == "max_cpu") key = "max_cpu_percent";
    if (key == "command" || key == "error_patterns" || key == "alert_exec" ||
        key == "alertmanager") {
      std::vector<std::string>& list = key == "command"          ? loaded.command
                                       : key == "error_patterns" ? loaded.error_patterns
                                       : key == "alert_exec"     ? loaded.alert_exec
                                                                 : loaded.alertmanager;
      list.clear();
      if (const auto* s = node.as_string()) {
        list.push_back(s->get());
        continue;
      }
      const toml::array* array = node.as_array();
      if (array == nullptr) return fmt::format("{}: {}: expected an array of strings", path, key);
      for (const toml::node& item : *array) {
        const auto* s = item.as_string();
        if (s == nullptr) return fmt::format("{}: {}: expected an array of strings", path, key);
        if (auto error = SetOption(loaded, key, s->get())) {
          return fmt::format("{}: {}: {}", path, key, *error);
        }
      }
      continue;
    }
    std::string text;
    if (const auto* s = node.as_string()) {
      text = s->get();
    } else if (const auto* i = node.as_integer()) {
      text = std::to_string(i->get());
    } else if (const auto* f = node.as_floating_point()) {
      text = Text(f->get());
    } else if (const auto* b = node.as_boolean()) {
      text = b->get() ? "true" : "false";
    } else {
      return fmt::format("{}: {}: expected a string, number or boolean", path, key);
    }
    if (auto error = SetOption(loaded, key, text)) {
      return fmt::format("{}: {}: {}", path, key, *error);
    }
  }
  options = std::move(loaded);
  return std::nullopt;
}

std::optional<std::string> SaveOptionsFile(const std::string& path, const Options& o) {
  toml::table table;
  toml::array command;
  for (const std::string& arg : o.command) command.push_back(arg);
  toml::array patterns;
  for (const std::string& p : o.error_patterns) patterns.push_back(p);
  table.insert("command", std::move(command));
  if (!o.name.empty()) table.insert("name", o.name);
  table.insert("max_restarts", o.max_restarts);
  table.insert("restart_delay", o.restart_delay);
  table.insert("health_check_interval", o.health_check_interval);
  table.insert("max_memory_mb", o.max_memory_mb);
  table.insert("max_cpu_percent", o.max_cpu_percent);
  table.insert("journal", o.journal);
  table.insert("watchdog_timeout", o.watchdog_timeout);
  table.insert("stop_timeout", o.stop_timeout);
  table.insert("restart", o.restart == RestartMode::kAlways ? "always" : "on-failure");
  table.insert("restart_window", o.restart_window);
  table.insert("backoff", o.backoff);
  table.insert("backoff_max", o.backoff_max);
  table.insert("limit_cycles", o.limit_cycles);
  table.insert("forecast_horizon", o.forecast_horizon);
  table.insert("log_file", o.log_file);
  table.insert("log_max_mb", o.log_max_mb);
  table.insert("journal_ring_mb", o.journal_ring_mb);
  table.insert("error_patterns", std::move(patterns));
  table.insert("notify_access", o.notify_access == NotifyAccess::kMain ? "main" : "all");
  table.insert("type", o.notify_type ? "notify" : "simple");
  table.insert("metrics_listen", o.metrics_listen);
  toml::array alert_exec;
  for (const std::string& p : o.alert_exec) alert_exec.push_back(p);
  table.insert("alert_exec", std::move(alert_exec));
  table.insert("alert_timeout", o.alert_timeout);
  table.insert("alert_interval", o.alert_interval);
  toml::array alertmanager;
  for (const std::string& u : o.alertmanager) alertmanager.push_back(u);
  table.insert("alertmanager", std::move(alertmanager));
  std::ostringstream out;
  out << "# Effective configuration of the last blackbox-watchdog start in this directory.\n"
      << "# Reloaded by the next start; command-line options override it.\n"
      << table << '\n';
  const std::string text = out.str();

  // mkstemp creates a new file (O_EXCL, 0600): nothing already at a guessable
  // name (a symlink, another user's file) is opened or truncated. rename
  // replaces a symlink at `path` itself, never its target.
  std::string tmp = path + ".XXXXXX";
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return fmt::format("{}: {}", tmp, std::strerror(errno));
  auto fail = [&](const std::string& what) {
    const std::string message = fmt::format("{}: {}", what, std::strerror(errno));
    ::unlink(tmp.c_str());
    return message;
  };
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(tmp);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail(tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(path);
  return std::nullopt;
}

}  // namespace blackbox::watchdog
