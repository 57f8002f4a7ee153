#include "status.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "blackbox/state_io.h"
#include "control.h"
#include "human_format.h"
#include "instance_name.h"
#include "process_tree.h"
#include "time_spec.h"

namespace blackbox::watchdog {
namespace {

// Events of every stream shown under the block.
constexpr size_t kLastEvents = 10;
// How far back the watchdog stream is read, at most, to find when the
// current state began.
constexpr uint64_t kSinceChunk = 256;
constexpr uint64_t kSinceLimit = 64 * kSinceChunk;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "1:02:03", "3d 4:05:06".
std::string Uptime(double seconds) {
  const auto total = static_cast<int64_t>(seconds);
  const int64_t days = total / 86400;
  const std::string clock =
      fmt::format("{}:{:02}:{:02}", (total / 3600) % 24, (total / 60) % 60, total % 60);
  return days > 0 ? fmt::format("{}d {}", days, clock) : clock;
}

// The command as a shell would take it back: words with anything but
// [A-Za-z0-9_./=:,@%+-] in single quotes.
std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& arg : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./=:,@%+-", c) != nullptr;
    });
    if (plain) {
      out += arg;
      continue;
    }
    out += '\'';
    for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

// The time the watchdog's current phase began: the first of the newest run
// of Lifecycle events in that phase (a STATUS= update repeats "running").
// 0 when it cannot be told.
int64_t PhaseSince(const std::string& journal, fb::Phase phase) {
  auto reader = Reader::Open(journal, kWatchdogStream);
  if (!reader.ok()) return 0;
  const uint64_t last = reader.value()->last_seq();
  const uint64_t first = reader.value()->first_seq();
  int64_t since = 0;
  for (uint64_t end = last; end >= first && last - end < kSinceLimit;) {
    const uint64_t begin = end - first + 1 > kSinceChunk ? end - kSinceChunk + 1 : first;
    std::vector<std::pair<fb::Phase, int64_t>> lifecycle;
    ScanOptions scan;
    scan.from_seq = begin;
    scan.until_seq = end;
    Status st = reader.value()->Scan(scan, [&](const Record& r) {
      if (const fb::Lifecycle* l = r.event->payload_as_Lifecycle()) {
        lifecycle.emplace_back(l->phase(), r.event->time_ns());
      }
      return true;
    });
    if (!st.ok()) return since;
    for (auto it = lifecycle.rbegin(); it != lifecycle.rend(); ++it) {
      if (it->first != phase) return since;
      since = it->second;
    }
    if (begin == first) break;
    end = begin - 1;
  }
  return since;
}

struct Line {
  int64_t time_ns;
  std::string stream;
  uint64_t seq;
  std::string text;
};

// The newest `count` events over every stream of `journal`, oldest first.
std::vector<Line> LastEvents(const std::string& journal, size_t count, bool colour) {
  std::vector<Line> lines;
  Result<std::vector<std::string>> streams = ListStreams(journal);
  if (!streams.ok()) return lines;
  tools::HumanStyle style;
  style.colour = colour;
  for (const std::string& s : streams.value())
    style.stream_width = std::max(style.stream_width, s.size());
  for (const std::string& stream : streams.value()) {
    auto reader = Reader::Open(journal, stream);
    if (!reader.ok()) continue;
    const uint64_t last = reader.value()->last_seq();
    if (last == 0) continue;
    ScanOptions scan;
    scan.from_seq = last >= count ? last - count + 1 : 0;
    scan.until_seq = last;
    [[maybe_unused]] Status st = reader.value()->Scan(scan, [&](const Record& r) {
      lines.push_back({r.event->time_ns(), stream, r.seq,
                       tools::FormatEventLine(*r.event, stream, r.seq, style)});
      return true;
    });
  }
  std::sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) {
    return std::tie(a.time_ns, a.stream, a.seq) < std::tie(b.time_ns, b.stream, b.seq);
  });
  if (lines.size() > count) lines.erase(lines.begin(), lines.end() - static_cast<ptrdiff_t>(count));
  return lines;
}

struct Collected {
  bool known = false;  // a watchdog runs, or its journal could be folded
  bool running = false;
  std::string error;  // why nothing is known
  WatchdogInfo w;
  bool child_alive = false;
  std::optional<TreeSample> live;
  nlohmann::json json;
};

Collected Collect(const std::string& name, const std::string& state_dir, const Options& options) {
  Collected c;
  std::optional<pid_t> running;
  if (std::optional<PidRecord> record = RunningWatchdog(state_dir)) running = record->pid;
  LoadStateOptions load;
  load.streams = {std::string(kWatchdogStream)};
  std::optional<SystemState> state;
  std::error_code ec;
  if (std::filesystem::exists(fmt::format("{}/{}", options.journal, kWatchdogStream), ec)) {
    Result<SystemState> loaded = LoadState(options.journal, load);
    if (loaded.ok()) {
      state = std::move(loaded.value());
    } else {
      c.error = loaded.status().ToString();
    }
  } else if (ec) {
    c.error = fmt::format("journal {}: {}", options.journal, ec.message());
  } else {
    c.error = fmt::format("no watchdog stream in journal {}", options.journal);
  }
  c.known = state || running;
  c.running = running.has_value();
  const WatchdogInfo w = state ? state->watchdog : WatchdogInfo{};
  c.w = w;
  const int64_t now = WallNowNs();

  // The journal says what the watchdog last wrote; the lock says whether it
  // still lives. A watchdog that was SIGKILLed never wrote "stopped".
  const std::string journal_state = Lower(PhaseName(w.phase));
  std::string state_name = journal_state;
  const bool live_phase = w.phase == fb::Phase::Initializing || w.phase == fb::Phase::Starting ||
                          w.phase == fb::Phase::Running || w.phase == fb::Phase::Backoff ||
                          w.phase == fb::Phase::Stopping;
  if (!running && live_phase) state_name = "stopped";
  c.child_alive = running && w.child_pid > 0 && ::kill(w.child_pid, 0) == 0 &&
                  (w.phase == fb::Phase::Starting || w.phase == fb::Phase::Running ||
                   w.phase == fb::Phase::Stopping);
  if (c.child_alive) c.live = SampleProcessTree(w.child_pid);
  const uint64_t rss = c.live ? c.live->rss_bytes : w.child_rss_bytes;
  const int64_t since =
      state ? (state_name == journal_state ? PhaseSince(options.journal, w.phase) : 0) : 0;

  nlohmann::json& out = c.json;
  out["name"] = name;
  out["state_dir"] = state_dir;
  out["journal"] = options.journal;
  out["command"] = options.command;
  out["watchdog_pid"] = running ? *running : w.watchdog_pid;
  out["watchdog_running"] = running.has_value();
  out["child_pid"] = c.child_alive ? w.child_pid : 0;
  out["phase"] = state_name;
  out["journal_phase"] = journal_state;
  out["phase_since"] = since > 0 ? nlohmann::json(tools::FormatUtc(since)) : nlohmann::json();
  out["uptime_seconds"] =
      running && w.started_ns > 0 ? static_cast<double>(now - w.started_ns) / 1e9 : 0.0;
  out["child_uptime_seconds"] = c.child_alive && w.child_started_ns > 0
                                    ? static_cast<double>(now - w.child_started_ns) / 1e9
                                    : 0.0;
  out["restart_count"] = w.restart_count;
  out["total_restarts"] = w.total_restarts;
  if (w.has_last_exit) {
    out["last_exit"] = {{"exit_code", w.last_exit_code},
                        {"signal", w.last_exit_signal},
                        {"reason", std::string(RestartReasonName(w.last_restart_reason))}};
  } else {
    out["last_exit"] = nullptr;
  }
  out["child_rss_bytes"] = rss;
  out["child_rss_mb"] = static_cast<double>(rss) / (1024.0 * 1024.0);
  out["child_cpu_percent"] = w.child_cpu_percent;
  if (c.live) {
    out["child_cpu_seconds"] =
        static_cast<double>(c.live->cpu_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  } else {
    out["child_cpu_seconds"] = nullptr;
  }
  out["status_text"] = w.status_text;
  // Where a running watchdog serves /metrics (null when off or not running).
  if (running && !w.metrics_address.empty()) {
    out["metrics_address"] = w.metrics_address;
  } else {
    out["metrics_address"] = nullptr;
  }
  return c;
}

// Options as the watchdog in `state_dir` saved them; the defaults when it
// saved none (or the file is not trusted).
Options SavedOptions(const std::string& state_dir) {
  Options options = DefaultOptions();
  const std::string saved = fmt::format("{}/{}", state_dir, kConfigFileName);
  if (LoadOptionsFile(saved, options, FileTrust::kOwnerOnly)) options = DefaultOptions();
  return options;
}

// A phase name's colour on a terminal: running green, failed and error red,
// the phases on the way yellow, the rest (stopped, unknown) none.
const char* PhaseNameColour(std::string_view phase) {
  if (phase == "running") return tools::kGreen;
  if (phase == "failed" || phase == "error") return tools::kRed;
  if (phase == "starting" || phase == "stopping" || phase == "recovering" || phase == "backoff") {
    return tools::kYellow;
  }
  return "";
}

}  // namespace

int PrintStatus(const std::string& name, const std::string& state_dir, const Options& options,
                bool json) {
  Collected c = Collect(name, state_dir, options);
  if (!c.known) {
    fmt::print(stderr, "blackbox-watchdog: nothing known about state directory {}: {}\n", state_dir,
               c.error);
    return 1;
  }
  const int status = c.running ? 0 : 3;
  const nlohmann::json& out = c.json;
  if (json) {
    fmt::print("{}\n", out.dump());
    return status;
  }
  const WatchdogInfo& w = c.w;
  const std::string state_name = out["phase"].get<std::string>();
  const std::string journal_state = out["journal_phase"].get<std::string>();
  fmt::print("{} (state directory {})\n", name.empty() ? std::string("watchdog") : name, state_dir);
  if (!options.command.empty()) fmt::print("command     {}\n", ShellJoin(options.command));
  fmt::print("watchdog    {} ({})\n", out["watchdog_pid"].get<int>(),
             c.running ? fmt::format("running for {}", Uptime(out["uptime_seconds"].get<double>()))
                       : std::string("not running"));
  std::string since;
  if (out["phase_since"].is_string()) {
    // The journal's times are UTC; people read local time, as `blackbox replay` prints it.
    int64_t since_ns = 0;
    if (std::optional<int64_t> parsed =
            tools::ParseAbsoluteTime(out["phase_since"].get<std::string>())) {
      since_ns = *parsed;
    }
    if (since_ns > 0) {
      since = fmt::format(" since {} ({} ago)", tools::FormatLocalMs(since_ns),
                          Uptime(static_cast<double>(WallNowNs() - since_ns) / 1e9));
    }
  }
  const bool colour = tools::WantColour(STDOUT_FILENO);
  fmt::print("state       {}{}{}\n", tools::Paint(state_name, PhaseNameColour(state_name), colour),
             since,
             state_name != journal_state ? fmt::format(" (journal says {})", journal_state) : "");
  if (c.child_alive) {
    fmt::print("child       {} (up {})\n", w.child_pid,
               Uptime(out["child_uptime_seconds"].get<double>()));
    if (c.live) {
      fmt::print("memory      {:.1f} MB RSS, {} process{}, {} thread{} (now)\n",
                 out["child_rss_mb"].get<double>(), c.live->processes,
                 c.live->processes == 1 ? "" : "es", c.live->threads,
                 c.live->threads == 1 ? "" : "s");
      fmt::print("cpu         {:.2f} s used, {:.1f}% at the last sample\n",
                 out["child_cpu_seconds"].get<double>(), w.child_cpu_percent);
    }
  } else {
    fmt::print("child       none\n");
  }
  // The last restart's reason only when there was one: a child that was
  // stopped on request, or never restarted, has no restart reason.
  fmt::print(
      "restarts    {} in the current window, {} in total{}\n", w.restart_count, w.total_restarts,
      w.total_restarts > 0 ? fmt::format(" (last for {})", RestartReasonName(w.last_restart_reason))
                           : "");
  if (w.has_last_exit) {
    const char* abbrev = w.last_exit_signal != 0 ? ::sigabbrev_np(w.last_exit_signal) : nullptr;
    fmt::print("last exit   {}\n",
               w.last_exit_signal == 0 ? fmt::format("exited with status {}", w.last_exit_code)
               : abbrev != nullptr     ? fmt::format("killed by SIG{}", abbrev)
                                       : fmt::format("killed by signal {}", w.last_exit_signal));
  }
  if (!w.status_text.empty()) fmt::print("status      {}\n", w.status_text);
  if (c.running && !w.metrics_address.empty()) {
    fmt::print("metrics     http://{}/metrics\n", w.metrics_address);
  }
  fmt::print("journal     {}\n", options.journal);
  std::vector<Line> lines = LastEvents(options.journal, kLastEvents, tools::WantColour(1));
  if (!lines.empty()) {
    fmt::print("\n");
    for (const Line& line : lines) fmt::print("{}\n", line.text);
  }
  return status;
}

int ListStatus(const std::string& root, bool json) {
  nlohmann::json list = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  bool any_running = false;
  for (const std::string& name : ListNames(root)) {
    const std::string dir = fmt::format("{}/{}", root, name);
    if (Status st = CheckStateDir(dir, /*must_own=*/false); !st.ok()) {
      fmt::print(stderr, "blackbox-watchdog: skipping {}: {}\n", dir, st.message());
      continue;
    }
    Options options = SavedOptions(dir);
    Collected c = Collect(name, dir, options);
    any_running |= c.running;
    const nlohmann::json& o = c.json;
    const std::string state = c.known ? o["phase"].get<std::string>() : std::string("unknown");
    rows.push_back({name, state, c.child_alive ? std::to_string(o["child_pid"].get<int>()) : "-",
                    c.child_alive ? Uptime(o["child_uptime_seconds"].get<double>()) : "-",
                    std::to_string(c.w.total_restarts)});
    if (c.known) list.push_back(o);
  }
  if (json) {
    fmt::print("{}\n", list.dump());
    return any_running ? 0 : 3;
  }
  if (rows.empty()) {
    fmt::print("no watchdogs in {}\n", root);
    return 3;
  }
  std::vector<size_t> width = {4, 5, 3, 6, 8};
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  const bool colour = tools::WantColour(STDOUT_FILENO);
  auto print_row = [&](const std::vector<std::string>& row, bool header) {
    // Padded first, painted after: the escapes take no column.
    const std::string state = fmt::format("{:<{}}", row[1], width[1]);
    fmt::print("{:<{}}  {}  {:>{}}  {:>{}}  {:>{}}\n", row[0], width[0],
               header ? state : tools::Paint(state, PhaseNameColour(row[1]), colour), row[2],
               width[2], row[3], width[3], row[4], width[4]);
  };
  print_row({"NAME", "STATE", "PID", "UPTIME", "RESTARTS"}, true);
  for (const auto& row : rows) print_row(row, false);
  return any_running ? 0 : 3;
}

}  // namespace blackbox::watchdog
