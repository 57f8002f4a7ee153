#include "human_format.h"

#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

#include "pager.h"
#include "time_spec.h"

namespace blackbox::tools {
namespace {

std::string_view Str(const flatbuffers::String* s) { return s ? s->string_view() : ""; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

const char* SeverityColour(fb::Severity s) {
  switch (s) {
    case fb::Severity::Debug:
      return "\033[2m";  // dim
    case fb::Severity::Warning:
      return "\033[33m";  // yellow
    case fb::Severity::Error:
      return "\033[31m";  // red
    case fb::Severity::Critical:
      return "\033[1;31m";  // bold red
    default:
      return "";
  }
}

// "exit 3", "SIGKILL", "SIGSEGV (core dumped)".
std::string ExitText(int exit_code, int signal, bool core_dumped) {
  std::string out;
  if (signal != 0) {
    out = SignalName(signal);
  } else if (exit_code >= 0) {
    out = fmt::format("exit {}", exit_code);
  }
  if (core_dumped) out += " (core dumped)";
  return out;
}

std::string ErrorSummary(const fb::Error& p) {
  std::string out =
      fmt::format("{}: {}: {}", Str(p.context()), Str(p.exception_type()), Str(p.message()));
  if (p.recovery_attempt() > 0) out += fmt::format(" (recovery attempt {})", p.recovery_attempt());
  return out;
}

std::string CrashSummary(const fb::Crash& p) {
  std::string what;
  switch (p.origin()) {
    case fb::CrashOrigin::Terminate:
      what = fmt::format("std::terminate: {}: {}", Str(p.exception_type()),
                         Str(p.exception_message()));
      break;
    case fb::CrashOrigin::Watchdog:
      // What the watchdog saw of the death: a signal, or an exit status.
      if (p.signal() != 0) {
        what = fmt::format("killed by {}", ExitText(p.exit_code(), p.signal(), p.core_dumped()));
      } else {
        what = fmt::format("exited with status {}", p.exit_code());
      }
      break;
    default:
      what = p.signal_name() && p.signal_name()->size() > 0 ? std::string(Str(p.signal_name()))
                                                            : SignalName(p.signal());
      if (p.fault_address() != 0) what += fmt::format(" at {:#x}", p.fault_address());
      break;
  }
  std::string out = fmt::format("crash of pid {}: {}", p.crashed_pid(), what);
  if (p.frames() && p.frames()->size() > 0) out += fmt::format(" in {}", Str(p.frames()->Get(0)));
  return out;
}

std::string HealthSummary(const fb::Health& p) {
  std::string out =
      fmt::format("pid {} rss {:.1f} MB, cpu {:.1f}%", p.sampled_pid(),
                  static_cast<double>(p.rss_bytes()) / (1024.0 * 1024.0), p.cpu_percent());
  // The watchdog samples its child's tree and leaves the system's memory, the
  // disk and the descriptors unmeasured (0): a 0 there is shown as nothing,
  // never as a reading.
  if (p.memory_percent() > 0) out += fmt::format(", memory {:.1f}%", p.memory_percent());
  if (p.disk_percent() > 0) out += fmt::format(", disk {:.1f}%", p.disk_percent());
  if (p.threads() > 0) out += fmt::format(", {} threads", p.threads());
  if (p.open_fds() > 0) out += fmt::format(", {} fds", p.open_fds());
  if (p.over_threshold()) out += " [over threshold]";
  return out;
}

std::string LifecycleSummary(const fb::Lifecycle& p) {
  std::string out = Lower(fb::EnumNamePhase(p.phase()));
  if (p.child_pid() != 0) out += fmt::format(" child {}", p.child_pid());
  if (std::string exit = ExitText(p.exit_code(), p.signal(), p.core_dumped()); !exit.empty()) {
    out += fmt::format(" ({})", exit);
  }
  if (p.reason() && p.reason()->size() > 0) out += fmt::format(": {}", Str(p.reason()));
  return out;
}

std::string RestartSummary(const fb::Restart& p) {
  std::string out = fmt::format("restart {} after {}", p.attempt(), RestartReasonName(p.reason()));
  if (std::string exit = ExitText(p.exit_code(), p.signal(), false); !exit.empty()) {
    out += fmt::format(" ({})", exit);
  }
  out += fmt::format(", delay {} ms", p.delay_ms());
  if (p.child_pid() != 0) out += fmt::format(", new pid {}", p.child_pid());
  return out;
}

std::string CallbackSummary(const fb::Callback& p) {
  std::string out = fmt::format("{} {} {}", Lower(fb::EnumNameCallbackKind(p.kind())),
                                Str(p.name()), p.ok() ? "ok" : "FAILED");
  if (!p.ok() && p.error()) out += fmt::format(": {}", Str(p.error()));
  out += fmt::format(" ({} us)", p.duration_us());
  return out;
}

std::string LimitSummary(const fb::Limit& p) {
  return fmt::format("{} {:.1f} over limit {:.1f} ({} samples) -> {}",
                     Lower(fb::EnumNameLimitKind(p.kind())), p.value(), p.limit(), p.consecutive(),
                     Lower(fb::EnumNameLimitAction(p.action())));
}

std::string ConfigSummary(const fb::Config& p) {
  std::string out = fmt::format("{}:", Str(p.component()));
  if (p.entries()) {
    for (const auto* e : *p.entries()) out += fmt::format(" {}={}", Str(e->key()), Str(e->value()));
  }
  return out;
}

}  // namespace

bool WantColour(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  // A pager on stdout draws on the terminal stdout was.
  bool terminal = fd == STDOUT_FILENO ? StdoutIsTerminal() : isatty(fd) == 1;
  return terminal && (no_colour == nullptr || no_colour[0] == '\0');
}

std::string Paint(std::string_view text, const char* colour, bool on) {
  if (!on || colour == nullptr || colour[0] == '\0') return std::string(text);
  return fmt::format("{}{}\033[0m", colour, text);
}

const char* PhaseColour(fb::Phase phase) {
  switch (phase) {
    case fb::Phase::Running:
      return kGreen;
    case fb::Phase::Error:
    case fb::Phase::Failed:
      return kRed;
    case fb::Phase::Starting:
    case fb::Phase::Recovering:
    case fb::Phase::Stopping:
    case fb::Phase::Backoff:
      return kYellow;
    default:
      return "";
  }
}

std::string Summary(const fb::Event& e) {
  switch (e.payload_type()) {
    case fb::Payload::Error:
      if (auto* p = e.payload_as_Error()) return ErrorSummary(*p);
      break;
    case fb::Payload::Crash:
      if (auto* p = e.payload_as_Crash()) return CrashSummary(*p);
      break;
    case fb::Payload::Health:
      if (auto* p = e.payload_as_Health()) return HealthSummary(*p);
      break;
    case fb::Payload::Lifecycle:
      if (auto* p = e.payload_as_Lifecycle()) return LifecycleSummary(*p);
      break;
    case fb::Payload::Restart:
      if (auto* p = e.payload_as_Restart()) return RestartSummary(*p);
      break;
    case fb::Payload::Callback:
      if (auto* p = e.payload_as_Callback()) return CallbackSummary(*p);
      break;
    case fb::Payload::Gauge:
      if (auto* p = e.payload_as_Gauge()) return fmt::format("{} = {}", Str(p->name()), p->value());
      break;
    case fb::Payload::LogLine:
      if (auto* p = e.payload_as_LogLine()) {
        std::string out = fmt::format("[{}] {}", Str(p->source()), Str(p->text()));
        if (p->suppressed() > 0) out += fmt::format(" (+{} suppressed)", p->suppressed());
        if (p->dropped_bytes() > 0) {
          out += fmt::format(" ({} bytes of output dropped: not read)", p->dropped_bytes());
        }
        return out;
      }
      break;
    case fb::Payload::Limit:
      if (auto* p = e.payload_as_Limit()) return LimitSummary(*p);
      break;
    case fb::Payload::Config:
      if (auto* p = e.payload_as_Config()) return ConfigSummary(*p);
      break;
    case fb::Payload::Forecast:
      if (auto* p = e.payload_as_Forecast()) {
        if (p->cleared())
          return fmt::format("forecast cleared: {} no longer rising", Str(p->resource()));
        return fmt::format("forecast: {}", Str(p->message()));
      }
      break;
    default:
      return fmt::format("(event type {} unknown to this build)",
                         static_cast<int>(e.payload_type()));
  }
  return "(no payload)";
}

std::string FormatEventLine(const fb::Event& e, std::string_view stream, uint64_t seq,
                            const HumanStyle& style) {
  std::string_view type = PayloadName(e.payload_type());
  std::string severity = Lower(fb::EnumNameSeverity(e.severity()));
  const char* on = style.colour ? SeverityColour(e.severity()) : "";
  const char* off = style.colour && on[0] != '\0' ? "\033[0m" : "";
  return fmt::format("{} {:<{}} #{:<7} {:<9} {}{:<8}{} pid {:<7} {}",
                     style.utc ? FormatUtcMs(e.time_ns()) : FormatLocalMs(e.time_ns()), stream,
                     style.stream_width, seq, type.empty() ? "unknown" : type, on, severity, off,
                     e.pid(), Summary(e));
}

}  // namespace blackbox::tools
